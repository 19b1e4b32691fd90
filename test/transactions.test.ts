// pool.withTransaction: COMMIT when fn resolves, ROLLBACK when it throws (fn's error is what
// rejects), options applied to that one transaction, bad options refused before anything is
// borrowed, and the two ways a transaction can be lost told apart: found dead before COMMIT
// (TransactionLostError: the server rolled back) and lost while COMMIT was in flight
// (CommitOutcomeUnknownError: it may or may not have committed). Neither is ever retried.
import t, { type Test } from 'tap';
import { connect, createServer, type Socket } from 'node:net';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import {
  CommitOutcomeUnknownError,
  createPool,
  FreshPoolError,
  InvalidArgumentError,
  TransactionLostError,
  type FreshPool,
  type PoolConnection,
  type FreshPoolConfig,
} from '../lib/index.js';
import { captureLog } from './helpers/log.js';
import { busyWait, sleep, startServer } from './helpers/mariadb.js';
import { connectionId } from './helpers/sql.js';
import { loggedPool } from './helpers/pool.js';

const server = await startServer(t);


/** The ids in `table`, read from a separate connection (so: committed rows only). */
async function committedIds(table: string): Promise<number[]> {
  const rows = await server.query<Array<{ id: number }>>(`SELECT id FROM ${table} ORDER BY id`);
  return rows.map((r) => r.id);
}

let tables = 0;
/** A fresh table for one test. */
async function newTable(columns = 'id INT PRIMARY KEY'): Promise<string> {
  const name = `tx_${++tables}`;
  await server.query(`CREATE TABLE ${name} (${columns})`);
  return name;
}

const newPool = (t: Test, extra: Partial<FreshPoolConfig> = {}) => loggedPool(t, server.url, extra);

t.test('commit: the row is visible from another connection afterwards, and not before', async (t) => {
  const { pool } = newPool(t);
  const table = await newTable();
  const result = { done: true };
  let seenInside: number[] | undefined;
  const returned = await pool.withTransaction(async (conn) => {
    await conn.query(`INSERT INTO ${table} VALUES (1)`);
    seenInside = await committedIds(table);
    return result;
  });
  t.equal(returned, result, "fn's result passes through unchanged");
  t.same(seenInside, [], 'uncommitted while fn ran: it really was a transaction');
  t.same(await committedIds(table), [1], 'committed once fn resolved');
  t.equal(pool.stats().borrowed, 0);
});

t.test('rollback when fn throws: the row is absent and the very same error rejects', async (t) => {
  const { pool, log } = newPool(t);
  const table = await newTable();
  const thrown = new Error('fn failed');
  let idInside = 0;
  const caught = await pool
    .withTransaction(async (conn) => {
      idInside = await connectionId(conn);
      await conn.query(`INSERT INTO ${table} VALUES (1)`);
      throw thrown;
    })
    .catch((e: unknown) => e);
  t.equal(caught, thrown, 'identical error object');
  t.same(await committedIds(table), [], 'rolled back');
  t.equal(log.find('rollback failed').length, 0);
  t.equal(log.find('connection returned with a transaction open; rolled back').length, 0, 'withTransaction rolled back itself, not the return clean-up');
  t.equal(await pool.withConnection(connectionId), idInside, 'the connection was kept: a thrown error is not a broken connection');
});

t.test('rollback that fails: fn\'s error still rejects, the failed ROLLBACK is only logged', async (t) => {
  const { pool, log } = newPool(t);
  const table = await newTable();
  const thrown = new Error('fn failed after its connection died');
  let idInside = 0;
  const caught = await pool
    .withTransaction(async (conn) => {
      idInside = await connectionId(conn);
      await conn.query(`INSERT INTO ${table} VALUES (1)`);
      await server.query(`KILL CONNECTION ${idInside}`);
      await sleep(200); // the loop is free: the close is read
      throw thrown;
    })
    .catch((e: unknown) => e);
  t.equal(caught, thrown, "fn's own error, not the ROLLBACK's");
  t.equal(log.find('rollback failed').length, 1, 'the failed ROLLBACK was logged');
  t.same(await committedIds(table), []);
  t.not(await pool.withConnection(connectionId), idInside, 'the dead connection was replaced');
});

t.test('explicit conn.rollback() inside fn', async (t) => {
  const { pool } = newPool(t);
  const table = await newTable();
  const returned = await pool.withTransaction(async (conn) => {
    await conn.query(`INSERT INTO ${table} VALUES (1)`);
    await conn.rollback();
    return 'rolled back by hand';
  });
  t.equal(returned, 'rolled back by hand', 'withTransaction resolves (its COMMIT has nothing left to commit)');
  t.same(await committedIds(table), [], 'the row is gone');

  const beforeCount = Number((await server.query<Array<{ Value: string }>>("SHOW GLOBAL STATUS LIKE 'Com_rollback'"))[0]!.Value);
  await pool.withConnection((conn) => conn.query('SELECT 1'));
  const afterCount = Number((await server.query<Array<{ Value: string }>>("SHOW GLOBAL STATUS LIKE 'Com_rollback'"))[0]!.Value);
  t.equal(afterCount, beforeCount, 'the return after a finished transaction sends no extra ROLLBACK');
});

t.test('isolationLevel applies to that transaction only', async (t) => {
  // MariaDB 10.11 has no @@transaction_isolation, and @@tx_isolation still reports the
  // session's level inside a transaction begun after SET TRANSACTION, so the level is
  // checked by what the transaction can see.
  const { pool } = newPool(t);
  const table = await newTable('id INT PRIMARY KEY, v INT');
  await server.query(`INSERT INTO ${table} VALUES (1, 0)`);
  const read = async (conn: PoolConnection) => (await conn.query<Array<RowDataPacket & { v: number }>>(`SELECT v FROM ${table} WHERE id = 1`))[0][0]!.v;

  // READ COMMITTED: a change committed by someone else mid-transaction is seen.
  const rc = await pool.withTransaction(
    async (conn) => {
      const first = await read(conn);
      await server.query(`UPDATE ${table} SET v = 1 WHERE id = 1`);
      return [first, await read(conn)];
    },
    { isolationLevel: 'READ COMMITTED' },
  );
  t.same(rc, [0, 1], 'READ COMMITTED: the second read sees the committed change');

  // Same connection (max 1), no option: back to the default REPEATABLE READ.
  const rr = await pool.withTransaction(async (conn) => {
    const first = await read(conn);
    await server.query(`UPDATE ${table} SET v = 2 WHERE id = 1`);
    return [first, await read(conn)];
  });
  t.same(rr, [1, 1], 'no option on the same connection: REPEATABLE READ again (a consistent snapshot)');

  // READ UNCOMMITTED: another transaction's uncommitted change is seen (a dirty read).
  const other = await mysql.createConnection(server.url);
  t.teardown(() => other.end());
  await other.query('START TRANSACTION');
  await other.query(`UPDATE ${table} SET v = 99 WHERE id = 1`);
  const ru = await pool.withTransaction(read, { isolationLevel: 'READ UNCOMMITTED' });
  const rrAgain = await pool.withTransaction(read);
  await other.query('ROLLBACK');
  t.equal(ru, 99, 'READ UNCOMMITTED: dirty read');
  t.equal(rrAgain, 2, 'the next transaction does not read uncommitted data');
});

t.test('readOnly: a write inside rejects with the server\'s read-only-transaction error', async (t) => {
  const { pool } = newPool(t);
  const table = await newTable();
  let writeErr: unknown;
  let idInside = 0;
  const caught = await pool
    .withTransaction(
      async (conn) => {
        idInside = await connectionId(conn);
        await conn.query(`SELECT COUNT(*) FROM ${table}`); // reads are fine
        try {
          await conn.query(`INSERT INTO ${table} VALUES (1)`);
        } catch (e) {
          writeErr = e;
          throw e;
        }
      },
      { readOnly: true },
    )
    .catch((e: unknown) => e);
  t.match(writeErr, { code: 'ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION', errno: 1792 });
  t.equal(caught, writeErr, "the server's error, unwrapped, is what rejects");
  t.notOk(caught instanceof FreshPoolError);
  t.same(await committedIds(table), []);

  // An ordinary SQL error: the connection is kept, and read-only does not stick to it.
  await pool.withTransaction(async (conn) => {
    t.equal(await connectionId(conn), idInside, 'same connection');
    await conn.query(`INSERT INTO ${table} VALUES (2)`);
  });
  t.same(await committedIds(table), [2], 'the next transaction can write');
});

t.test('bad options reject with InvalidArgumentError before anything is borrowed', async (t) => {
  const { pool } = newPool(t);
  const cases: Array<[unknown, string]> = [
    [{ isolationLevel: 'READ SOMETIMES' }, 'isolationLevel'],
    [{ isolationLevel: 'read committed' }, 'isolationLevel'],
    [{ readOnly: 'yes' }, 'readOnly'],
    [{ readonly: true }, 'readonly'],
    [null, 'options'],
    ['SERIALIZABLE', 'options'],
  ];
  let called = false;
  const fn = () => {
    called = true;
  };
  for (const [options, field] of cases) {
    const err = await pool.withTransaction(fn, options as never).catch((e: unknown) => e);
    t.ok(err instanceof InvalidArgumentError, `${JSON.stringify(options)}: InvalidArgumentError`);
    t.match(err, { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field }, `${JSON.stringify(options)}: field ${field}`);
  }
  const notFn = await pool.withTransaction('SELECT 1' as never).catch((e: unknown) => e);
  t.match(notFn, { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field: 'fn' }, 'fn not a function');
  t.notOk(called, 'fn never ran');
  const stats = pool.stats();
  t.equal(stats.created, 0, 'no connection was made');
  t.equal(stats.size, 0);
  t.equal(stats.borrowed, 0);
});

t.test('connection known dead before COMMIT: TransactionLostError, not "unknown"', async (t) => {
  const { pool, log } = newPool(t, { connWaitAge: 60_000 });
  const table = await newTable();
  let idInside = 0;
  const err = await pool
    .withTransaction(async (conn) => {
      idInside = await connectionId(conn);
      await conn.query(`INSERT INTO ${table} VALUES (1)`);
      server.killSync([idInside]);
      await sleep(200); // loop free: mysql2 reads the close
    })
    .catch((e: unknown) => e);
  t.ok(err instanceof TransactionLostError, 'TransactionLostError');
  t.match(err, { code: 'ERR_FRESH_POOL_TRANSACTION_LOST' });
  t.notOk(err instanceof CommitOutcomeUnknownError);
  t.same(await committedIds(table), [], 'nothing committed');
  t.match(log.find('connection lost with a transaction open')[0], { connId: idInside });
  t.not(await pool.withConnection(connectionId), idInside, 'next borrow: a new connection');
});

t.test('fn that swallows TransactionLostError and resolves: withTransaction still rejects, nothing committed', async (t) => {
  const { pool } = newPool(t, { connWaitAge: 60_000 });
  const table = await newTable();
  let swallowed: unknown;
  const err = await pool
    .withTransaction(async (conn) => {
      const id = await connectionId(conn);
      await conn.query(`INSERT INTO ${table} VALUES (1)`);
      await server.query(`KILL CONNECTION ${id}`);
      await sleep(200);
      try {
        await conn.query(`INSERT INTO ${table} VALUES (2)`);
      } catch (e) {
        swallowed = e; // a careless fn
      }
      return 'looks fine to me';
    })
    .catch((e: unknown) => e);
  t.ok(swallowed instanceof TransactionLostError, 'the statement inside was refused');
  t.ok(err instanceof TransactionLostError, 'and COMMIT was refused too: the caller is told');
  t.same(await committedIds(table), []);
});

t.test('connection killed while the event loop is busy, just before COMMIT', async (t) => {
  // The kill happens in fn, then the loop stays blocked, so mysql2 has not read the close
  // when fn returns and COMMIT is due. The pool notices the stalled loop, lets it poll once,
  // finds the connection dead and never sends COMMIT: the outcome is known (rolled back).
  const { pool } = newPool(t, { connWaitAge: 60_000 });
  const table = await newTable();
  let idInside = 0;
  const err = await pool
    .withTransaction(async (conn) => {
      idInside = await connectionId(conn);
      await conn.query(`INSERT INTO ${table} VALUES (1)`);
      server.killSync([idInside]);
      busyWait(300);
    })
    .catch((e: unknown) => e);
  t.ok(err instanceof TransactionLostError, `TransactionLostError (got ${(err as Error)?.name})`);
  t.same(await committedIds(table), [], 'nothing committed');
  t.ok(pool.stats().loopStalls > 0, 'the stall was what revealed it');
});

/**
 * A relay in front of the server that cuts the connection at the first COMMIT it sees:
 * `before` drops the COMMIT (the server rolls back), `after` lets the server run it and
 * drops the reply (the server committed). Either way the client is left not knowing.
 */
async function startCommitCutter(mode: 'before' | 'after') {
  let commitsSeen = 0;
  let armed = true;
  const sockets: Socket[] = [];
  const relay = createServer((client) => {
    const upstream = connect(server.port, server.host);
    sockets.push(client, upstream);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    let pending = Buffer.alloc(0);
    let dropReplies = false;
    client.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      // Frame the client's packets: 3-byte length, 1-byte sequence id, payload.
      while (pending.length >= 4) {
        const size = pending.readUIntLE(0, 3);
        if (pending.length < 4 + size) break;
        const packet = pending.subarray(0, 4 + size);
        pending = pending.subarray(4 + size);
        const isCommit = packet[4] === 0x03 && packet.subarray(5).toString() === 'COMMIT';
        if (isCommit) commitsSeen++;
        if (isCommit && armed) {
          armed = false;
          if (mode === 'before') {
            client.destroy();
            upstream.destroy();
            return;
          }
          dropReplies = true;
        }
        upstream.write(packet);
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!dropReplies) {
        client.write(chunk);
        return;
      }
      client.destroy(); // the server answered COMMIT; the client never hears it
      upstream.destroy();
    });
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', () => resolve()));
  const port = (relay.address() as { port: number }).port;
  return {
    url: `mysql://root@127.0.0.1:${port}/test`,
    get commitsSeen() {
      return commitsSeen;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        relay.close(() => resolve());
      }),
  };
}

for (const mode of ['before', 'after'] as const) {
  t.test(`connection lost while COMMIT is in flight (${mode} the server ran it): CommitOutcomeUnknownError, not retried`, async (t) => {
    const cutter = await startCommitCutter(mode);
    t.teardown(() => cutter.close());
    const log = captureLog();
    const pool: FreshPool = createPool({ connection: cutter.url, max: 1, logger: log.logger });
    t.teardown(() => pool.end());
    const table = await newTable();
    let idInside = 0;
    const err = await pool
      .withTransaction(async (conn) => {
        idInside = await connectionId(conn);
        await conn.query(`INSERT INTO ${table} VALUES (1)`);
        return 'fn done';
      })
      .catch((e: unknown) => e);
    t.ok(err instanceof CommitOutcomeUnknownError, `CommitOutcomeUnknownError (got ${(err as Error)?.name}: ${(err as Error)?.message})`);
    t.match(err, { code: 'ERR_FRESH_POOL_COMMIT_UNKNOWN' });
    const cause = (err as Error).cause;
    t.match(cause, { code: /^(PROTOCOL_CONNECTION_LOST|ECONNRESET|EPIPE)$/, fatal: true }, "cause: the driver's error");
    t.notOk(cause instanceof FreshPoolError, 'the cause is not one of ours');
    t.equal(cutter.commitsSeen, 1, 'COMMIT was sent exactly once: never retried');
    // Why the outcome is "unknown": it really depends on where the connection broke.
    t.same(await committedIds(table), mode === 'before' ? [] : [1], mode === 'before' ? 'this time it was not committed' : 'this time it was committed');

    const nextId = await pool.withConnection(connectionId);
    t.not(nextId, idInside, 'the broken connection was not lent again');
    t.equal(pool.stats().borrowed, 0);
  });
}
