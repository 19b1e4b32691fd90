// Knex on a fresh pool: `knex({ client: freshPoolClient(pool) })`, Knex as published. The
// ordinary use (schema builder, inserts, selects, raw, transactions, streams, more queries
// than connections, destroy), each checked to have borrowed from the pool, then the
// configuration Knex's own pool would have taken, refused. The busy-loop fault is in
// knex-busy-loop.test.ts.
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import t from 'tap';
import knex, { type Knex } from 'knex';
import { createCluster, createPool, type AcquireEvent } from '../lib/index.js';
import { ConfigError, InvalidArgumentError, PoolClosedError } from '../lib/errors.js';
import { freshPoolClient, KnexDestroyedError } from '../lib/knex/index.js';
import { freshKnex, knexConnectionId } from './helpers/knex.js';
import { startServer } from './helpers/mariadb.js';
import { describeOutcome, until, within } from './helpers/settle.js';

const server = await startServer(t);

async function personTable(db: Knex, name: string): Promise<void> {
  await db.schema.dropTableIfExists(name);
  await db.schema.createTable(name, (table) => {
    table.increments('id');
    table.string('name', 100).notNullable();
    table.index(['name']);
  });
}

t.test('schema builder, insert, select, update, delete and raw, each on a borrowed connection', async (t) => {
  const { pool, db } = freshKnex(t, server.url);
  const acquired: AcquireEvent[] = [];
  pool.on('acquire', (e) => acquired.push(e));

  await personTable(db, 'person_crud');
  t.ok(await db.schema.hasTable('person_crud'), 'hasTable');
  const afterSchema = pool.stats().acquires;
  t.ok(afterSchema >= 3, `the schema statements borrowed from the pool (${afterSchema} borrows)`);

  const [firstId] = await db('person_crud').insert([{ name: 'ada' }, { name: 'grace' }]);
  t.equal(firstId, 1, 'insert returns the first insertId');
  t.same(await db('person_crud').select('id', 'name').orderBy('id'), [{ id: 1, name: 'ada' }, { id: 2, name: 'grace' }]);
  t.same(await db('person_crud').where({ id: 2 }).first('name'), { name: 'grace' });
  t.same(await db('person_crud').pluck('name').orderBy('id'), ['ada', 'grace']);
  t.equal(await db('person_crud').where({ id: 1 }).update({ name: 'Ada' }), 1, 'update returns affectedRows');
  const [rows] = await db.raw('SELECT name FROM ?? WHERE id = ?', ['person_crud', 1]);
  t.same(rows, [{ name: 'Ada' }], 'raw with bindings');
  t.equal(await db('person_crud').where({ id: 2 }).del(), 1, 'del returns affectedRows');
  const [{ n }] = await db('person_crud').count({ n: '*' });
  t.equal(Number(n), 1);

  t.equal(pool.stats().acquires - afterSchema, 8, 'one borrow per query');
  t.equal(acquired.length, pool.stats().acquires, "the pool's 'acquire' event fired for each");
  t.equal(pool.stats().borrowed, 0, 'every connection was given back');
  t.equal(pool.stats().size, 1, 'one connection served them all, one after another');
  t.equal(db.client.pool, undefined, "Knex's own pool was never made");
});

t.test('columnInfo, which reads database() from the connection the pool lent', async (t) => {
  const { db } = freshKnex(t, server.url);
  await personTable(db, 'person_info');
  const info = await db('person_info').columnInfo();
  t.same(Object.keys(info).sort(), ['id', 'name']);
  t.equal(info.name?.maxLength, 100);
  t.equal(db.client.database(), 'test');
});

t.test('the server version is read once, as on a connection of Knex\'s own pool', async (t) => {
  const { db } = freshKnex(t, server.url);
  await db.raw('SELECT 1');
  t.match(db.client.version, /^\d+\.\d+\.\d+$/, `version ${db.client.version}`);
  t.equal((db.client as unknown as { isMariaDB?: boolean }).isMariaDB, true, 'MariaDB recognized');
});

t.test('migrations: knex.migrate.latest() and rollback() (lock table, transactions) on the pool', async (t) => {
  const { pool, db } = freshKnex(t, server.url);
  const migrations: Record<string, Knex.Migration> = {
    '001_person': {
      up: (k) => k.schema.createTable('person_migrated', (table) => {
        table.increments('id');
        table.string('name');
      }),
      down: (k) => k.schema.dropTable('person_migrated'),
    },
    '002_seed': {
      up: (k) => k('person_migrated').insert({ name: 'seeded' }),
      down: (k) => k('person_migrated').del(),
    },
  };
  const migrationSource: Knex.MigrationSource<string> = {
    getMigrations: async () => Object.keys(migrations),
    getMigrationName: (name) => name,
    getMigration: async (name) => migrations[name]!,
  };
  const before = pool.stats().acquires;
  const [batch, ran] = await db.migrate.latest({ migrationSource, tableName: 'knex_migrations_fresh' });
  t.equal(batch, 1);
  t.same(ran, ['001_person', '002_seed']);
  t.same(await db('person_migrated').pluck('name'), ['seeded']);
  t.ok(pool.stats().acquires - before >= 3, `the migrator borrowed from the pool (${pool.stats().acquires - before} borrows)`);
  await db.migrate.rollback({ migrationSource, tableName: 'knex_migrations_fresh' });
  t.notOk(await db.schema.hasTable('person_migrated'), 'rolled back');
  t.equal(pool.stats().borrowed, 0);
});

t.test('transactions', async (t) => {
  const { pool, db } = freshKnex(t, server.url);
  await personTable(db, 'person_tx');

  t.test('committed: one connection from BEGIN to COMMIT', async (t) => {
    const before = pool.stats().acquires;
    const outer = await knexConnectionId(db);
    const result = await db.transaction(async (trx) => {
      const first = await knexConnectionId(trx);
      await trx('person_tx').insert({ name: 'edsger' });
      const [inTx] = await trx.raw('SELECT @@in_transaction AS inTx');
      t.equal(Number(inTx[0].inTx), 1, 'inside a transaction');
      t.equal(pool.stats().borrowed, 1, 'the transaction holds one connection');
      t.equal(await knexConnectionId(trx), first, 'the same connection for every statement');
      return trx('person_tx').where({ name: 'edsger' }).first('id');
    });
    t.same(result, { id: 1 });
    t.equal(pool.stats().acquires - before, 2, 'one borrow for the query before, one for the whole transaction');
    t.equal(await knexConnectionId(db), outer, 'the same pooled connection again afterwards');
    t.same(await db('person_tx').pluck('name'), ['edsger'], 'committed');
  });

  t.test('rolled back when the function throws; the error is what rejects', async (t) => {
    await t.rejects(
      db.transaction(async (trx) => {
        await trx('person_tx').insert({ name: 'barbara' });
        throw new Error('changed my mind');
      }),
      { message: 'changed my mind' },
    );
    t.same(await db('person_tx').where({ name: 'barbara' }), [], 'nothing committed');
    t.equal(pool.stats().borrowed, 0);
  });

  t.test('rolled back explicitly with trx.rollback()', async (t) => {
    const trx = await db.transaction();
    await trx('person_tx').insert({ name: 'alan' });
    await trx.rollback();
    t.ok(trx.isCompleted());
    t.same(await db('person_tx').where({ name: 'alan' }), [], 'nothing committed');
    t.equal(pool.stats().borrowed, 0, 'the connection came back on rollback');
  });

  t.test('a transaction object committed by hand, and a nested savepoint rolled back', async (t) => {
    const trx = await db.transaction();
    const id = await knexConnectionId(trx);
    await trx('person_tx').insert({ name: 'john' });
    await t.rejects(
      trx.transaction(async (inner) => {
        t.equal(await knexConnectionId(inner), id, 'the savepoint runs on the same connection');
        await inner('person_tx').insert({ name: 'inner' });
        throw new Error('undo the savepoint');
      }),
      { message: 'undo the savepoint' },
    );
    await trx.commit();
    t.same(await db('person_tx').whereIn('name', ['john', 'inner']).pluck('name'), ['john'], 'only the savepoint was undone');
  });

  t.test('a connection given back with a transaction open is rolled back by the pool', async (t) => {
    // Knex's client API, as code that manages a connection by hand uses it.
    const conn = await db.client.acquireConnection();
    await db.raw('BEGIN').connection(conn);
    await db('person_tx').insert({ name: 'abandoned' }).connection(conn);
    await db.client.releaseConnection(conn);
    await until(() => pool.stats().borrowed === 0, 5_000, 'the connection back');
    t.same(await db('person_tx').where({ name: 'abandoned' }), [], 'the pool rolled it back');
  });
});

t.test('streams: stream(), pipe(), leaving early, and in a transaction', async (t) => {
  const { pool, db } = freshKnex(t, server.url);
  await personTable(db, 'person_stream');
  await db('person_stream').insert(Array.from({ length: 50 }, (_, i) => ({ name: `p${i}` })));

  const before = pool.stats().acquires;
  const names: string[] = [];
  for await (const row of db('person_stream').select('name').orderBy('id').stream({ highWaterMark: 4 })) names.push(row.name);
  t.equal(names.length, 50);
  t.equal(names[49], 'p49');
  t.equal(pool.stats().acquires - before, 1, 'the stream borrowed one connection');
  await until(() => pool.stats().borrowed === 0, 5_000, 'the stream\'s connection back');

  const piped: number[] = [];
  const sink = new Writable({
    objectMode: true,
    write(row: { id: number }, _enc, done) {
      piped.push(row.id);
      done();
    },
  });
  await pipeline(db('person_stream').select('id').orderBy('id').stream(), sink);
  t.equal(piped.length, 50, 'pipeline');

  const viaPipe: number[] = [];
  await new Promise<void>((resolve, reject) => {
    const out = new Writable({
      objectMode: true,
      write(row: { id: number }, _enc, done) {
        viaPipe.push(row.id);
        done();
      },
    });
    out.on('finish', resolve).on('error', reject);
    db('person_stream').select('id').where('id', '<=', 10).pipe(out);
  });
  t.equal(viaPipe.length, 10, 'query.pipe(writable)');

  // Leaving after the first row: the rest is drained and the connection comes back usable.
  for await (const row of db('person_stream').select('name').orderBy('id').stream()) {
    t.equal(row.name, 'p0');
    break;
  }
  await until(() => pool.stats().borrowed === 0, 5_000, 'the connection of a stream left early back');
  t.equal((await db('person_stream').count({ n: '*' }))[0]?.n, 50, 'the next query runs');

  await db.transaction(async (trx) => {
    const id = await knexConnectionId(trx);
    await trx('person_stream').insert({ name: 'in-trx' });
    const seen: string[] = [];
    for await (const row of trx('person_stream').select('name').where({ name: 'in-trx' }).stream()) seen.push(row.name);
    t.same(seen, ['in-trx'], 'the stream sees the transaction\'s own write');
    t.equal(await knexConnectionId(trx), id, 'and ran on its connection, still held');
    t.equal(pool.stats().borrowed, 1);
  });
  t.same(await db('person_stream').where({ name: 'in-trx' }).pluck('name'), ['in-trx'], 'committed');
});

t.test('a stream destroyed while it waits for a connection: nothing borrowed for it is kept', async (t) => {
  const pool = createPool({ connection: server.url, max: 1, acquireTimeout: 10_000, logger: { debug() {}, info() {}, warn() {}, error() {} } });
  const db = knex({ client: freshPoolClient(pool, { endPoolOnDestroy: false }) });
  // Bounded: a connection kept for ever would hold an unbounded end() for ever.
  t.teardown(async () => {
    await db.destroy();
    await pool.end({ timeout: 2_000 });
  });
  await personTable(db, 'person_stream_waiting');
  const busy = db.raw('SELECT SLEEP(0.3)').then((r) => r);
  await until(() => pool.stats().borrowed === 1, 5_000, 'the only connection held');

  const stream = db('person_stream_waiting').stream();
  const closed = new Promise<void>((resolve) => stream.once('close', resolve));
  stream.destroy();
  // The callback form: its promise must settle too, not wait for an 'end' that never comes.
  const withHandler = db('person_stream_waiting').stream((s) => s.destroy());
  await busy;
  await closed;
  const handled = await within(withHandler, 8_000);
  t.equal(handled.status, 'fulfilled', `.stream(handler) settled, before acquireTimeout (${describeOutcome(handled)})`);
  await until(() => pool.stats().borrowed === 0 && pool.stats().waiting === 0, 5_000, 'every connection back');
  t.same(await db('person_stream_waiting').count({ n: '*' }), [{ n: 0 }], 'the next query gets the connection');
  t.equal(pool.stats().borrowed, 0);
});

t.test('concurrent first queries all wait for the server version, read once', async (t) => {
  const { pool, db } = freshKnex(t, server.url, { min: 2, max: 2 });
  await pool.query('DROP TABLE IF EXISTS unique_first');
  await pool.query('CREATE TABLE unique_first (a INT)');
  await until(() => pool.stats().idle === 2, 5_000, 'two idle connections, so both borrows are served at once');
  // Knex compiles dropUniqueIfExists only for MariaDB: the second borrow must not compile
  // before the first has read the version.
  const [plain, schema] = await Promise.allSettled([db.raw('SELECT 1'), db.schema.alterTable('unique_first', (table) => table.dropUniqueIfExists(['a']))]);
  t.equal(plain.status, 'fulfilled');
  t.equal(schema.status, 'fulfilled', `the schema change compiled for MariaDB (${schema.status === 'rejected' ? String(schema.reason) : 'ok'})`);
  t.equal((db.client as unknown as { isMariaDB?: boolean }).isMariaDB, true);
});

t.test('more concurrent queries than connections wait their turn in the pool', async (t) => {
  const { pool, db } = freshKnex(t, server.url, { max: 2 });
  const before = pool.stats().acquires;
  // A Knex query starts when awaited (`then`): all twelve are started at once here.
  const queries = Array.from({ length: 12 }, (_, i) => db.raw('SELECT ? AS n, CONNECTION_ID() AS id, SLEEP(0.05) AS s', [i]).then((r) => r));
  await until(() => pool.stats().waiting > 0, 5_000, 'borrows waiting for a connection');
  const results = await Promise.all(queries);
  t.same(results.map(([rows]) => Number(rows[0].n)), Array.from({ length: 12 }, (_, i) => i), 'every query ran, with its own bindings');
  const ids = new Set(results.map(([rows]) => Number(rows[0].id)));
  t.ok(ids.size <= 2, `at most max (2) connections served them (${ids.size})`);
  t.equal(pool.stats().acquires - before, 12);
  t.ok(pool.stats().size <= 2);
  t.equal(pool.stats().borrowed, 0);

  // Transactions beyond max too: each holds its connection until it ends.
  const trxs = await Promise.all(
    Array.from({ length: 5 }, (_, i) =>
      db.transaction(async (trx) => {
        const a = await knexConnectionId(trx);
        await trx.raw('SELECT SLEEP(0.02)');
        return { i, same: a === (await knexConnectionId(trx)) };
      }),
    ),
  );
  t.same(trxs.map((r) => r.same), [true, true, true, true, true], 'each transaction kept one connection while others waited');
});

t.test("a query outside a transaction that holds the only connection: the pool's AcquireTimeoutError", async (t) => {
  const { pool, db } = freshKnex(t, server.url, { max: 1, acquireTimeout: 300 });
  const seen: Array<{ uid: unknown; txId: unknown }> = [];
  db.on('query', (q: { __knexUid?: unknown; __knexTxId?: unknown }) => seen.push({ uid: q.__knexUid, txId: q.__knexTxId }));
  await db.transaction(async (trx) => {
    await trx.raw('SELECT 1');
    // Knex's classic deadlock: `db` instead of `trx` inside the transaction.
    await t.rejects(db.raw('SELECT 2'), { code: 'ERR_FRESH_POOL_ACQUIRE_TIMEOUT', name: 'AcquireTimeoutError' });
  });
  t.equal(pool.stats().borrowed, 0);
  t.ok(seen.length >= 3, `Knex's 'query' events (${seen.length})`);
  t.ok(seen.every((q) => typeof q.uid === 'string' && q.uid.startsWith('__knexUid')), 'each names the connection (__knexUid)');
  t.ok(seen.every((q) => typeof q.txId === 'string'), 'and the transaction (__knexTxId)');
  t.equal(new Set(seen.map((q) => q.uid)).size, 1, 'one connection for the whole transaction');
});

t.test('a query timeout: cancelled with KILL QUERY on a connection of its own, or the busy connection closed', async (t) => {
  const { pool, db } = freshKnex(t, server.url);
  await db.raw('SELECT 1');
  const acquired = pool.stats().acquires;
  await t.rejects(db.raw('SELECT SLEEP(10)').timeout(200, { cancel: true }), { name: 'KnexTimeoutError', message: /timeout of 200ms exceeded/ });
  t.equal(pool.stats().acquires - acquired, 1, 'the query borrowed; the KILL QUERY went outside the pool');
  await until(() => pool.stats().borrowed === 0, 5_000, 'the cancelled query\'s connection back');
  t.same(pool.stats().destroyed, {}, 'the cancelled connection stays in the pool');
  t.equal(Number((await db.raw('SELECT 2 AS n'))[0][0].n), 2);

  await t.rejects(db.raw('SELECT SLEEP(1)').timeout(100), { name: 'KnexTimeoutError' });
  await until(() => pool.stats().borrowed === 0, 10_000, 'the timed-out connection back');
  const destroyed = Object.values(pool.stats().destroyed).reduce((a, b) => a + b, 0);
  t.equal(destroyed, 1, `the connection still busy with the query was closed, not reused (${JSON.stringify(pool.stats().destroyed)})`);
  t.equal(Number((await db.raw('SELECT 3 AS n'))[0][0].n), 3, 'the pool lends another');
});

t.test('destroy() with endPoolOnDestroy: false: this Knex stops, the pool it was given stays open', async (t) => {
  const { pool, db } = freshKnex(t, server.url, {}, { endPoolOnDestroy: false });
  await db.raw('SELECT 1');
  await db.destroy();
  const err = await db.raw('SELECT 1').then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof KnexDestroyedError, `rejects with KnexDestroyedError (${String(err)})`);
  t.equal((err as PoolClosedError).code, 'ERR_FRESH_POOL_CLOSED');
  t.ok(err instanceof PoolClosedError);
  await t.rejects(db.transaction(async () => {}), { code: 'ERR_FRESH_POOL_CLOSED' }, 'a transaction too');
  t.same((await pool.query('SELECT 1 AS n'))[0], [{ n: 1 }], 'the pool still serves other code');
  db.initialize();
  t.equal(Number((await db.raw('SELECT 5 AS n'))[0][0].n), 5, 'knex.initialize() reopens it');
  let called = false;
  await db.destroy(() => {
    called = true;
  });
  t.ok(called, 'destroy(callback)');
});

t.test('destroy() ends the pool too, by default', async (t) => {
  const pool = createPool({ connection: server.url, max: 1, logger: { debug() {}, info() {}, warn() {}, error() {} } });
  t.teardown(() => pool.end());
  const db = knex({ client: freshPoolClient(pool) });
  await db.raw('SELECT 1');
  await db.destroy();
  await t.rejects(pool.query('SELECT 1'), PoolClosedError);
});

t.test('withUserParams shares the pool and the destroy of the instance it came from', async (t) => {
  const { pool, db } = freshKnex(t, server.url);
  const withParams = db.withUserParams({ tenant: 'a' });
  const before = pool.stats().acquires;
  t.equal(Number((await withParams.raw('SELECT 7 AS n'))[0][0].n), 7);
  t.equal(pool.stats().acquires - before, 1);
  await db.destroy();
  await t.rejects(withParams.raw('SELECT 1'), { code: 'ERR_FRESH_POOL_CLOSED' });
});

t.test("Knex's own connection and pool settings are refused, each saying where it belongs", async (t) => {
  const pool = createPool({ connection: server.url, max: 1, logger: { debug() {}, info() {}, warn() {}, error() {} } });
  t.teardown(() => pool.end());
  const client = freshPoolClient(pool);
  t.throws(() => knex({ client, connection: server.url }), { code: ConfigError.code, field: 'connection', message: /createPool/ });
  t.throws(() => knex({ client, pool: { min: 0, max: 3 } }), { code: ConfigError.code, field: 'pool', message: /max, min, acquireTimeout/ });
  t.throws(() => knex({ client, pool: { afterCreate: () => {} } }), { field: 'pool', message: /onConnect or initSql/ });
  t.throws(() => knex({ client, acquireConnectionTimeout: 1000 }), { code: ConfigError.code, field: 'acquireConnectionTimeout' });
  t.throws(() => freshPoolClient({} as never), { code: InvalidArgumentError.code, field: 'pool' });
  t.throws(() => freshPoolClient(pool, { endPoolOnDestroy: 'yes' } as never), { code: InvalidArgumentError.code, field: 'endPoolOnDestroy' });
  t.throws(() => freshPoolClient(pool, { destroyPool: true } as never), { code: InvalidArgumentError.code, field: 'destroyPool' });
  await t.rejects((knex({ client }).client as unknown as { acquireRawConnection(): Promise<unknown> }).acquireRawConnection(), {
    code: 'ERR_FRESH_POOL_UNSUPPORTED',
    message: /Knex client/,
  });
  t.equal(pool.stats().created, 0, 'nothing connected');
});

t.test('on a FreshCluster: statements go to the writer', async (t) => {
  const cluster = createCluster({ nodes: [{ name: 'db', uri: server.url }], acquireTimeout: 5_000, logger: { debug() {}, info() {}, warn() {}, error() {} } });
  t.teardown(() => cluster.end());
  const db = knex({ client: freshPoolClient(cluster, { endPoolOnDestroy: true }) });
  await personTable(db, 'person_cluster');
  await db.transaction(async (trx) => {
    await trx('person_cluster').insert({ name: 'ada' });
  });
  t.same(await db('person_cluster').pluck('name'), ['ada']);
  const node = cluster.stats().nodes.find((n) => n.name === 'db');
  t.ok((node?.pool.acquires ?? 0) >= 4, `the node's pool lent the connections (${node?.pool.acquires})`);
  await db.destroy();
  await t.rejects(cluster.query('SELECT 1'), { code: 'ERR_FRESH_POOL_CLOSED' }, 'endPoolOnDestroy ended the cluster');
});
