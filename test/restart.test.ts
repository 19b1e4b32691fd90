// A server restart while the event loop is busy: every pooled socket was closed by the old
// server, but the FINs sit unprocessed, so mysql2 still thinks the connections are alive.
// (With the loop free, their 'end' events would remove them first: no fault to show.)
import t from 'tap';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { createPool } from '../lib/index.js';
import { captureLog } from './helpers/log.js';
import { busyWait, startServer } from './helpers/mariadb.js';

const server = await startServer(t);
const skip = !server.canRestart && 'needs a private server to restart';

const LOST = /PROTOCOL_CONNECTION_LOST|ECONNRESET|EPIPE/;

/** Restarts the server with the event loop blocked throughout. */
function restartWhileBusy(): void {
  server.stopSync();
  server.startSync();
}

// A restarted server numbers its connections from 1 again, so a new connection may get the
// old CONNECTION_ID: a session variable tells the sessions apart instead.
const MARK = 'SET @fresh_pool_mark = 1';
const READ = 'SELECT CONNECTION_ID() AS id, @fresh_pool_mark AS mark';
type Row = RowDataPacket & { id: number; mark: number | null };

t.test('fault is real: a mysql2 pool lends a connection the old server closed', { skip }, async (t) => {
  const plain = mysql.createPool({ uri: server.url, connectionLimit: 1 });
  t.teardown(() => plain.end());
  await plain.query('SELECT 1');
  restartWhileBusy();
  await t.rejects(plain.query('SELECT 1'), { code: LOST });
});

t.test('our pool: query after a restart succeeds on a new session', { skip }, async (t) => {
  const log = captureLog();
  const pool = createPool({ connection: server.url, max: 2, connWaitAge: 100, logger: log.logger });
  t.teardown(() => pool.end());
  const oldId = await pool.withConnection(async (c) => {
    await c.query(MARK);
    const [rows] = await c.query<Row[]>(READ);
    t.equal(rows[0]?.mark, 1, 'the marker is set on the first session');
    return rows[0]!.id;
  });
  restartWhileBusy();
  busyWait(150); // past connWaitAge, however fast the restart was, so the borrow pings
  const [rows] = await pool.query<Row[]>(READ);
  t.equal(rows[0]?.mark, null, 'a new session, not the one from before the restart');
  const evictions = log.find('connection evicted');
  t.equal(evictions.length, 1, 'one eviction');
  t.equal(evictions[0]?.connId, oldId, 'of the pre-restart connection');
  t.equal(evictions[0]?.reason, 'pingFailed');
  const stats = pool.stats();
  t.equal(stats.created, 2);
  t.equal(stats.pingFailures, 1);
  t.same(stats.destroyed, { pingFailed: 1 });
  t.equal(stats.size, 1);
});

t.test('our pool: both idle connections are replaced after a restart', { skip }, async (t) => {
  const log = captureLog();
  const pool = createPool({ connection: server.url, max: 2, connWaitAge: 100, logger: log.logger });
  t.teardown(() => pool.end());
  const oldIds = await Promise.all(
    [0, 1].map(() =>
      pool.withConnection(async (c) => {
        await c.query('SELECT SLEEP(0.05)'); // held together, so two connections are made
        await c.query(MARK);
        return (await c.query<Row[]>(READ))[0][0]!.id;
      }),
    ),
  );
  t.equal(pool.stats().idle, 2);
  restartWhileBusy();
  busyWait(150);
  const results = await Promise.all([pool.query<Row[]>(READ), pool.query<Row[]>(READ)]);
  for (const [rows] of results) t.equal(rows[0]?.mark, null, 'a new session');
  const evictions = log.find('connection evicted');
  t.same(evictions.map((e) => e.connId).sort(), [...oldIds].sort(), 'both pre-restart connections evicted');
  for (const e of evictions) t.match(e.reason, /^(pingFailed|closedByServer)$/);
  t.equal(pool.stats().borrowed, 0);
});
