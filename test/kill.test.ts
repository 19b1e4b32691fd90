// KILL CONNECTION of pooled connections while the event loop is busy: the server closes the
// sockets, but the FIN sits unprocessed, so mysql2 still thinks the connections are alive.
// A pool that lends one of them at once hands the user a dead connection.
import t from 'tap';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { createPool, type FreshPool } from '../lib/index.js';
import { captureLog } from './helpers/log.js';
import { busyWait, startServer } from './helpers/mariadb.js';

const server = await startServer(t);

const LOST = /PROTOCOL_CONNECTION_LOST|ECONNRESET|EPIPE/;
const ID_SQL = 'SELECT CONNECTION_ID() AS id';

type IdRow = RowDataPacket & { id: number };
type Queryable = { query<T extends IdRow[] | RowDataPacket[]>(sql: string): Promise<[T, unknown]> };

/** This connection's id, after holding it `holdSeconds` so concurrent callers get distinct connections. */
async function connectionId(conn: Queryable, holdSeconds = 0): Promise<number> {
  if (holdSeconds > 0) await conn.query(`SELECT SLEEP(${holdSeconds})`);
  const [rows] = await conn.query<IdRow[]>(ID_SQL);
  return rows[0]!.id;
}

/** Kills `ids` from a child process (the loop is blocked meanwhile), then keeps it blocked so the FINs arrive unseen. */
function killWhileBusy(ids: number[]): void {
  server.killSync(ids);
  busyWait(200);
}

/** Opens `n` distinct connections in `pool` and returns their ids (each is idle afterwards). */
function openConnections(pool: FreshPool, n: number): Promise<number[]> {
  return Promise.all(Array.from({ length: n }, () => pool.withConnection((c) => connectionId(c, 0.05))));
}

t.test('one connection killed', async (t) => {
  t.test('fault is real: a mysql2 pool lends the killed connection', async (t) => {
    const plain = mysql.createPool({ uri: server.url, connectionLimit: 1 });
    t.teardown(() => plain.end());
    const id = await connectionId(plain);
    killWhileBusy([id]);
    await t.rejects(plain.query('SELECT 1'), { code: LOST });
  });

  t.test('our pool: query succeeds on a new connection, the killed one is evicted', async (t) => {
    const log = captureLog();
    const pool = createPool({ connection: server.url, max: 1, connWaitAge: 100, logger: log.logger });
    t.teardown(() => pool.end());
    const killedId = await pool.withConnection((c) => connectionId(c));
    killWhileBusy([killedId]);
    const newId = await pool.withConnection((c) => connectionId(c));
    t.not(newId, killedId, 'a new connection replaced the killed one');
    const evictions = log.find('connection evicted');
    t.equal(evictions.length, 1, 'one eviction');
    t.equal(evictions[0]?.connId, killedId, 'of the killed connection');
    t.equal(evictions[0]?.reason, 'pingFailed', 'found dead by the validation ping');
    t.equal(evictions[0]?.level, 30, 'logged at info');
    const stats = pool.stats();
    t.equal(stats.pingFailures, 1);
    t.same(stats.destroyed, { pingFailed: 1 });
    t.equal(stats.created, 2);
    t.equal(stats.size, 1);
  });
});

t.test('two connections killed', async (t) => {
  t.test('fault is real: a mysql2 pool lends both killed connections', async (t) => {
    const plain = mysql.createPool({ uri: server.url, connectionLimit: 2 });
    t.teardown(() => plain.end());
    const ids = await Promise.all([connectionId(plain, 0.05), connectionId(plain, 0.05)]);
    t.equal(new Set(ids).size, 2, 'two distinct connections');
    killWhileBusy(ids);
    const outcomes = await Promise.allSettled([plain.query('SELECT 1'), plain.query('SELECT 1')]);
    t.equal(outcomes.filter((o) => o.status === 'rejected').length, 2, 'both queries failed');
    for (const o of outcomes) if (o.status === 'rejected') t.match(o.reason, { code: LOST });
  });

  t.test('our pool: two concurrent queries succeed, both killed connections evicted', async (t) => {
    const log = captureLog();
    const pool = createPool({ connection: server.url, max: 2, connWaitAge: 100, logger: log.logger });
    t.teardown(() => pool.end());
    const killedIds = await openConnections(pool, 2);
    t.equal(new Set(killedIds).size, 2, 'two distinct connections');
    t.equal(pool.stats().idle, 2);
    killWhileBusy(killedIds);
    const newIds = await Promise.all([pool.query<IdRow[]>(ID_SQL), pool.query<IdRow[]>(ID_SQL)]).then((rs) =>
      rs.map(([rows]) => rows[0]!.id),
    );
    for (const id of newIds) t.notOk(killedIds.includes(id), `connection ${id} is a new one`);
    const evictions = log.find('connection evicted');
    t.same(evictions.map((e) => e.connId).sort(), [...killedIds].sort(), 'both killed connections evicted, nothing else');
    t.same(evictions.map((e) => e.reason), ['pingFailed', 'pingFailed']);
    t.equal(pool.stats().pingFailures, 2);
    t.same(pool.stats().destroyed, { pingFailed: 2 });
  });

  t.test('our pool: one borrow walks past both killed connections', async (t) => {
    const log = captureLog();
    const pool = createPool({ connection: server.url, max: 2, connWaitAge: 100, logger: log.logger });
    t.teardown(() => pool.end());
    const killedIds = await openConnections(pool, 2);
    killWhileBusy(killedIds);
    const newId = await pool.withConnection((c) => connectionId(c));
    t.notOk(killedIds.includes(newId), 'lent a new connection');
    // The first one lent is found dead by its ping; the other by its own ping or, once the
    // loop has turned while that ping waited, by its 'end' event. Either way both are gone.
    const evictions = log.find('connection evicted');
    t.same(evictions.map((e) => e.connId).sort(), [...killedIds].sort(), 'both killed connections evicted');
    const reasons = evictions.map((e) => e.reason);
    t.ok(reasons.includes('pingFailed'), 'the connection lent first failed its ping');
    for (const r of reasons) t.match(r, /^(pingFailed|closedByServer)$/);
    t.equal(pool.stats().size, 1, 'only the new connection is left');
  });
});
