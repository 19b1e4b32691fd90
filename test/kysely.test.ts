// Kysely on a fresh pool: `new MysqlDialect({ pool: createMysql2Adapter(pool) })`, the
// library as published. First the ordinary use (a table, inserts, selects, streaming, Kysely's
// own transactions), then the busy-loop fault: a plain mysql2 pool under Kysely fails, the
// adapter does not.
import t, { type Test } from 'tap';
import mysql from 'mysql2';
import { Kysely, MysqlDialect, sql, type Generated, type MysqlPool } from 'kysely';
import { createPool } from '../lib/pool/index.js';
import { PoolClosedError, TransactionLostError } from '../lib/errors.js';
import { createMysql2Adapter } from '../lib/mysql2-adapter/index.js';
import { captureLog } from './helpers/log.js';
import { busyWait, startServer } from './helpers/mariadb.js';

interface Database {
  person: { id: Generated<number>; name: string };
}

const server = await startServer(t, { waitTimeoutSeconds: 1 });
const noShortTimeout = !server.canRestart && 'needs wait_timeout=1';
const DEAD = /ECONNRESET|PROTOCOL_CONNECTION_LOST|EPIPE/;

// Typed without casts: the adapter is a Kysely `MysqlPool`.
function kyselyOn(pool: MysqlPool): Kysely<Database> {
  return new Kysely<Database>({ dialect: new MysqlDialect({ pool }) });
}

function freshDb(t: Test) {
  const log = captureLog();
  const pool = createPool({ connection: server.url, max: 2, logger: log.logger });
  const adapter = createMysql2Adapter(pool);
  const db = new Kysely<Database>({ dialect: new MysqlDialect({ pool: adapter }) });
  let destroyed = false;
  t.teardown(async () => {
    if (!destroyed) await db.destroy();
  });
  return { pool, adapter, db, log, destroy: async () => { destroyed = true; await db.destroy(); } };
}

const ids = (rows: Array<{ id: number | bigint }>) => rows.map((r) => Number(r.id));

t.test('a table, inserts, selects, streaming and transactions through Kysely', async (t) => {
  const { pool, db, destroy } = freshDb(t);
  await db.schema.dropTable('person').ifExists().execute();
  await db.schema
    .createTable('person')
    .addColumn('id', 'integer', (c) => c.autoIncrement().primaryKey())
    .addColumn('name', 'varchar(100)', (c) => c.notNull())
    .execute();

  const inserted = await db.insertInto('person').values([{ name: 'ada' }, { name: 'grace' }]).executeTakeFirstOrThrow();
  t.equal(inserted.insertId, 1n);
  t.equal(inserted.numInsertedOrUpdatedRows, 2n);

  const rows = await db.selectFrom('person').selectAll().orderBy('id').execute();
  t.same(rows, [{ id: 1, name: 'ada' }, { id: 2, name: 'grace' }]);
  const one = await db.selectFrom('person').select('name').where('id', '=', 2).executeTakeFirst();
  t.same(one, { name: 'grace' });

  const updated = await db.updateTable('person').set({ name: 'Ada' }).where('id', '=', 1).executeTakeFirst();
  t.equal(updated.numUpdatedRows, 1n);

  t.test('streaming', async (t) => {
    const streamed: string[] = [];
    for await (const row of db.selectFrom('person').select('name').orderBy('id').stream()) streamed.push(row.name);
    t.same(streamed, ['Ada', 'grace']);
    // Leaving the stream early gives the connection back in a usable state.
    for await (const row of db.selectFrom('person').select('name').orderBy('id').stream()) {
      t.equal(row.name, 'Ada');
      break;
    }
    t.equal((await db.selectFrom('person').select('id').execute()).length, 2);
  });

  t.test('transaction: committed', async (t) => {
    const result = await db.transaction().execute(async (trx) => {
      const { id: connId } = await sql<{ id: number }>`SELECT CONNECTION_ID() AS id`.execute(trx).then((r) => r.rows[0]!);
      await trx.insertInto('person').values({ name: 'edsger' }).execute();
      const again = await sql<{ id: number }>`SELECT CONNECTION_ID() AS id`.execute(trx).then((r) => r.rows[0]!.id);
      t.equal(again, connId, 'one connection for the whole transaction');
      return trx.selectFrom('person').select('id').where('name', '=', 'edsger').executeTakeFirstOrThrow();
    });
    t.equal(result.id, 3);
    t.same(ids(await db.selectFrom('person').select('id').orderBy('id').execute()), [1, 2, 3]);
  });

  t.test('transaction: rolled back when the function throws', async (t) => {
    await t.rejects(
      db.transaction().execute(async (trx) => {
        await trx.insertInto('person').values({ name: 'barbara' }).execute();
        throw new Error('changed my mind');
      }),
      { message: 'changed my mind' },
    );
    t.equal(await db.selectFrom('person').select('id').where('name', '=', 'barbara').executeTakeFirst(), undefined);
  });

  t.test('transaction with an isolation level, and a held connection', async (t) => {
    await db.transaction().setIsolationLevel('serializable').execute(async (trx) => {
      // SET TRANSACTION applies to this transaction only: @@tx_isolation shows the session's.
      const row = await sql<{ inTx: number }>`SELECT @@in_transaction AS inTx`.execute(trx).then((r) => r.rows[0]!);
      t.equal(Number(row.inTx), 1, 'inside the transaction');
    });
    await db.connection().execute(async (conn) => {
      await sql`SET @x = 42`.execute(conn);
      const row = await sql<{ x: number }>`SELECT @x AS x`.execute(conn).then((r) => r.rows[0]!);
      t.equal(Number(row.x), 42);
    });
  });

  t.test('no connection left borrowed; destroy() ends the pool', async (t) => {
    t.equal(pool.stats().borrowed, 0);
    await destroy();
    await t.rejects(pool.query('SELECT 1'), PoolClosedError);
  });
});

t.test('fault is real: Kysely on a plain mysql2 pool fails after a busy loop', { skip: noShortTimeout }, async (t) => {
  const plain = mysql.createPool({ uri: server.url, connectionLimit: 2 });
  const db = kyselyOn(plain);
  t.teardown(() => db.destroy());
  await db.selectFrom('person').select('id').execute();
  busyWait(2_500);
  await t.rejects(db.selectFrom('person').select('id').execute(), { code: DEAD });
});

t.test('Kysely on the adapter: no error after a busy loop past wait_timeout', { skip: noShortTimeout }, async (t) => {
  const { pool, db, log } = freshDb(t);
  const first = await sql<{ id: number }>`SELECT CONNECTION_ID() AS id`.execute(db).then((r) => r.rows[0]!.id);
  busyWait(2_500);
  const rows = await db.selectFrom('person').select('id').orderBy('id').execute();
  t.same(ids(rows), [1, 2, 3]);
  const evicted = log.find('connection evicted');
  t.equal(evicted.length, 1);
  t.equal(evicted[0]?.connId, first);
  t.equal(evicted[0]?.reason, 'pingFailed');
  t.equal(pool.stats().borrowed, 0);
});

t.test('a held connection: a statement and a stream after a busy loop', { skip: noShortTimeout }, async (t) => {
  const { db, log } = freshDb(t);
  await db.connection().execute(async (conn) => {
    const first = await sql<{ id: number }>`SELECT CONNECTION_ID() AS id`.execute(conn).then((r) => r.rows[0]!.id);
    busyWait(2_500);
    const second = await sql<{ id: number }>`SELECT CONNECTION_ID() AS id`.execute(conn).then((r) => r.rows[0]!.id);
    t.not(second, first, 'replaced before the statement, unseen by Kysely');
    busyWait(2_500);
    const streamed: number[] = [];
    for await (const row of conn.selectFrom('person').select('id').orderBy('id').stream()) streamed.push(row.id);
    t.same(streamed, [1, 2, 3], 'the stream was checked first too');
  });
  t.equal(log.find('connection replaced before a statement').length, 2);
});

t.test('a transaction whose connection died rejects with TransactionLostError', { skip: noShortTimeout }, async (t) => {
  const { db } = freshDb(t);
  await t.rejects(
    db.transaction().execute(async (trx) => {
      await trx.insertInto('person').values({ name: 'lost' }).execute();
      busyWait(2_500);
      await trx.selectFrom('person').select('id').execute();
    }),
    TransactionLostError,
  );
  t.equal(await db.selectFrom('person').select('id').where('name', '=', 'lost').executeTakeFirst(), undefined, 'the server rolled it back');
});
