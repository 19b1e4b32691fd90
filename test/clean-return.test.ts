// What the next borrower inherits. A connection that comes back with a transaction open (a
// hand-written BEGIN, autocommit switched off) is rolled back and put back to autocommit
// before anyone else gets it; one that comes back clean costs nothing extra (the OK packets'
// status flags already said so). resetOnReturn clears the session too. A connection-level
// error destroys the connection; an ordinary SQL error keeps it. A lent connection is dead to
// its borrower once given back.
import t, { type Test } from 'tap';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { ConnectionReleasedError, type FreshPoolConfig, type PoolConnection } from '../lib/index.js';
import { sleep, startServer } from './helpers/mariadb.js';
import { connectionId } from './helpers/sql.js';
import { loggedPool } from './helpers/pool.js';

const server = await startServer(t);


/** The ids in `table` as another connection sees them: committed rows only. */
async function committedIds(table: string): Promise<number[]> {
  const rows = await server.query<Array<{ id: number }>>(`SELECT id FROM ${table} ORDER BY id`);
  return rows.map((r) => r.id);
}

/** A server-wide statement counter (GLOBAL: SESSION status would be the admin's own session). */
async function globalStatus(name: string): Promise<number> {
  const rows = await server.query<Array<{ Value: string }>>(`SHOW GLOBAL STATUS LIKE '${name}'`);
  return Number(rows[0]!.Value);
}

let tables = 0;
async function newTable(): Promise<string> {
  const name = `cr_${++tables}`;
  await server.query(`CREATE TABLE ${name} (id INT PRIMARY KEY)`);
  return name;
}

const newPool = (t: Test, extra: Partial<FreshPoolConfig> = {}) => loggedPool(t, server.url, extra);

t.test('fault is real: a plain mysql2 pool hands the next borrower an open transaction', async (t) => {
  const plain = mysql.createPool({ uri: server.url, connectionLimit: 1 });
  t.teardown(() => plain.end());
  const table = await newTable();
  const c1 = await plain.getConnection();
  await c1.query('BEGIN');
  await c1.query(`INSERT INTO ${table} VALUES (1)`);
  c1.release();
  const c2 = await plain.getConnection();
  await c2.query(`INSERT INTO ${table} VALUES (2)`); // inside borrower 1's transaction
  c2.release();
  t.same(await committedIds(table), [], "borrower 2's write is stuck in borrower 1's uncommitted transaction");
});

t.test('a hand-written BEGIN left open is rolled back before the next borrower', async (t) => {
  const { pool, log } = newPool(t);
  const table = await newTable();
  const id1 = await pool.withConnection(async (conn) => {
    await conn.query('BEGIN');
    await conn.query(`INSERT INTO ${table} VALUES (1)`);
    return connectionId(conn); // returns without COMMIT
  });
  const id2 = await pool.withConnection(async (conn) => {
    await conn.query(`INSERT INTO ${table} VALUES (2)`);
    return connectionId(conn);
  });
  t.equal(id2, id1, 'the same connection (max 1): cleaned, not replaced');
  t.same(await committedIds(table), [2], "A rolled back; B committed on its own");
  const warned = log.find('connection returned with a transaction open; rolled back');
  t.equal(warned.length, 1, 'logged once');
  t.match(warned[0], { connId: id1, level: 40 });
  t.equal(log.find('connection evicted').length, 0);
});

t.test('the same when borrower 1 throws with its transaction open', async (t) => {
  const { pool, log } = newPool(t);
  const table = await newTable();
  const thrown = new Error('borrower 1 gave up');
  let id1 = 0;
  const caught = await pool
    .withConnection(async (conn) => {
      id1 = await connectionId(conn);
      await conn.query('START TRANSACTION');
      await conn.query(`INSERT INTO ${table} VALUES (1)`);
      throw thrown;
    })
    .catch((e: unknown) => e);
  t.equal(caught, thrown, "borrower 1's own error");
  const id2 = await pool.withConnection(async (conn) => {
    await conn.query(`INSERT INTO ${table} VALUES (2)`);
    return connectionId(conn);
  });
  t.equal(id2, id1);
  t.same(await committedIds(table), [2], 'A absent, B present');
  t.equal(log.find('connection returned with a transaction open; rolled back').length, 1);
});

t.test('a return with no transaction open sends no statement; an abandoned BEGIN sends one ROLLBACK', async (t) => {
  const { pool } = newPool(t);
  const table = await newTable();
  await pool.withConnection((conn) => conn.query('SELECT 1')); // connect and learn wait_timeout first

  const before = await globalStatus('Com_rollback');
  const setBefore = await globalStatus('Com_set_option');
  for (let i = 0; i < 50; i++) {
    await pool.withConnection(async (conn) => {
      switch (i % 5) {
        case 0:
          return conn.query('SELECT ?', [i]);
        case 1:
          return conn.query(`INSERT INTO ${table} VALUES (?)`, [i]);
        case 2:
          return conn.execute(`UPDATE ${table} SET id = id WHERE id = ?`, [i - 1]);
        case 3: {
          // a transaction the borrower finished itself
          await conn.query('BEGIN');
          await conn.query(`DELETE FROM ${table} WHERE id = ?`, [i - 2]);
          return conn.query('COMMIT');
        }
        default:
          return pool.stats();
      }
    });
  }
  await pool.withTransaction((conn) => conn.query(`INSERT INTO ${table} VALUES (1000)`));
  t.equal(await globalStatus('Com_rollback'), before, '51 clean returns: no ROLLBACK sent');
  t.equal(await globalStatus('Com_set_option'), setBefore, 'and no SET');

  await pool.withConnection((conn) => conn.query('BEGIN'));
  // Released asynchronously after the ROLLBACK: borrowing again waits for it (max 1).
  await pool.withConnection((conn) => conn.query('SELECT 1'));
  t.equal(await globalStatus('Com_rollback'), before + 1, 'an abandoned BEGIN: exactly one ROLLBACK');
});

t.test('autocommit=0 left by a borrower: restored, so the next borrower\'s write is committed', async (t) => {
  const { pool } = newPool(t);
  const table = await newTable();
  const id1 = await pool.withConnection(async (conn) => {
    await conn.query('SET autocommit = 0');
    await conn.query(`INSERT INTO ${table} VALUES (1)`); // implicitly opens a transaction
    return connectionId(conn);
  });
  const [id2, autocommit] = await pool.withConnection(async (conn) => {
    await conn.query(`INSERT INTO ${table} VALUES (2)`);
    const [rows] = await conn.query<Array<RowDataPacket & { ac: number }>>('SELECT @@autocommit AS ac');
    return [await connectionId(conn), rows[0]!.ac];
  });
  t.equal(id2, id1, 'same connection');
  t.equal(autocommit, 1, 'autocommit is back on');
  t.same(await committedIds(table), [2], "borrower 1's write rolled back; borrower 2's committed and visible to others");

  // SET autocommit = 0 alone (no write yet) is enough to be cleaned.
  await pool.withConnection((conn) => conn.query('SET autocommit = 0'));
  await pool.withConnection((conn) => conn.query(`INSERT INTO ${table} VALUES (3)`));
  t.same(await committedIds(table), [2, 3]);
});

t.test('statements sent around the tracking (the raw mysql2 connection) are cleaned up too', async (t) => {
  // The lent connection cannot see the OK packets of statements sent on `conn.connection`,
  // so it must assume the worst on return.
  const raw = (conn: PoolConnection, sql: string) =>
    new Promise<void>((resolve, reject) => {
      const core = (conn as unknown as { connection: { query(sql: string, cb: (err: Error | null) => void): void } }).connection;
      core.query(sql, (err) => (err ? reject(err) : resolve()));
    });

  t.test('BEGIN on the raw connection: rolled back', async (t) => {
    const { pool } = newPool(t);
    const table = await newTable();
    await pool.withConnection(async (conn) => {
      await raw(conn, 'BEGIN');
      await raw(conn, `INSERT INTO ${table} VALUES (1)`);
    });
    await pool.withConnection((conn) => conn.query(`INSERT INTO ${table} VALUES (2)`));
    t.same(await committedIds(table), [2]);
  });

  // Fails at the time of writing: cleanThenRelease sends ROLLBACK for an untracked return but
  // restores autocommit only when an OK packet said it was off, and none was seen. Borrower
  // 2's write then sits in an implicit transaction and is rolled back on its own return.
  t.test('SET autocommit = 0 on the raw connection: autocommit restored', async (t) => {
    const { pool } = newPool(t);
    const table = await newTable();
    await pool.withConnection((conn) => raw(conn, 'SET autocommit = 0'));
    const autocommit = await pool.withConnection(async (conn) => {
      await conn.query(`INSERT INTO ${table} VALUES (2)`);
      const [rows] = await conn.query<Array<RowDataPacket & { ac: number }>>('SELECT @@autocommit AS ac');
      return rows[0]!.ac;
    });
    t.equal(autocommit, 1, 'the next borrower has autocommit on');
    t.same(await committedIds(table), [2], "the next borrower's write is committed, visible to others");
  });

  t.test('SET autocommit = 0 as a prepared statement (conn.prepare): autocommit restored', async (t) => {
    const { pool } = newPool(t);
    const table = await newTable();
    await pool.withConnection(async (conn) => {
      const stmt = await conn.prepare('SET autocommit = 0');
      await stmt.execute([]);
      await stmt.close();
    });
    await pool.withConnection((conn) => conn.query(`INSERT INTO ${table} VALUES (2)`));
    t.same(await committedIds(table), [2], "the next borrower's write is committed");
  });
});

t.test('resetOnReturn: session variables do not outlive the borrow', async (t) => {
  const readX = async (conn: PoolConnection) => {
    const [rows] = await conn.query<Array<RowDataPacket & { x: number | null }>>('SELECT @x AS x');
    return [await connectionId(conn), rows[0]!.x] as const;
  };
  const setX = async (conn: PoolConnection) => {
    await conn.query('SET @x = 1');
    return connectionId(conn);
  };

  t.test('without it, @x persists (so the option is what clears it)', async (t) => {
    const { pool } = newPool(t);
    const id1 = await pool.withConnection(setX);
    const [id2, x] = await pool.withConnection(readX);
    t.equal(id2, id1, 'same connection');
    t.equal(x, 1, '@x is still 1 for borrower 2');
  });

  t.test('with it, @x is NULL for the next borrower on the same connection', async (t) => {
    const { pool } = newPool(t, { resetOnReturn: true });
    const id1 = await pool.withConnection(setX);
    const [id2, x] = await pool.withConnection(readX);
    t.equal(id2, id1, 'same connection: reset, not replaced');
    t.equal(x, null, '@x is NULL');
    t.equal(pool.stats().created, 1);
  });

  t.test('with it, an open transaction is gone too', async (t) => {
    const { pool } = newPool(t, { resetOnReturn: true });
    const table = await newTable();
    await pool.withConnection(async (conn) => {
      await conn.query('BEGIN');
      await conn.query(`INSERT INTO ${table} VALUES (1)`);
    });
    await pool.withConnection((conn) => conn.query(`INSERT INTO ${table} VALUES (2)`));
    t.same(await committedIds(table), [2]);
  });
});

t.test('an ordinary SQL error keeps the connection', async (t) => {
  const { pool, log } = newPool(t);
  const table = await newTable();
  const id1 = await pool.withConnection(connectionId);

  const syntax = await pool.withConnection((conn) => conn.query('SELEC 1')).catch((e: unknown) => e);
  t.match(syntax, { code: 'ER_PARSE_ERROR' });
  t.equal(await pool.withConnection(connectionId), id1, 'after a syntax error: same CONNECTION_ID');

  await pool.query(`INSERT INTO ${table} VALUES (1)`);
  const dup = await pool.withConnection((conn) => conn.query(`INSERT INTO ${table} VALUES (1)`)).catch((e: unknown) => e);
  t.match(dup, { code: 'ER_DUP_ENTRY', errno: 1062 });
  t.equal(await pool.withConnection(connectionId), id1, 'after a duplicate key: same CONNECTION_ID');

  // KILL QUERY interrupts the statement, not the connection.
  const interrupted = await pool
    .withConnection(async (conn) => {
      const id = await connectionId(conn);
      setTimeout(() => void server.query(`KILL QUERY ${id}`), 200);
      return conn.query('SELECT SLEEP(5)');
    })
    .catch((e: unknown) => e);
  t.match(interrupted, { code: 'ER_QUERY_INTERRUPTED' });
  t.equal(await pool.withConnection(connectionId), id1, 'after KILL QUERY: same CONNECTION_ID');

  t.equal(log.find('connection evicted').length, 0, 'nothing evicted');
  t.equal(pool.stats().created, 1);
});

t.test('a connection-level error destroys the connection', async (t) => {
  const { pool, log } = newPool(t);
  const id1 = await pool.withConnection(connectionId);
  const err = await pool
    .withConnection(async (conn) => {
      setTimeout(() => void server.query(`KILL CONNECTION ${id1}`), 200);
      return conn.query('SELECT SLEEP(5)');
    })
    .catch((e: unknown) => e);
  t.match(err, { code: /^(PROTOCOL_CONNECTION_LOST|ECONNRESET|ER_CONNECTION_KILLED)$/ }, 'the statement rejects with the driver error');
  const id2 = await pool.withConnection(connectionId);
  t.not(id2, id1, 'next borrow: a new CONNECTION_ID');
  const evicted = log.find('connection evicted');
  t.equal(evicted.length, 1);
  // KILL CONNECTION closes the socket cleanly; mysql2 emits 'end' before the statement
  // rejects, so the logged reason is closedByServer (the broken flag alone, with no close
  // seen, gives fatalError: next test).
  t.match(evicted[0], { connId: id1, reason: 'closedByServer', level: 30 });
  t.equal(pool.stats().size, 1);
});

t.test('a query timeout (socket still open, no close event) still destroys the connection: fatalError', async (t) => {
  // mysql2 gives up waiting (PROTOCOL_SEQUENCE_TIMEOUT) but leaves the socket open with the
  // answer still to come: only the error's kind tells the pool not to lend it again.
  const { pool, log } = newPool(t);
  const id1 = await pool.withConnection(connectionId);
  const err = await pool.withConnection((conn) => conn.query({ sql: 'SELECT SLEEP(2)', timeout: 100 })).catch((e: unknown) => e);
  t.match(err, { code: 'PROTOCOL_SEQUENCE_TIMEOUT' });
  const id2 = await pool.withConnection(connectionId);
  t.not(id2, id1, 'next borrow: a new CONNECTION_ID');
  t.match(log.find('connection evicted'), [{ connId: id1, reason: 'fatalError' }]);
  t.same(pool.stats().destroyed, { fatalError: 1 });
});

t.test('conn used after withConnection returned rejects with ConnectionReleasedError', async (t) => {
  const { pool } = newPool(t);
  let kept: PoolConnection | undefined;
  const id1 = await pool.withConnection(async (conn) => {
    kept = conn;
    await conn.query('SET @x = 1');
    return connectionId(conn);
  });
  const stale = kept!;
  for (const [what, call] of [
    ['query', () => stale.query('SET @x = 5')],
    ['execute', () => stale.execute('SELECT 1')],
    ['beginTransaction', () => stale.beginTransaction()],
    ['commit', () => stale.commit()],
  ] as const) {
    const err = await (call as () => Promise<unknown>)().catch((e: unknown) => e);
    t.ok(err instanceof ConnectionReleasedError, `${what}: ConnectionReleasedError`);
    t.match(err, { code: 'ERR_FRESH_POOL_CONNECTION_RELEASED' });
  }

  // Held by someone else now: the stale reference cannot reach it.
  const [id2, x] = await pool.withConnection(async (conn) => {
    const attempt = await stale.query('SET @x = 99').catch((e: unknown) => e);
    t.ok(attempt instanceof ConnectionReleasedError, 'stale query while borrower 2 holds the connection: refused');
    const [rows] = await conn.query<Array<RowDataPacket & { x: number }>>('SELECT @x AS x');
    return [await connectionId(conn), rows[0]!.x];
  });
  t.equal(id2, id1, 'borrower 2 has the same connection');
  t.equal(x, 1, "the stale SET never ran on borrower 2's connection");
  await sleep(0);
});
