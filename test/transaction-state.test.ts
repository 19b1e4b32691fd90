// The pool decides whether a returned connection needs a ROLLBACK from the status flags of OK
// packets. Every path where those flags can go stale must count as "a transaction may be
// open": a statement that failed (a CALL or a batch may have opened a transaction first), a
// statement still running when the loan ended, a result set with a column that looks like a
// flag. Otherwise the next borrower runs inside someone else's transaction, its write is
// acknowledged, then rolled back at its own return: an acknowledged write lost.
import t, { type Test } from 'tap';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { createPool, TransactionLostError, type FreshPool } from '../lib/index.js';
import { captureLog } from './helpers/log.js';
import { sleep, startServer } from './helpers/mariadb.js';
import { connectionId } from './helpers/sql.js';

const server = await startServer(t);
const multi = `${server.url}?multipleStatements=true`;

await server.query('CREATE TABLE IF NOT EXISTS test.ts_rows (k VARCHAR(64) PRIMARY KEY)');
await server.query('DROP PROCEDURE IF EXISTS test.ts_fails_midway');
// Opens a transaction, writes, then fails on a duplicate key: the error packet carries no flags.
await server.query(`CREATE PROCEDURE test.ts_fails_midway(k1 VARCHAR(64))
BEGIN
  START TRANSACTION;
  INSERT INTO test.ts_rows VALUES (k1);
  INSERT INTO test.ts_rows VALUES (k1);
END`);

let keys = 0;
const key = (label: string) => `${label}-${++keys}`;

async function present(k: string): Promise<boolean> {
  const rows = await server.query<RowDataPacket[]>('SELECT k FROM test.ts_rows WHERE k = ?', [k]);
  return rows.length === 1;
}

// The next borrower's autocommit write, acknowledged: must be durable once its call resolved.
async function nextBorrowerWrites(pool: FreshPool, k: string): Promise<number> {
  const [result] = await pool.query<mysql.ResultSetHeader>('INSERT INTO test.ts_rows VALUES (?)', [k]);
  await pool.query('SELECT 1'); // and a later borrow, so the connection has come back at least once
  return result.affectedRows;
}

function newPool(t: Test, url = server.url) {
  const log = captureLog();
  const pool = createPool({ connection: url, max: 1, logger: log.logger });
  t.teardown(() => pool.end());
  return { pool, log };
}

t.test('fault is real: on a plain mysql2 pool, a failed CALL leaves its transaction to the next borrower', async (t) => {
  const plain = mysql.createPool({ uri: server.url, connectionLimit: 1 });
  t.teardown(() => plain.end());
  const conn = await plain.getConnection();
  await t.rejects(conn.query('CALL test.ts_fails_midway(?)', [key('plain-call')]), { code: 'ER_DUP_ENTRY' });
  conn.release();
  const k = key('plain-next');
  const [result] = await plain.query<mysql.ResultSetHeader>('INSERT INTO test.ts_rows VALUES (?)', [k]);
  t.equal(result.affectedRows, 1, 'the write was acknowledged');
  t.equal(await present(k), false, 'yet no other session sees it: it is inside the inherited transaction');
});

t.test('a CALL that opened a transaction and failed: the next borrower gets no transaction', async (t) => {
  const { pool, log } = newPool(t);
  const first = key('call');
  await pool.withConnection(async (conn) => {
    await t.rejects(conn.query('CALL test.ts_fails_midway(?)', [first]), { code: 'ER_DUP_ENTRY' });
  });
  const k = key('after-call');
  t.equal(await nextBorrowerWrites(pool, k), 1);
  t.equal(await present(k), true, "the next borrower's acknowledged write is durable");
  t.equal(await present(first), false, "the failed CALL's own write was rolled back");
  t.equal(log.find('connection returned with a transaction open; rolled back').length, 0, 'the CALL borrower, not the next one, was cleaned up');
});

t.test('a multi-statement batch that opened a transaction and failed midway: same', async (t) => {
  const { pool } = newPool(t, multi);
  const first = key('batch');
  await pool.withConnection(async (conn) => {
    await t.rejects(conn.query('START TRANSACTION; INSERT INTO test.ts_rows VALUES (?); INSERT INTO test.ts_rows VALUES (?)', [first, first]), {
      code: 'ER_DUP_ENTRY',
    });
  });
  const k = key('after-batch');
  t.equal(await nextBorrowerWrites(pool, k), 1);
  t.equal(await present(k), true, "the next borrower's acknowledged write is durable");
  t.equal(await present(first), false);
});

t.test('a multi-statement batch that leaves a transaction open and ends on a SELECT', async (t) => {
  const { pool } = newPool(t, multi);
  const first = key('batch-select');
  await pool.withConnection(async (conn) => {
    await conn.query('START TRANSACTION; INSERT INTO test.ts_rows VALUES (?); SELECT 1', [first]);
  });
  const k = key('after-batch-select');
  t.equal(await nextBorrowerWrites(pool, k), 1);
  t.equal(await present(k), true);
  t.equal(await present(first), false, 'the uncommitted batch was rolled back');
});

t.test('a result set with a column named serverStatus is not mistaken for an OK packet', async (t) => {
  const { pool } = newPool(t);
  const first = key('column');
  await pool.withConnection(async (conn) => {
    await conn.query('START TRANSACTION');
    await conn.query('INSERT INTO test.ts_rows VALUES (?)', [first]);
    // 2 = SERVER_STATUS_AUTOCOMMIT alone: "no transaction", if it were read as flags.
    await conn.query('SELECT 2 AS serverStatus');
  });
  const k = key('after-column');
  t.equal(await nextBorrowerWrites(pool, k), 1);
  t.equal(await present(k), true, "the next borrower's acknowledged write is durable");
  t.equal(await present(first), false);
});

t.test('a statement still running when the loan ends: the return waits for it', async (t) => {
  const { pool } = newPool(t);
  const first = key('left-running');
  await pool.withConnection(async (conn) => {
    await conn.query('DO 1');
    // Not awaited: fn returns while these are in flight; the second opens a transaction.
    void conn.query('SELECT SLEEP(0.2)').catch(() => undefined);
    void conn.query('START TRANSACTION').catch(() => undefined);
    void conn.query('INSERT INTO test.ts_rows VALUES (?)', [first]).catch(() => undefined);
  });
  const k = key('after-left-running');
  t.equal(await nextBorrowerWrites(pool, k), 1);
  t.equal(await present(k), true, "the next borrower's acknowledged write is durable");
  t.equal(await present(first), false, 'the abandoned transaction was rolled back');
});

t.test('after a failed CALL, a lost connection is a lost transaction, not a silent reconnect', async (t) => {
  const { pool } = newPool(t);
  const first = key('call-then-kill');
  const err = await pool
    .withConnection(async (conn) => {
      await conn.query('CALL test.ts_fails_midway(?)', [first]).catch(() => undefined);
      server.killSync([conn.threadId]);
      await sleep(100); // the close arrives
      await conn.query('COMMIT');
      return 'committed';
    })
    .catch((e: unknown) => e);
  t.ok(err instanceof TransactionLostError, `TransactionLostError, not a COMMIT on a new connection (got ${String(err)})`);
  t.equal(await present(first), false);
});

t.test('changeUser: the next borrower gets the configured user and database', async (t) => {
  await server.query("CREATE USER IF NOT EXISTS 'ts_other'@'%' IDENTIFIED BY 'pw'");
  await server.query("GRANT ALL ON *.* TO 'ts_other'@'%'");
  await server.query('CREATE DATABASE IF NOT EXISTS ts_elsewhere');
  const { pool } = newPool(t);
  type Who = RowDataPacket & { u: string; d: string | null };
  const who = () => pool.query<Who[]>('SELECT CURRENT_USER() AS u, DATABASE() AS d').then(([rows]) => rows[0]!);
  const configured = await who();

  await pool.withConnection(async (conn) => {
    await conn.changeUser({ user: 'ts_other', password: 'pw' });
    const [rows] = await conn.query<Who[]>('SELECT CURRENT_USER() AS u');
    t.match(rows[0]!.u, /^ts_other@/, 'the borrower did change user');
  });
  t.same(await who(), configured, 'after changeUser({ user })');

  await pool.withConnection((conn) => conn.changeUser({ database: 'ts_elsewhere' }));
  t.same(await who(), configured, 'after changeUser({ database })');

  await pool.withConnection((conn) => conn.query('USE ts_elsewhere'));
  t.same(await who(), configured, 'after USE other_database');
  t.ok((pool.stats().destroyed.identityChanged ?? 0) >= 3, 'each such connection was closed on return');
});

t.test('a failed ordinary statement costs one ROLLBACK on return, and the connection is kept', async (t) => {
  const { pool } = newPool(t);
  const id = await pool.withConnection(async (conn) => {
    await t.rejects(conn.query('SELECT * FROM no_such_table'), { code: 'ER_NO_SUCH_TABLE' });
    return connectionId(conn);
  });
  t.equal(await pool.withConnection(connectionId), id, 'the same connection is lent again');
  t.same(pool.stats().destroyed, {}, 'nothing destroyed');
});

t.test('a statement left running loses its connection: its own handler sees it, nothing goes unhandled', async (t) => {
  const { pool } = newPool(t);
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => void unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => void process.off('unhandledRejection', onUnhandled));
  for (let round = 0; round < 3; round++) {
    let dangling: Promise<unknown> | undefined;
    const id = await pool.withConnection(async (conn) => {
      const own = await connectionId(conn);
      dangling = conn.query('SELECT SLEEP(1)').catch((e: { code?: string }) => e.code); // never awaited by fn
      return own;
    });
    await sleep(100);
    await server.query(`KILL CONNECTION ${id}`);
    // mysql2 answers the dying command twice (its error, then again as the socket goes): the
    // second answer must not make a second, unadopted rejection.
    t.match(await dangling, /PROTOCOL_CONNECTION_LOST|ER_CONNECTION_KILLED/, `round ${round}: the caller's own catch got the loss`);
    await sleep(50);
  }
  t.same(unhandled, [], 'no unhandled rejection');
  t.equal(await pool.withConnection(() => 'lent'), 'lent', 'the pool lends again: its in-flight count stayed true');
});
