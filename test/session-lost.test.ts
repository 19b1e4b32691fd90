// A held connection that dies is swapped before the next statement only while the borrower has
// left no state on its session. After a named lock (GET_LOCK), a session variable, SET
// TRANSACTION or a table lock, a silent swap would let the borrower go on without it (a job
// that no longer holds its lock, a transaction that is no longer READ ONLY): the statement
// rejects with SessionLostError instead, unsent. Each case first shows what the swap did.
import t, { type Test } from 'tap';
import { createPool, SessionLostError } from '../lib/index.js';
import { changesSession } from '../lib/session-state.js';
import { captureLog } from './helpers/log.js';
import { busyWait, startServer } from './helpers/mariadb.js';

const server = await startServer(t, { waitTimeoutSeconds: 1 });
const skip = !server.canRestart && 'needs wait_timeout=1';
await server.query('CREATE TABLE test.ro (id INT PRIMARY KEY)');

type Rows = Array<Record<string, unknown>>;
const one = async (conn: { query(sql: string): Promise<unknown> }, sql: string) => ((await conn.query(sql)) as [Rows])[0][0]!;

function poolFor(t: Test) {
  const log = captureLog();
  const pool = createPool({ connection: server.url, max: 1, logger: log.logger });
  t.teardown(() => pool.end());
  return { pool, log };
}

t.test('without session state, a held connection that died is swapped before the next statement, unseen', { skip }, async (t) => {
  const { pool, log } = poolFor(t);
  const [before, after] = await pool.withConnection(async (conn) => {
    const first = Number((await one(conn, 'SELECT CONNECTION_ID() AS id')).id);
    busyWait(2_500); // past wait_timeout: the server closes it meanwhile
    return [first, Number((await one(conn, 'SELECT CONNECTION_ID() AS id')).id)];
  });
  t.not(after, before, 'the statement ran on a new connection');
  t.equal(log.find('connection replaced before a statement').length, 1);
});

t.test('after GET_LOCK: the next statement rejects with SessionLostError, unsent; the lock is not silently gone', { skip }, async (t) => {
  const { pool, log } = poolFor(t);
  let err: unknown;
  await pool.withConnection(async (conn) => {
    t.equal(Number((await one(conn, "SELECT GET_LOCK('nightly-job', 0) AS got")).got), 1, 'the job holds its lock');
    busyWait(2_500);
    err = await conn.query("SELECT IS_USED_LOCK('nightly-job') = CONNECTION_ID() AS mine").catch((e: unknown) => e);
  });
  t.ok(err instanceof SessionLostError, `SessionLostError (got ${String(err)})`);
  t.match(err, { code: 'ERR_FRESH_POOL_SESSION_LOST', statement: "SELECT GET_LOCK('nightly-job', 0) AS got" });
  t.equal(log.find('connection replaced before a statement').length, 0, 'no swap');
  t.equal(log.find('connection lost after its session state was changed').length, 1, 'a warning names the loss');
  const [rows] = (await pool.query('SELECT CONNECTION_ID() AS id')) as unknown as [Rows];
  t.type(rows[0]!.id, 'number', 'the next borrow gets a fresh connection');
});

t.test('SET TRANSACTION READ ONLY, then the connection dies before BEGIN: BEGIN rejects; nothing is written outside READ ONLY', { skip }, async (t) => {
  const { pool } = poolFor(t);
  let err: unknown;
  await pool.withConnection(async (conn) => {
    await conn.query('SET TRANSACTION READ ONLY');
    busyWait(2_500);
    err = await conn.query('START TRANSACTION').catch((e: unknown) => e);
    if (err === undefined) await conn.query('INSERT INTO test.ro VALUES (1)').then(() => conn.query('COMMIT'), () => undefined);
  });
  t.ok(err instanceof SessionLostError, `START TRANSACTION rejects with SessionLostError (got ${String(err)})`);
  t.same(await server.query('SELECT id FROM test.ro'), [], 'no row written');
});

t.test('a session variable set by one loan does not stop the next loan\'s swap', { skip }, async (t) => {
  const { pool, log } = poolFor(t);
  await pool.withConnection((conn) => conn.query("SET @tenant = 'a'"));
  const ids = await pool.withConnection(async (conn) => {
    const first = Number((await one(conn, 'SELECT CONNECTION_ID() AS id')).id);
    busyWait(2_500);
    return [first, Number((await one(conn, 'SELECT CONNECTION_ID() AS id')).id)];
  });
  t.not(ids[1], ids[0], 'swapped: the flag belongs to the loan that set the variable');
  t.equal(log.find('connection replaced before a statement').length, 1);
});

t.test('changesSession: what counts as session state, and what does not', async (t) => {
  for (const sql of [
    'SET @x = 1',
    "  set names 'utf8mb4'",
    'SET SESSION time_zone = "+09:00"',
    'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE',
    '/* app */ SET autocommit = 0',
    "SELECT GET_LOCK('a', 10)",
    'select get_lock(?, 0) as got',
    'LOCK TABLES t WRITE',
    'CREATE TEMPORARY TABLE tmp (id INT)',
    'CREATE OR REPLACE TEMPORARY TABLE tmp (id INT)',
    'PREPARE s FROM "SELECT 1"',
    'SELECT @n := COUNT(*) FROM t',
    'SELECT id INTO @id FROM t LIMIT 1',
  ]) {
    t.ok(changesSession(sql), sql);
  }
  for (const sql of [
    'SELECT 1',
    "SELECT * FROM users WHERE email = 'a@b.com'",
    'INSERT INTO t (settings) VALUES (?)',
    'UPDATE t SET a = 1',
    'SET STATEMENT max_statement_time = 1 FOR SELECT 1',
    'START TRANSACTION',
    'CREATE TABLE t2 (id INT)',
    "SELECT RELEASE_LOCK('a')",
  ]) {
    t.notOk(changesSession(sql), sql);
  }
});
