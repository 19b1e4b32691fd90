// initSql and onConnect: session state an application sets on every connection (time zone,
// sql_mode, names) must hold on every connection the pool makes by itself (on borrow, before a
// statement inside withConnection, after COM_RESET_CONNECTION), or a replaced connection
// silently answers in another time zone. A failing setup never lends a half set-up connection.
import t from 'tap';
import type { RowDataPacket } from 'mysql2/promise';
import { ConfigError, ConnectionSetupError, createPool, type FreshPoolConfig, type PoolConnection } from '../lib/index.js';
import { captureLog } from './helpers/log.js';
import { sleep, startServer } from './helpers/mariadb.js';
import { connectionId } from './helpers/sql.js';

const server = await startServer(t);
const ZONE = '+03:00';
const INIT = `SET time_zone = '${ZONE}'`;

type Session = RowDataPacket & { tz: string; tag: string | null; id: number };
async function session(conn: PoolConnection): Promise<Session> {
  const [rows] = await conn.query<Session[]>('SELECT @@session.time_zone AS tz, @tag AS tag, CONNECTION_ID() AS id');
  return rows[0]!;
}

function pool(t: Tap, extra: Partial<FreshPoolConfig> = {}) {
  const log = captureLog();
  const made: number[] = [];
  const p = createPool({
    connection: server.url,
    max: 1,
    initSql: INIT,
    onConnect: async (conn) => {
      // onConnect runs after initSql: it sees the zone already set.
      const [rows] = await conn.query<RowDataPacket[]>('SELECT @@session.time_zone AS tz');
      await conn.query('SET @tag = ?', [`after ${String(rows[0]!.tz)}`]);
      made.push(conn.threadId);
    },
    logger: log.logger,
    ...extra,
  });
  t.teardown(() => p.end());
  return { pool: p, log, made };
}
type Tap = { teardown(fn: () => unknown): void };

t.test('fault is real: state set by hand is gone on a connection the pool replaced', async (t) => {
  const p = createPool({ connection: server.url, max: 1, logger: captureLog().logger });
  t.teardown(() => p.end());
  const id = await p.withConnection(async (conn) => {
    await conn.query(INIT);
    return connectionId(conn);
  });
  server.killSync([id]);
  await sleep(100);
  const s = await p.withConnection(session); // replaced on borrow: a fresh session
  t.not(s.id, id, 'a new connection');
  t.not(s.tz, ZONE, 'the replacement answers in the server default zone');
  // Within one borrow the pool refuses to swap after such a SET (SessionLostError, see
  // session-lost.test.ts); across borrows only initSql or onConnect carry it.
});

t.test('a new connection on borrow is set up before it is lent', async (t) => {
  const { pool: p, made } = pool(t);
  const s = await p.withConnection(session);
  t.equal(s.tz, ZONE, 'initSql ran');
  t.equal(s.tag, `after ${ZONE}`, 'onConnect ran, after initSql');
  t.same(made, [s.id], 'once, on that connection');
});

t.test('a replacement made before a statement inside withConnection is set up', async (t) => {
  const { pool: p, made } = pool(t);
  const [before, after] = await p.withConnection(async (conn) => {
    const first = await session(conn);
    server.killSync([first.id]);
    await sleep(100);
    return [first, await session(conn)];
  });
  t.not(after!.id, before!.id, 'the statement ran on a replacement');
  t.equal(after!.tz, ZONE);
  t.equal(after!.tag, `after ${ZONE}`);
  t.equal(made.length, 2);
});

t.test('a connection replaced at borrow (maxAge) is set up', async (t) => {
  const { pool: p } = pool(t, { maxAge: 300, connWaitAge: 100 });
  const first = await p.withConnection(session);
  await sleep(400);
  const second = await p.withConnection(session);
  t.not(second.id, first.id, 'replaced for its age');
  t.equal(second.tz, ZONE);
});

t.test('resetOnReturn: COM_RESET_CONNECTION clears the session; setup runs again before the next loan', async (t) => {
  const { pool: p, made } = pool(t, { resetOnReturn: true });
  const first = await p.withConnection(async (conn) => {
    await conn.query("SET time_zone = '+05:00', @tag = 'mine'");
    return session(conn);
  });
  const second = await p.withConnection(session);
  t.equal(second.id, first.id, 'the same connection');
  t.equal(second.tz, ZONE, "the borrower's change is gone and initSql's is back");
  t.equal(second.tag, `after ${ZONE}`);
  t.equal(made.length, 2, 'onConnect ran again after the reset');
});

t.test("the user's own conn.reset() runs the setup again", async (t) => {
  const { pool: p } = pool(t);
  const s = await p.withConnection(async (conn) => {
    await conn.reset();
    return session(conn);
  });
  t.equal(s.tz, ZONE);
  t.equal(s.tag, `after ${ZONE}`);
});

t.test('a failing initSql: the borrow fails fast with ConnectionSetupError and nothing is lent', async (t) => {
  const log = captureLog();
  let lent = false;
  const p = createPool({ connection: server.url, initSql: [INIT, 'SET no_such_variable = 1'], acquireTimeout: 10_000, logger: log.logger });
  t.teardown(() => p.end());
  const started = Date.now();
  const err = await p.withConnection(() => (lent = true)).catch((e: unknown) => e);
  t.ok(err instanceof ConnectionSetupError, `ConnectionSetupError (got ${String(err)})`);
  t.match(err, { code: 'ERR_FRESH_POOL_CONNECTION_SETUP', cause: { code: 'ER_UNKNOWN_SYSTEM_VARIABLE' } });
  t.match((err as Error).message, /SET no_such_variable = 1/, 'the message names the statement');
  t.ok(Date.now() - started < 5_000, 'a setup the server refuses is not retried until acquireTimeout (10 s)');
  t.equal(lent, false, 'fn never ran');
  t.equal(p.stats().size, 0, 'the half set-up connection was closed');
  await t.rejects(p.ready(), ConnectionSetupError, 'ready() says the same');
});

t.test('a throwing onConnect fails that connection with its error as cause', async (t) => {
  const boom = new Error('no config service');
  let calls = 0;
  const p = createPool({
    connection: server.url,
    onConnect: () => {
      calls++;
      if (calls === 1) throw boom;
    },
    logger: captureLog().logger,
  });
  t.teardown(() => p.end());
  const err = await p.withConnection(() => 'lent').catch((e: unknown) => e);
  t.ok(err instanceof ConnectionSetupError);
  t.equal((err as Error).cause, boom);
  t.equal(await p.withConnection(() => 'lent'), 'lent', 'a later borrow gets a connection whose setup succeeded');
});

t.test('a setup that fails after a reset: reset() rejects and the connection is not lent again', async (t) => {
  let calls = 0;
  const p = createPool({
    connection: server.url,
    max: 1,
    onConnect: () => {
      calls++;
      if (calls === 2) throw new Error('second setup fails');
    },
    logger: captureLog().logger,
  });
  t.teardown(() => p.end());
  const first = await p.withConnection(async (conn) => {
    await t.rejects(conn.reset(), ConnectionSetupError);
    return connectionId(conn).catch(() => -1);
  });
  const second = await p.withConnection(connectionId);
  t.not(second, first, 'a new connection, set up');
});

t.test('config: initSql and onConnect are checked at createPool', async (t) => {
  t.throws(() => createPool({ connection: server.url, initSql: 5 as never }), { code: ConfigError.code, field: 'initSql' });
  t.throws(() => createPool({ connection: server.url, initSql: [INIT, ''] }), { code: ConfigError.code, field: 'initSql[1]' });
  t.throws(() => createPool({ connection: server.url, onConnect: 'SET x = 1' as never }), { code: ConfigError.code, field: 'onConnect' });
});
