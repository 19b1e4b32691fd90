// ready(): warm start (min connections, the server's wait_timeout) and fail fast (an
// unreachable server or wrong credentials reject at once with ConnectError, the server's
// own error as cause, instead of retrying until acquireTimeout).
import { inspect } from 'node:util';
import mysql from 'mysql2/promise';
import t from 'tap';
import { ConnectError, createPool, FreshPoolError, PoolClosedError } from '../lib/index.js';
import { closedPort } from './helpers/delay-relay.js';
import { captureLog } from './helpers/log.js';
import { startServer } from './helpers/mariadb.js';

// wait_timeout 10 s: the derived connWaitAge is min(10 s / 2, 30 s) = 5 000 ms.
const server = await startServer(t, { waitTimeoutSeconds: 10 });

const RIGHT = 'right-Pa55-word-7c1e';
const WRONG = 'wrong-Pa55-word-93af';
await server.query(`CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY '${RIGHT}'`);
await server.query(`CREATE USER IF NOT EXISTS 'app'@'localhost' IDENTIFIED BY '${RIGHT}'`);
await server.query(`GRANT ALL ON test.* TO 'app'@'%'`);
await server.query(`GRANT ALL ON test.* TO 'app'@'localhost'`);

const appConnection = (password: string) => ({ host: server.host, port: server.port, user: 'app', password, database: 'test' });

/** ms `promise` took to settle, and what it settled with. */
async function timed<T>(promise: Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const started = Date.now();
  try {
    const value = await promise;
    return { ms: Date.now() - started, value };
  } catch (error) {
    return { ms: Date.now() - started, error };
  }
}

async function poolConnectionsOnServer(user = 'root'): Promise<number> {
  const rows = await server.query<Array<{ n: number }>>(
    'SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()',
    [user],
  );
  return Number(rows[0]!.n);
}

/** Kills whatever the pools of a failed test left open, so the next test starts clean. */
async function killLeftovers(): Promise<void> {
  const rows = await server.query<Array<{ ID: number }>>('SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND USER IN (\'root\', \'app\')');
  for (const { ID } of rows) await server.query(`KILL CONNECTION ${Number(ID)}`).catch(() => undefined);
}

t.test('ready() with min 2 opens two connections and reads wait_timeout', async (t) => {
  const log = captureLog();
  const pool = createPool({ connection: server.url, min: 2, max: 4, logger: log.logger });
  t.teardown(() => pool.end());
  const before = pool.stats();
  t.equal(before.connWaitAgeMs, undefined, 'connWaitAge unknown before ready()');
  t.equal(before.size, 0, 'nothing opened at construction');
  t.equal(await poolConnectionsOnServer(), 0, 'no connection on the server before ready()');

  await pool.ready();
  const s = pool.stats();
  t.match(s, { size: 2, idle: 2, borrowed: 0, created: 2, connectAttempts: 2, connectFailures: 0 }, 'min connections open and idle');
  t.equal(s.connWaitAgeMs, 5_000, 'connWaitAge derived from the server wait_timeout (10 s / 2)');
  t.equal(await poolConnectionsOnServer(), 2, 'exactly two connections on the server');
  t.equal(s.acquires, 2, 'the warm-up borrows are counted as acquires');

  // The warm connections are used as they are: no new connection, no ping.
  const ids = await Promise.all([0, 1].map(() => pool.withConnection(async (c) => {
    const [rows] = await c.query<any[]>('SELECT CONNECTION_ID() AS id, SLEEP(0.05)');
    return rows[0].id as number;
  })));
  t.equal(new Set(ids).size, 2);
  t.match(pool.stats(), { created: 2, pings: 0 }, 'borrows after ready() reuse the warm connections');
});

t.test('ready() with min 0: one connection, wait_timeout read, handed to the first borrow', async (t) => {
  const pool = createPool({ connection: server.url, logger: captureLog().logger });
  t.teardown(() => pool.end());
  await pool.ready();
  t.equal(pool.stats().connWaitAgeMs, 5_000, 'wait_timeout read');
  t.equal(pool.stats().connectAttempts, 1, 'one connect');
  t.equal(await poolConnectionsOnServer(), 1, 'one connection open');
  await pool.withConnection((c) => c.query('SELECT 1'));
  t.match(pool.stats(), { created: 1, connectAttempts: 1, pings: 0 }, 'the first borrow took the connection ready() opened');
  await pool.end();
  t.equal(await poolConnectionsOnServer(), 0, 'closed by end()');
});

t.test('ready() twice', async (t) => {
  const pool = createPool({ connection: server.url, min: 2, max: 2, logger: captureLog().logger });
  t.teardown(() => pool.end());
  await pool.ready();
  await pool.ready();
  const s = pool.stats();
  t.match(s, { size: 2, idle: 2 }, 'still min connections in the pool');
  const onServer = await poolConnectionsOnServer();
  t.comment(`after ready() twice: stats().size ${s.size}, created ${s.created}, connectAttempts ${s.connectAttempts}, connections on the server ${onServer}`);
  // Regression (fixed): the second ready() probes with a new connection and keeps it aside,
  // outside stats() and outside max, until a borrow needs a new connection.
  t.ok(onServer <= 2, `no more than max (2) connections open on the server (${onServer})`);
  await pool.end();
  t.equal(await poolConnectionsOnServer(), 0, 'end() closes every one of them');
  await killLeftovers();
});

t.test('ready() called twice at once, then end(): nothing left open', async (t) => {
  const pool = createPool({ connection: server.url, max: 2, logger: captureLog().logger });
  t.teardown(() => pool.end());
  await Promise.all([pool.ready(), pool.ready()]);
  const s = pool.stats();
  await pool.end();
  // Regression (fixed): both calls probe at once; each probe's connection is kept as the one
  // "spare" (Connector.#spare), the second overwriting the first, which is then never closed.
  const left = await poolConnectionsOnServer();
  t.comment(`connectAttempts ${s.connectAttempts}; connections left on the server after end(): ${left}`);
  t.equal(left, 0, `no connection of the pool left on the server after end() (${left})`);
  await killLeftovers();
});

t.test('ready() on a closed port rejects at once with ConnectError', async (t) => {
  const port = await closedPort();
  const pool = createPool({ connection: `mysql://root@127.0.0.1:${port}/test`, min: 2, acquireTimeout: 10_000, logger: captureLog().logger });
  t.teardown(() => pool.end());
  const r = await timed(pool.ready());
  t.ok(r.ms < 3_000, `settled in ${r.ms} ms, far below acquireTimeout (10 000 ms)`);
  t.ok(r.error instanceof ConnectError, 'ConnectError');
  t.ok(r.error instanceof FreshPoolError);
  const err = r.error as ConnectError;
  t.equal(err.code, 'ERR_FRESH_POOL_CONNECT');
  t.equal(err.name, 'ConnectError');
  t.match(err.cause, { code: 'ECONNREFUSED' }, "the driver's error as cause");
  t.match(err.message, `127.0.0.1:${port}`, 'the message names the target');
  t.match(err.message, /ECONNREFUSED/, "and says why");
  t.equal(pool.stats().connectFailures, 1, 'one attempt, no retries');
  await pool.end();
});

t.test('wrong password', async (t) => {
  t.test('control: the right password works', async (t) => {
    const pool = createPool({ connection: appConnection(RIGHT), min: 1, logger: captureLog().logger });
    t.teardown(() => pool.end());
    await pool.ready();
    const [rows] = await pool.query<any[]>('SELECT CURRENT_USER() AS u');
    t.match(rows[0].u, /^app@/);
  });

  t.test('fault is real: a plain mysql2 pool\'s first query fails with the server\'s error', async (t) => {
    const plain = mysql.createPool({ ...appConnection(WRONG), connectionLimit: 1 });
    t.teardown(() => plain.end());
    await t.rejects(plain.query('SELECT 1'), { code: 'ER_ACCESS_DENIED_ERROR', message: /Access denied for user 'app'/ });
  });

  t.test('ready() rejects at once with ConnectError: access denied, the server\'s error as cause', async (t) => {
    const log = captureLog();
    const pool = createPool({ connection: appConnection(WRONG), min: 2, acquireTimeout: 10_000, logger: log.logger });
    t.teardown(() => pool.end());
    const r = await timed(pool.ready());
    t.ok(r.ms < 3_000, `settled in ${r.ms} ms, not after acquireTimeout`);
    t.ok(r.error instanceof ConnectError, 'ConnectError, not AcquireTimeoutError');
    const err = r.error as ConnectError;
    t.equal(err.code, 'ERR_FRESH_POOL_CONNECT');
    t.match(err.cause, { code: 'ER_ACCESS_DENIED_ERROR', errno: 1045 }, "the server's error as cause");
    t.match(err.message, /access denied/i, 'the message says access denied');
    t.match(err.message, /app/, 'and names the user');
    for (const [what, text] of [
      ['message', err.message],
      ['stack', String(err.stack)],
      ['inspect', inspect(err, { depth: 5 })],
      ['cause message', (err.cause as Error).message],
      ['JSON', JSON.stringify(err)],
      ['logs', log.text()],
    ] as const) {
      t.notOk(text.includes(WRONG), `the password is not in the ${what}`);
    }
    await pool.end();
  });

  t.test('without ready(), a borrow fails as fast: ConnectError, not a wait until acquireTimeout', async (t) => {
    const pool = createPool({ connection: appConnection(WRONG), acquireTimeout: 10_000, logger: captureLog().logger });
    t.teardown(() => pool.end());
    const r = await timed(pool.withConnection(() => 'never'));
    t.ok(r.error instanceof ConnectError, `ConnectError (got ${(r.error as Error)?.name})`);
    t.ok(r.ms < 5_000, `long before acquireTimeout (${r.ms} ms of 10000): a denial does not fix itself`);
    t.match((r.error as Error).cause, { code: 'ER_ACCESS_DENIED_ERROR' }, 'the denial is its cause');
  });
});

t.test('ready() after end() rejects with PoolClosedError', async (t) => {
  const pool = createPool({ connection: server.url, min: 1, logger: captureLog().logger });
  await pool.end();
  await t.rejects(pool.ready(), PoolClosedError);
  await t.rejects(pool.ready(), { code: 'ERR_FRESH_POOL_CLOSED' });
  t.equal(pool.stats().connectAttempts, 0, 'no connect was attempted');
  t.equal(await poolConnectionsOnServer(), 0);
});

t.test('ready() after ready() and end(): PoolClosedError too; end() after a failed ready() resolves', async (t) => {
  const pool = createPool({ connection: server.url, min: 1, logger: captureLog().logger });
  await pool.ready();
  await pool.end();
  await t.rejects(pool.ready(), PoolClosedError);
  const port = await closedPort();
  const failed = createPool({ connection: `mysql://root@127.0.0.1:${port}/test`, logger: captureLog().logger });
  await t.rejects(failed.ready(), ConnectError);
  const r = await timed(failed.end());
  t.equal(r.error, undefined, 'end() resolves');
  t.ok(r.ms < 1_000, `promptly (${r.ms} ms)`);
});
