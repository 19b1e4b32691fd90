// Drizzle on a fresh pool: `drizzle(createMysql2Adapter(pool))`, the library as published.
// First the ordinary use (a table, inserts, selects, the iterator, Drizzle's own transactions),
// then the busy-loop fault: a plain mysql2 pool under Drizzle fails, the adapter does not.
import t, { type Test } from 'tap';
import mysql from 'mysql2/promise';
import { eq, sql } from 'drizzle-orm';
import { int, mysqlTable, varchar } from 'drizzle-orm/mysql-core';
import { drizzle } from 'drizzle-orm/mysql2';
import { createPool } from '../lib/pool/index.js';
import { PoolClosedError, TransactionLostError } from '../lib/errors.js';
import { createMysql2Adapter, Mysql2PoolAdapter } from '../lib/mysql2-adapter/index.js';
import { UnsupportedOperationError } from '../lib/errors.js';
import { captureLog } from './helpers/log.js';
import { busyWait, sleep, startServer } from './helpers/mariadb.js';

const person = mysqlTable('person', {
  id: int('id').primaryKey().autoincrement(),
  name: varchar('name', { length: 100 }).notNull(),
});

const server = await startServer(t, { waitTimeoutSeconds: 1 });
const noShortTimeout = !server.canRestart && 'needs wait_timeout=1';
const DEAD = /ECONNRESET|PROTOCOL_CONNECTION_LOST|EPIPE/;

function freshDb(t: Test) {
  const log = captureLog();
  const pool = createPool({ connection: server.url, max: 2, logger: log.logger });
  t.teardown(() => pool.end());
  const db = drizzle(createMysql2Adapter(pool));
  return { pool, db, log };
}

const connectionId = sql<number>`CONNECTION_ID()`;

t.test('a table, inserts, selects, the iterator and transactions through Drizzle', async (t) => {
  const { pool, db } = freshDb(t);
  t.type(db.$client, Mysql2PoolAdapter, '$client is the adapter, typed as such');
  await db.execute(sql`DROP TABLE IF EXISTS person`);
  await db.execute(sql`CREATE TABLE person (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL)`);

  const [header] = await db.insert(person).values([{ name: 'ada' }, { name: 'grace' }]);
  t.equal(header.insertId, 1);
  t.equal(header.affectedRows, 2);
  t.same(await db.insert(person).values({ name: 'alan' }).$returningId(), [{ id: 3 }]);

  t.same(await db.select().from(person).orderBy(person.id), [
    { id: 1, name: 'ada' },
    { id: 2, name: 'grace' },
    { id: 3, name: 'alan' },
  ]);
  t.same(await db.select({ name: person.name }).from(person).where(eq(person.id, 2)), [{ name: 'grace' }]);
  await db.update(person).set({ name: 'Ada' }).where(eq(person.id, 1));
  await db.delete(person).where(eq(person.id, 3));
  t.same(await db.select({ id: person.id }).from(person).orderBy(person.id), [{ id: 1 }, { id: 2 }]);

  t.test('the iterator (a streamed query on a borrowed connection)', async (t) => {
    const names: string[] = [];
    for await (const row of db.select({ name: person.name }).from(person).orderBy(person.id).iterator()) names.push(row.name);
    t.same(names, ['Ada', 'grace']);
    // Given back by its end(); a streamed connection is rolled back first, so allow that moment.
    for (let i = 0; i < 100 && pool.stats().borrowed !== 0; i++) await sleep(10);
    t.equal(pool.stats().borrowed, 0, 'given back by its end()');
  });

  t.test('transaction: committed, on one connection', async (t) => {
    const id = await db.transaction(async (tx) => {
      const [{ conn }] = await tx.select({ conn: connectionId }).from(sql`DUAL`);
      const [inserted] = await tx.insert(person).values({ name: 'edsger' }).$returningId();
      const [{ conn: again }] = await tx.select({ conn: connectionId }).from(sql`DUAL`);
      t.equal(again, conn, 'one connection for the whole transaction');
      return inserted!.id;
    });
    t.same(await db.select({ name: person.name }).from(person).where(eq(person.id, id)), [{ name: 'edsger' }]);
  });

  t.test('transaction: rolled back by tx.rollback() and by a throw', async (t) => {
    await t.rejects(
      db.transaction(async (tx) => {
        await tx.insert(person).values({ name: 'barbara' });
        tx.rollback();
      }),
      { message: 'Rollback' },
    );
    await t.rejects(
      db.transaction(async (tx) => {
        await tx.insert(person).values({ name: 'barbara' });
        throw new Error('changed my mind');
      }),
      { message: 'changed my mind' },
    );
    t.same(await db.select().from(person).where(eq(person.name, 'barbara')), []);
  });

  t.test('nested transaction (savepoint) and isolation level', async (t) => {
    await db.transaction(
      async (tx) => {
        await tx.insert(person).values({ name: 'kept' });
        await t.rejects(
          tx.transaction(async (inner) => {
            await inner.insert(person).values({ name: 'dropped' });
            throw new Error('inner');
          }),
          { message: 'inner' },
        );
      },
      { isolationLevel: 'serializable' },
    );
    const names = (await db.select({ name: person.name }).from(person)).map((r) => r.name);
    t.ok(names.includes('kept'));
    t.notOk(names.includes('dropped'));
  });

  t.test('the pool itself refuses what needs one connection', async (t) => {
    await t.rejects(db.$client.beginTransaction(), UnsupportedOperationError);
    t.equal(pool.stats().borrowed, 0, 'no connection left borrowed');
  });
});

t.test('fault is real: Drizzle on a plain mysql2 pool fails after a busy loop', { skip: noShortTimeout }, async (t) => {
  const plain = mysql.createPool({ uri: server.url, connectionLimit: 2 });
  t.teardown(() => plain.end());
  const db = drizzle(plain);
  await db.select().from(person);
  busyWait(2_500);
  // Drizzle wraps the driver's error in DrizzleQueryError; mysql2's is its cause.
  await t.rejects(db.select().from(person), { cause: { code: DEAD } });
});

t.test('Drizzle on the adapter: no error after a busy loop past wait_timeout', { skip: noShortTimeout }, async (t) => {
  const { pool, db, log } = freshDb(t);
  const [{ conn: first }] = await db.select({ conn: connectionId }).from(sql`DUAL`);
  busyWait(2_500);
  const rows = await db.select({ id: person.id }).from(person).orderBy(person.id);
  t.ok(rows.length >= 2);
  const evicted = log.find('connection evicted');
  t.equal(evicted.length, 1);
  t.equal(evicted[0]?.connId, first);
  t.equal(evicted[0]?.reason, 'pingFailed');
  t.equal(pool.stats().borrowed, 0);
});

t.test('the iterator after a busy loop, and a transaction whose connection died', { skip: noShortTimeout }, async (t) => {
  const { db } = freshDb(t);
  await db.select().from(person);
  busyWait(2_500);
  let count = 0;
  for await (const _row of db.select().from(person).iterator()) count++;
  t.ok(count >= 2, 'the iterator works after the busy loop');

  await t.rejects(
    db.transaction(async (tx) => {
      await tx.insert(person).values({ name: 'lost' });
      busyWait(2_500);
      await tx.select().from(person);
    }),
    { cause: TransactionLostError },
  );
  t.same(await db.select().from(person).where(eq(person.name, 'lost')), [], 'the server rolled it back');
});

t.test('after end(), Drizzle queries reject with PoolClosedError', async (t) => {
  const { pool, db } = freshDb(t);
  await pool.end();
  await t.rejects(db.select().from(person), { cause: PoolClosedError });
});
