// withConnection and its shorthands: results and errors pass through untouched, the connection
// always goes back, `max` is a hard ceiling, and the password never leaks.
import t from 'tap';
import { inspect } from 'node:util';
import { AcquireTimeoutError, ConnectError, createPool, FreshPoolError, type FreshPool } from '../lib/index.js';
import { captureLog } from './helpers/log.js';
import { startServer } from './helpers/mariadb.js';

const server = await startServer(t, {});

async function connectionId(pool: FreshPool): Promise<number> {
  return pool.withConnection(async (conn) => (await conn.query<any[]>('SELECT CONNECTION_ID() AS id'))[0][0].id as number);
}

t.test('fn\'s result passes through unchanged', async (t) => {
  const pool = createPool({ connection: server.url, max: 2, logger: captureLog().logger });
  t.teardown(() => pool.end());
  const value = { rows: [1, 2, 3] };
  t.equal(await pool.withConnection(() => value), value, 'same object (sync fn)');
  t.equal(await pool.withConnection(async () => value), value, 'same object (async fn)');
  t.equal(await pool.withConnection(() => undefined), undefined, 'undefined too');
  t.equal(pool.stats().borrowed, 0, 'connection returned');
});

t.test('fn throwing: the very same error reaches the caller, and the connection goes back', async (t) => {
  const log = captureLog();
  const pool = createPool({ connection: server.url, max: 1, logger: log.logger });
  t.teardown(() => pool.end());
  const before = await connectionId(pool);

  const thrown = new TypeError('boom from fn');
  let caught: unknown;
  try {
    await pool.withConnection(async (conn) => {
      await conn.query('SELECT 1');
      throw thrown;
    });
  } catch (err) {
    caught = err;
  }
  t.equal(caught, thrown, 'identical error object');
  t.equal(pool.stats().borrowed, 0, 'the connection went back');

  // A synchronous throw, and a thrown non-Error, pass through the same way.
  const sync = new Error('sync boom');
  await t.rejects(pool.withConnection(() => {
    throw sync;
  }), sync);
  const weird = { notAnError: true };
  t.equal(await pool.withConnection(() => Promise.reject(weird)).catch((e: unknown) => e), weird, 'a non-Error rejection value too');

  t.equal(await connectionId(pool), before, 'an ordinary error does not cost the connection: same CONNECTION_ID');
  t.equal(log.find('connection evicted').length, 0, 'nothing evicted');
  t.equal(pool.stats().created, 1);
});

t.test('a server SQL error passes through untouched', async (t) => {
  const pool = createPool({ connection: server.url, max: 1, logger: captureLog().logger });
  t.teardown(() => pool.end());
  const before = await connectionId(pool);

  let inner: unknown;
  const outer = await pool
    .withConnection(async (conn) => {
      try {
        await conn.query('SELEC 1');
      } catch (err) {
        inner = err;
        throw err;
      }
    })
    .catch((e: unknown) => e);
  t.equal(outer, inner, 'the caller gets mysql2\'s own error object');
  t.match(outer, { code: 'ER_PARSE_ERROR', errno: 1064, sqlState: '42000' });
  t.notOk(outer instanceof FreshPoolError, 'not wrapped');

  const viaQuery = await pool.query('SELEC 1').catch((e: unknown) => e);
  t.match(viaQuery, { code: 'ER_PARSE_ERROR', errno: 1064 }, 'pool.query: same');
  t.notOk(viaQuery instanceof FreshPoolError);
  const viaExecute = await pool.execute('SELEC ?', [1]).catch((e: unknown) => e);
  t.match(viaExecute, { code: 'ER_PARSE_ERROR' }, 'pool.execute: same');
  t.notOk(viaExecute instanceof FreshPoolError);

  t.equal(await connectionId(pool), before, 'a SQL error does not cost the connection');
  t.equal(pool.stats().borrowed, 0);
});

t.test('pool.query and pool.execute with params return rows', async (t) => {
  const pool = createPool({ connection: server.url, max: 2, logger: captureLog().logger });
  t.teardown(() => pool.end());
  const [qRows] = await pool.query<any[]>('SELECT ? + ? AS sum, ? AS s', [2, 3, 'hé']);
  t.same(qRows, [{ sum: 5, s: 'hé' }]);
  const [eRows] = await pool.execute<any[]>('SELECT CAST(? AS SIGNED) * 2 AS twice, CONCAT(?, ?) AS s', [21, 'a', 'b']);
  t.same(eRows, [{ twice: 42, s: 'ab' }]);
  await pool.query('CREATE TEMPORARY TABLE IF NOT EXISTS tmp_unused (x INT)');
  const [named] = await pool.query<any[]>({ sql: 'SELECT ? AS v', values: [7] });
  t.same(named, [{ v: 7 }], 'QueryOptions form');
  t.equal(pool.stats().borrowed, 0);
});

t.test('20 concurrent borrows on max 4: all succeed, never more than 4 connections', async (t) => {
  const pool = createPool({ connection: server.url, max: 4, logger: captureLog().logger });
  t.teardown(() => pool.end());
  let active = 0;
  let peak = 0;
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      pool.withConnection(async (conn) => {
        active++;
        peak = Math.max(peak, active);
        const [rows] = await conn.query<any[]>('SELECT CONNECTION_ID() AS id, ? AS i, SLEEP(0.02) AS z', [i]);
        active--;
        return rows[0] as { id: number; i: number };
      }),
    ),
  );
  t.same(results.map((r) => r.i), Array.from({ length: 20 }, (_, i) => i), 'every borrow ran, each with its own result');
  const distinct = new Set(results.map((r) => r.id));
  t.ok(distinct.size <= 4, `at most 4 server connections (${distinct.size})`);
  t.ok(distinct.size > 1, 'the work was spread over several connections');
  t.ok(peak <= 4, `never more than 4 borrowed at once (peak ${peak})`);
  const s = pool.stats();
  t.ok(s.created <= 4, `created ${s.created}`);
  t.equal(s.borrowed, 0);
  t.equal(s.waiting, 0);
});

const PASSWORD = 's3cret-pw-xyz';

const skipUser = !server.canRestart && 'creates a user on the server';

async function createAppUser(): Promise<string> {
  for (const host of ['%', 'localhost', '127.0.0.1']) {
    await server.query(`CREATE USER IF NOT EXISTS 'app'@'${host}' IDENTIFIED BY '${PASSWORD}'`);
    await server.query(`GRANT ALL ON test.* TO 'app'@'${host}'`);
  }
  return `mysql://app:${PASSWORD}@${server.host}:${server.port}/test`;
}

t.test('the password never appears in a log line or an error', { skip: skipUser }, async (t) => {
  const url = await createAppUser();
  const log = captureLog('trace');
  // maxAge short enough to see a maxAge eviction within the test.
  const pool = createPool({ connection: url, max: 2, maxAge: 400, connWaitAge: 100, logger: log.logger });
  t.teardown(() => pool.end());

  const [rows] = await pool.query<any[]>('SELECT CURRENT_USER() AS u, CONNECTION_ID() AS id');
  t.match(rows[0].u, /^app@/, 'connected as the user with the password');
  const firstId = rows[0].id as number;

  // An eviction by maxAge...
  await new Promise((r) => setTimeout(r, 450));
  const secondId = await pool.withConnection(async (c) => (await c.query<any[]>('SELECT CONNECTION_ID() AS id'))[0][0].id as number);
  t.not(secondId, firstId);
  // ...one because the server killed the connection while idle...
  await server.query(`KILL CONNECTION ${Number(secondId)}`);
  await new Promise((r) => setTimeout(r, 100));
  // ...one after a ping (idle past connWaitAge), and a SQL error.
  await pool.query('SELECT 1');
  await new Promise((r) => setTimeout(r, 150));
  await pool.query('SELECT 1');
  const sqlErr = await pool.query('SELEC 1').catch((e: unknown) => e);
  t.match(sqlErr, { code: 'ER_PARSE_ERROR' });
  const reasons = log.find('connection evicted').map((l) => l.reason);
  t.ok(reasons.includes('maxAge') && (reasons.includes('closedByServer') || reasons.includes('connectionError')), `evictions happened: ${reasons.join(', ')}`);
  t.ok(pool.stats().pings >= 1, 'a ping happened');

  // Connect failures: a second pool with the right password and the wrong port...
  const refusedLog = captureLog('trace');
  const refused = createPool({ connection: `mysql://app:${PASSWORD}@${server.host}:1/test`, acquireTimeout: 500, logger: refusedLog.logger });
  t.teardown(() => refused.end());
  const timeoutErr = await refused.withConnection(() => 1).catch((e: unknown) => e);
  t.ok(timeoutErr instanceof AcquireTimeoutError);
  t.ok(refusedLog.find('connect failed').length >= 1, 'connect failure logged');

  // ...and one whose password the server rejects (options form, uri + password).
  const deniedLog = captureLog('trace');
  const denied = createPool({
    connection: { uri: `mysql://app@${server.host}:${server.port}/test`, password: `${PASSWORD}-wrong` },
    acquireTimeout: 500,
    logger: deniedLog.logger,
  });
  t.teardown(() => denied.end());
  const deniedErr = await denied.withConnection(() => 1).catch((e: unknown) => e);
  t.ok(deniedErr instanceof ConnectError, 'a denial fails the borrow at once with ConnectError');
  t.equal(((deniedErr as ConnectError).cause as { code?: string }).code, 'ER_ACCESS_DENIED_ERROR');

  const texts: Array<[string, string]> = [
    ['log', log.text()],
    ['refused log', refusedLog.text()],
    ['denied log', deniedLog.text()],
  ];
  for (const [name, err] of [['timeout error', timeoutErr], ['denied error', deniedErr], ['sql error', sqlErr]] as const) {
    const e = err as Error;
    texts.push(
      [`${name} message`, e.message],
      [`${name} stack`, String(e.stack)],
      [`${name} JSON`, JSON.stringify(e)],
      [`${name} inspect`, inspect(e, { depth: Infinity })],
      [`${name} cause inspect`, inspect(e.cause, { depth: Infinity, showHidden: true })],
    );
  }
  for (const p of [pool, refused, denied]) {
    texts.push(['stats', JSON.stringify(p.stats())], ['stats inspect', inspect(p.stats(), { depth: Infinity })]);
    texts.push(['pool inspect (console.log depth)', inspect(p)]);
    texts.push(['pool String()', String(p)]);
  }
  const leaks = texts.filter(([, text]) => text.includes(PASSWORD)).map(([name]) => name);
  t.same(leaks, [], 'the password appears nowhere');
  // Sanity: the check can see a password when there is one.
  t.ok(url.includes(PASSWORD));
});

// A user who logs the pool object itself (`logger.info({ pool })`, or a deep util.inspect)
// walks into the pool's internals: each pooled mysql2 connection keeps its own config, with
// the password as a plain enumerable property.
t.test('the pool object itself, logged with pino or inspected in full, does not reveal the password', { skip: skipUser }, async (t) => {
  const url = await createAppUser();
  const log = captureLog();
  const pool = createPool({ connection: url, max: 1, logger: log.logger });
  t.teardown(() => pool.end());
  await pool.query('SELECT 1'); // one idle connection in the pool
  log.logger.info({ pool }, 'the pool');
  t.equal(log.find('the pool').length, 1, 'the line was written');
  // Booleans, so a failure does not print the password-bearing text.
  t.equal(log.text().includes(PASSWORD), false, 'pino line with { pool } has no password');
  t.equal(inspect(pool, { depth: Infinity }).includes(PASSWORD), false, 'util.inspect(pool, { depth: Infinity }) has no password');
});
