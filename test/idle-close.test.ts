// A connection the server closes while it sits idle in the pool, with the event loop free:
// mysql2 sees the close at once, and the pool must drop the connection at once too, not at
// its next borrow. And the idle threshold (connWaitAge) is derived from, and kept below,
// the server's wait_timeout.
import t from 'tap';
import mysql from 'mysql2/promise';
import { createPool } from '../lib/index.js';
import { captureLog } from './helpers/log.js';
import { sleep, startServer } from './helpers/mariadb.js';
import { ID_SQL, openConnections, type IdRow } from './helpers/sql.js';

const server = await startServer(t);
const shortWait = await startServer(t, { waitTimeoutSeconds: 1 });
const skipShortWait = !shortWait.canRestart && 'needs a private server with wait_timeout=1';

/** Waits, with the loop free, until `condition` holds; false if it has not within `timeoutMs`. */
async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

t.test('(a) an idle connection killed while the loop is free leaves the pool at once', async (t) => {
  t.test('min 0: the pool shrinks', async (t) => {
    const log = captureLog();
    const pool = createPool({ connection: server.url, max: 2, logger: log.logger });
    t.teardown(() => pool.end());
    const ids = await openConnections(pool, 2);
    t.equal(pool.stats().idle, 2);
    const pingsBefore = pool.stats().pings; // a borrow pings until wait_timeout is known
    await server.query('KILL CONNECTION ?', [ids[0]]);
    t.ok(await until(() => pool.stats().size === 1, 2_000), 'the pool dropped it without a borrow');
    const stats = pool.stats();
    t.equal(stats.idle, 1);
    t.same(stats.destroyed, { closedByServer: 1 });
    t.equal(stats.pings, pingsBefore, 'found by its close event, not by a ping');
    const evictions = log.find('connection evicted');
    t.equal(evictions.length, 1);
    t.equal(evictions[0]?.connId, ids[0]);
    t.equal(evictions[0]?.reason, 'closedByServer');
    t.equal(evictions[0]?.level, 30, 'logged at info');
    const lent = await openConnections(pool, 2);
    t.notOk(lent.includes(ids[0]!), 'the killed connection is never lent');
    t.ok(lent.includes(ids[1]!), 'the survivor is');
  });

  t.test('min 2: the pool tops itself up', async (t) => {
    const log = captureLog();
    const pool = createPool({ connection: server.url, min: 2, max: 2, logger: log.logger });
    t.teardown(() => pool.end());
    const ids = await openConnections(pool, 2);
    t.equal(pool.stats().created, 2);
    const pingsBefore = pool.stats().pings;
    await server.query('KILL CONNECTION ?', [ids[1]]);
    t.ok(await until(() => pool.stats().created === 3 && pool.stats().idle === 2, 2_000), 'a replacement was made without a borrow');
    const stats = pool.stats();
    t.equal(stats.size, 2);
    t.same(stats.destroyed, { closedByServer: 1 });
    t.equal(stats.pings, pingsBefore, 'found by its close event, not by a ping');
    const evictions = log.find('connection evicted');
    t.equal(evictions.length, 1);
    t.equal(evictions[0]?.connId, ids[1]);
    t.equal(evictions[0]?.reason, 'closedByServer');
    const lent = await openConnections(pool, 2);
    t.notOk(lent.includes(ids[1]!), 'the killed connection is never lent');
  });
});

t.test('(b) idle past wait_timeout, loop free', { skip: skipShortWait }, async (t) => {
  t.test('fault is real: a mysql2 connection held across the idle stretch fails', async (t) => {
    const conn = await mysql.createConnection(shortWait.url);
    conn.on('error', () => {}); // the server's reset arrives while no query runs
    t.teardown(() => conn.destroy());
    await conn.query('SELECT 1');
    await sleep(2_500);
    await t.rejects(conn.query('SELECT 1'), { message: /closed state|Connection lost/, fatal: true });
  });

  t.test('our pool (default connWaitAge) succeeds on a new connection', async (t) => {
    const log = captureLog();
    const pool = createPool({ connection: shortWait.url, max: 2, logger: log.logger });
    t.teardown(() => pool.end());
    t.equal(pool.stats().connWaitAgeMs, undefined, 'unknown until the server is asked');
    const firstId = await pool.withConnection(async (c) => (await c.query<IdRow[]>(ID_SQL))[0][0]!.id);
    t.equal(pool.stats().connWaitAgeMs, 500, 'derived: half of wait_timeout 1 s');
    await sleep(2_500);
    const [rows] = await pool.query<IdRow[]>(ID_SQL);
    t.not(rows[0]?.id, firstId, 'a new connection');
    const evictions = log.find('connection evicted');
    t.equal(evictions.length, 1);
    t.equal(evictions[0]?.connId, firstId);
    // MariaDB resets a connection it times out (ECONNRESET, no FIN), so mysql2 reports an error, not an end.
    t.equal(evictions[0]?.reason, 'connectionError');
    t.same(pool.stats().destroyed, { connectionError: 1 });
    t.equal(pool.stats().connWaitAgeMs, 500);
  });
});

t.test('(c) an explicit connWaitAge at or above wait_timeout is clamped', { skip: skipShortWait }, async (t) => {
  for (const connWaitAge of [5_000, 1_000]) {
    t.test(`connWaitAge ${connWaitAge} with wait_timeout 1 s`, async (t) => {
      const log = captureLog();
      const pool = createPool({ connection: shortWait.url, max: 1, connWaitAge, logger: log.logger });
      t.teardown(() => pool.end());
      t.equal(pool.stats().connWaitAgeMs, connWaitAge, 'the explicit value until the server is asked');
      await pool.query('SELECT 1');
      t.equal(pool.stats().connWaitAgeMs, 500, 'clamped to the derived value');
      const warnings = log.find('connWaitAge is not below the server wait_timeout; clamped');
      t.equal(warnings.length, 1);
      t.equal(warnings[0]?.level, 40, 'a warning');
      t.equal(warnings[0]?.connWaitAgeMs, connWaitAge);
      t.equal(warnings[0]?.waitTimeoutSeconds, 1);
      t.equal(warnings[0]?.clampedToMs, 500);
    });
  }

  t.test('connWaitAge 999 with wait_timeout 1 s is kept', async (t) => {
    const log = captureLog();
    const pool = createPool({ connection: shortWait.url, max: 1, connWaitAge: 999, logger: log.logger });
    t.teardown(() => pool.end());
    await pool.query('SELECT 1');
    t.equal(pool.stats().connWaitAgeMs, 999);
    t.equal(log.find('connWaitAge is not below the server wait_timeout; clamped').length, 0, 'no warning');
  });
});
