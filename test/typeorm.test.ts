// TypeORM on a fresh pool: `new DataSource({ type: 'mysql', driver: freshPoolDriver(pool) })`.
// Every way TypeORM reaches its pool is exercised (repositories, the query builder,
// transaction(), query runners with savepoints, both streams, migrations, destroy()), each
// shown to borrow from this pool; then the DataSource options checked against the pool's,
// the driver's own arguments, a cluster, destroy() with a query runner never released, and
// a failed initialize(). The fault tests are in typeorm-fault.test.ts.
import type { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import { DataSource, QueryFailedError } from 'typeorm';
import type { MysqlDataSourceOptions } from 'typeorm/driver/mysql/MysqlDataSourceOptions.js';
import { createCluster } from '../lib/cluster/index.js';
import { ConfigError, InvalidArgumentError, PoolClosedError, UnsupportedOperationError } from '../lib/errors.js';
import { createPool, type FreshPool } from '../lib/pool/index.js';
import { freshPoolDriver, TYPEORM_CONNECTION_DEFAULTS, type FreshPoolDriverOptions } from '../lib/typeorm/index.js';
import { captureLog } from './helpers/log.js';
import { sleep, startServer } from './helpers/mariadb.js';
import { checkAgainstConnection } from '../lib/typeorm/options.js';
import { AddPersonIndex1700000000001, BrokenMigration1700000000002, CreatePerson1700000000000, PersonSchema } from './helpers/typeorm.js';

const server = await startServer(t);
const silent = { debug() {}, info() {}, warn() {}, error() {} };
// TypeORM logs slow queries even with `logging: false`.
const quietLogger = { logQuery() {}, logQueryError() {}, logQuerySlow() {}, logSchemaBuild() {}, logMigration() {}, log() {} };

/** A database of its own for one test, so each starts without tables. */
async function database(name: string): Promise<string> {
  await server.query(`CREATE DATABASE ${name}`);
  return `mysql://root@${server.host}:${server.port}/${name}`;
}

/** A pool set up as TypeORM needs it, its log captured, its borrows counted by its 'acquire' event. */
function typeormPool(t: Test, url: string, connection: Record<string, unknown> = TYPEORM_CONNECTION_DEFAULTS) {
  const log = captureLog();
  const pool = createPool({ connection: { uri: url, ...connection }, max: 3, logger: log.logger });
  t.teardown(() => pool.end());
  let acquires = 0;
  pool.on('acquire', () => acquires++);
  return { pool, log, acquires: () => acquires };
}

type MysqlOptions = MysqlDataSourceOptions;

/** A DataSource on `pool` that creates its table by migration at initialize(); destroyed at teardown. */
function dataSourceOn(t: Test, pool: FreshPool, options: Partial<MysqlOptions> = {}, driverOptions?: FreshPoolDriverOptions): DataSource {
  const ds = new DataSource({
    type: 'mysql',
    driver: freshPoolDriver(pool, driverOptions),
    entities: [PersonSchema],
    migrations: [CreatePerson1700000000000],
    migrationsRun: true,
    logging: false,
    ...options,
  } as MysqlOptions);
  t.teardown(async () => {
    if (ds.isInitialized) await ds.destroy();
  });
  return ds;
}

/** Waits with the loop free until `condition` holds; false after `timeoutMs`. */
async function until(condition: () => boolean, timeoutMs = 5_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

/** True when `promise` settles within `ms`; never rejects. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

async function readAll(stream: Readable): Promise<unknown[]> {
  const rows: unknown[] = [];
  for await (const row of stream) rows.push(row);
  return rows;
}

t.test('repositories, query builder, transactions, query runners, streams and migrations on the pool', async (t) => {
  const url = await database('main');
  const { pool, log, acquires } = typeormPool(t, url);
  const ds = dataSourceOn(t, pool);
  await ds.initialize();
  t.ok(acquires() >= 3, `initialize() borrowed from the pool: its check, the version, the migration (${acquires()})`);
  t.same(
    (await ds.query('SELECT name FROM migrations')).map((r: { name: string }) => r.name),
    ['CreatePerson1700000000000'],
    'migrationsRun ran the migration',
  );
  const repo = ds.getRepository(PersonSchema);

  // Each step borrows from this pool: the counter would stay put on any other pool.
  const borrows = async (t: Test, what: string, fn: () => Promise<unknown>) => {
    const before = acquires();
    const result = await fn();
    t.ok(acquires() > before, `${what} borrowed from the pool`);
    return result;
  };

  t.test('repository save and find; BIGINT read as a string, as TypeORM expects', async (t) => {
    await borrows(t, 'save', () => repo.save(repo.create([{ name: 'ada', big: '9007199254740993' }, { name: 'grace', big: null }])));
    const all = await borrows(t, 'find', () => repo.find({ order: { id: 'ASC' } }));
    t.same(all, [
      { id: 1, name: 'ada', big: '9007199254740993' },
      { id: 2, name: 'grace', big: null },
    ]);
    t.same(await repo.findOneBy({ name: 'grace' }), { id: 2, name: 'grace', big: null });
    t.equal(await repo.count(), 2);
    const [row] = await ds.query('SELECT ? AS v', [{ a: 1 }]);
    t.equal(row.v, '[object Object]', 'an object parameter is a string (stringifyObjects), never a key = value list');
  });

  t.test('query builder: select, update, delete', async (t) => {
    const raw = await borrows(t, 'a select', () => repo.createQueryBuilder('p').select('p.name', 'name').where('p.id = :id', { id: 2 }).getRawOne());
    t.same(raw, { name: 'grace' });
    const updated = await ds.createQueryBuilder().update(PersonSchema).set({ name: 'Ada' }).where('id = :id', { id: 1 }).execute();
    t.equal(updated.affected, 1);
    await repo.save(repo.create({ name: 'temp' }));
    const deleted = await ds.createQueryBuilder().delete().from(PersonSchema).where('name = :n', { n: 'temp' }).execute();
    t.equal(deleted.affected, 1);
    t.same((await repo.find({ order: { id: 'ASC' } })).map((p) => p.name), ['Ada', 'grace']);
  });

  t.test('dataSource.transaction(): one connection, committed; rolled back when the function throws', async (t) => {
    const seen = (await borrows(t, 'transaction()', () =>
      ds.transaction(async (manager) => {
        const [{ id: first }] = await manager.query('SELECT CONNECTION_ID() AS id');
        await manager.save(PersonSchema, manager.create(PersonSchema, { name: 'edsger' }));
        const [{ id: again, inTx }] = await manager.query('SELECT CONNECTION_ID() AS id, @@in_transaction AS inTx');
        return { first, again, inTx };
      }),
    )) as { first: number; again: number; inTx: number };
    t.equal(seen.again, seen.first, 'one connection for the whole transaction');
    t.equal(Number(seen.inTx), 1, 'inside a transaction');
    t.ok(await repo.findOneBy({ name: 'edsger' }), 'committed');

    await t.rejects(
      ds.transaction('SERIALIZABLE', async (manager) => {
        await manager.save(PersonSchema, manager.create(PersonSchema, { name: 'barbara' }));
        throw new Error('changed my mind');
      }),
      { message: 'changed my mind' },
    );
    t.equal(await repo.findOneBy({ name: 'barbara' }), null, 'rolled back');
    t.equal(pool.stats().borrowed, 0);
  });

  t.test('a query runner: connect, nested transactions (savepoints), commit, release', async (t) => {
    const before = acquires();
    const qr = ds.createQueryRunner();
    await qr.connect();
    t.equal(acquires(), before + 1, 'connect() borrowed one connection');
    await qr.startTransaction();
    await qr.manager.save(PersonSchema, qr.manager.create(PersonSchema, { name: 'kept' }));
    await qr.startTransaction();
    await qr.manager.save(PersonSchema, qr.manager.create(PersonSchema, { name: 'undone' }));
    await qr.rollbackTransaction();
    await qr.commitTransaction();
    t.equal(acquires(), before + 1, 'everything ran on that one connection');
    t.equal(pool.stats().borrowed, 1);
    await qr.release();
    t.ok(await until(() => pool.stats().borrowed === 0), 'release() gave it back');
    t.ok(await repo.findOneBy({ name: 'kept' }), 'committed');
    t.equal(await repo.findOneBy({ name: 'undone' }), null, 'rolled back to the savepoint');
  });

  t.test('a query runner released with its transaction open is rolled back by the pool', async (t) => {
    const qr = ds.createQueryRunner();
    await qr.startTransaction();
    await qr.query("INSERT INTO person (name) VALUES ('forgotten')");
    await qr.release();
    t.ok(await until(() => log.find('connection returned with a transaction open; rolled back').length === 1), 'rolled back on return');
    t.equal(await repo.findOneBy({ name: 'forgotten' }), null);
  });

  t.test('streams: the query builder and a query runner; the connection goes back at the end', async (t) => {
    const before = acquires();
    const stream = await repo.createQueryBuilder('p').select('p.name', 'name').orderBy('p.id').stream();
    t.same(await readAll(stream), [{ name: 'Ada' }, { name: 'grace' }, { name: 'edsger' }, { name: 'kept' }]);
    t.ok(acquires() > before, 'borrowed from the pool');
    t.ok(await until(() => pool.stats().borrowed === 0), "released on the query's 'end'");

    const qr = ds.createQueryRunner();
    const events: string[] = [];
    const rows = await qr.stream('SELECT id FROM person ORDER BY id LIMIT 2', [], () => events.push('end'), () => events.push('error'));
    t.same(await readAll(rows), [{ id: 1 }, { id: 2 }]);
    t.same(events, ['end'], 'onEnd once, no onError');

    const failing = await qr.stream('SELECT * FROM no_such_table', [], () => events.push('end'), (err: { code?: string }) => events.push(`error ${err.code}`));
    await t.rejects(readAll(failing), { code: 'ER_NO_SUCH_TABLE' }, 'the stream errors');
    t.ok(await until(() => events.length === 3), 'onError and onEnd were called');
    t.same(events, ['end', 'error ER_NO_SUCH_TABLE', 'end']);
    t.same(await qr.query('SELECT 1 AS one'), [{ one: 1 }], 'the connection is still usable');
    await qr.release();
    t.ok(await until(() => pool.stats().borrowed === 0));
  });

  t.test('queries with a timeout ({ sql, timeout }) when enableQueryTimeout is set', async (t) => {
    // Every query of this DataSource gets the timeout, so it is long enough for a busy machine.
    const timed = dataSourceOn(t, pool, { maxQueryExecutionTime: 2_000, enableQueryTimeout: true, migrationsRun: false, logger: quietLogger }, { endPoolOnDestroy: false });
    await timed.initialize();
    const err = await timed.query('SELECT SLEEP(20)').catch((e: unknown) => e);
    t.type(err, QueryFailedError);
    t.equal((err as { code?: string }).code, 'PROTOCOL_SEQUENCE_TIMEOUT', 'mysql2 enforced the timeout');
    t.same(await timed.query('SELECT 1 AS one'), [{ one: 1 }], 'the next query gets a working connection');
    await timed.destroy();
    t.same(await pool.query('SELECT 1 AS one').then(([rows]) => rows), [{ one: 1 }], 'endPoolOnDestroy: false left the pool open');
  });

  t.test('runMigrations() and undoLastMigration() from a second DataSource sharing the pool', async (t) => {
    const second = dataSourceOn(t, pool, { migrations: [CreatePerson1700000000000, AddPersonIndex1700000000001], migrationsRun: false }, { endPoolOnDestroy: false });
    await second.initialize();
    const ran = await borrows(t, 'runMigrations()', () => second.runMigrations());
    t.same((ran as Array<{ name: string }>).map((m) => m.name), ['AddPersonIndex1700000000001'], 'only the new one');
    const indexes = await second.query("SHOW INDEX FROM person WHERE Key_name = 'person_name'");
    t.equal(indexes.length, 1, 'the index exists');
    await second.undoLastMigration();
    t.equal((await second.query("SHOW INDEX FROM person WHERE Key_name = 'person_name'")).length, 0, 'undone');
    await second.destroy();
  });

  t.test('destroy() ends the pool', async (t) => {
    t.equal(pool.stats().borrowed, 0, 'nothing left borrowed');
    await ds.destroy();
    await t.rejects(pool.query('SELECT 1'), PoolClosedError);
  });
});

t.test("the DataSource's connection options are checked against the pool's", async (t) => {
  const url = await database('options');

  t.test("a pool without TypeORM's defaults: initialize() rejects, the pool stays open, and a retry can succeed", async (t) => {
    const { pool, acquires } = typeormPool(t, url, {});
    const ds = dataSourceOn(t, pool, { migrationsRun: false });
    const err = await ds.initialize().catch((e: unknown) => e);
    t.type(err, ConfigError);
    t.match(err, { code: 'ERR_FRESH_POOL_CONFIG', field: 'DataSource.supportBigNumbers', value: true, message: /TYPEORM_CONNECTION_DEFAULTS/ });
    t.equal(acquires(), 1, 'found on the first borrow');
    t.equal(pool.stats().borrowed, 0, 'that connection went back');
    t.same(await pool.query('SELECT 1 AS one').then(([rows]) => rows), [{ one: 1 }], 'the pool was not ended');

    // The same pool, with a DataSource that asks for what it has: mysql2's defaults.
    const plain = dataSourceOn(t, pool, { migrationsRun: false, supportBigNumbers: false, bigNumberStrings: false, extra: { stringifyObjects: false } });
    await plain.initialize();
    t.same(await plain.query('SELECT 1 AS one'), [{ one: 1 }]);
  });

  t.test('pool settings and options that cannot be compared are refused before any borrow', async (t) => {
    const { pool, acquires } = typeormPool(t, url);
    const cases: Array<[Partial<MysqlOptions>, string]> = [
      [{ poolSize: 5 }, 'DataSource.poolSize'],
      [{ extra: { connectionLimit: 5 } }, 'DataSource.poolSize'],
      [{ acquireTimeout: 1_000 }, 'DataSource.acquireTimeout'],
      [{ ssl: { rejectUnauthorized: false } }, 'DataSource.ssl'],
      [{ flags: ['-FOUND_ROWS'] }, 'DataSource.flags'],
      [{ extra: { queueLimit: 10 } }, 'DataSource.extra.queueLimit'],
    ];
    for (const [options, field] of cases) {
      const ds = dataSourceOn(t, pool, { migrationsRun: false, ...options });
      await t.rejects(ds.initialize(), { name: 'ConfigError', code: 'ERR_FRESH_POOL_CONFIG', field }, field);
    }
    const secret = dataSourceOn(t, pool, { migrationsRun: false, extra: { password2: 'second-factor-s3cret' } });
    const err = await secret.initialize().catch((e: unknown) => e);
    t.match(err, { name: 'ConfigError', field: 'DataSource.extra.password2', value: '***' });
    t.notMatch((err as Error).message, /s3cret/, 'a secret is never shown');
    t.equal(acquires(), 0, 'no connection was borrowed');
  });

  t.test('connection options equal to the pool are accepted; different ones are not', async (t) => {
    const { pool } = typeormPool(t, url);
    const same = dataSourceOn(t, pool, { host: server.host, port: server.port, username: 'root', database: 'options', charset: 'utf8mb4_unicode_ci', migrationsRun: false }, { endPoolOnDestroy: false });
    await same.initialize();
    t.same(await same.query('SELECT DATABASE() AS db'), [{ db: 'options' }]);
    await same.destroy();

    const cases: Array<[Partial<MysqlOptions>, string, unknown]> = [
      [{ database: 'main' }, 'DataSource.database', 'main'],
      [{ port: server.port + 1 }, 'DataSource.port', server.port + 1],
      [{ username: 'app' }, 'DataSource.username', 'app'],
      [{ charset: 'utf8mb4' }, 'DataSource.charset', 'utf8mb4'],
      [{ timezone: 'Z' }, 'DataSource.timezone', 'Z'],
      [{ dateStrings: true }, 'DataSource.dateStrings', true],
    ];
    for (const [options, field, value] of cases) {
      const ds = dataSourceOn(t, pool, { migrationsRun: false, ...options });
      await t.rejects(ds.initialize(), { name: 'ConfigError', field, value, message: /connection options come from createPool/ }, field);
    }
    const ds = dataSourceOn(t, pool, { migrationsRun: false, password: 's3cret-typeorm' });
    const err = await ds.initialize().catch((e: unknown) => e);
    t.match(err, { name: 'ConfigError', field: 'DataSource.password', value: '***' });
    t.notMatch((err as Error).message, /s3cret/, 'the password is never shown');
    t.equal(pool.stats().borrowed, 0);
  });

  t.test("TypeORM's replication option is refused", async (t) => {
    const { pool } = typeormPool(t, url);
    const ds = dataSourceOn(t, pool, { migrationsRun: false, replication: { master: {}, slaves: [{}] } });
    await t.rejects(ds.initialize(), { name: 'UnsupportedOperationError', code: 'ERR_FRESH_POOL_UNSUPPORTED', operation: 'createPoolCluster' });
    t.throws(() => freshPoolDriver(pool).createPoolCluster(), UnsupportedOperationError);
  });
});

t.test("freshPoolDriver's own arguments", async (t) => {
  const { pool } = typeormPool(t, await database('args'));
  t.throws(() => freshPoolDriver({} as FreshPool), InvalidArgumentError);
  t.throws(() => freshPoolDriver(null as unknown as FreshPool), { name: 'InvalidArgumentError', field: 'pool' });
  t.throws(() => freshPoolDriver(pool, { endPoolOnDestroy: 'no' as unknown as boolean }), { name: 'InvalidArgumentError', field: 'options.endPoolOnDestroy' });
  t.throws(() => freshPoolDriver(pool, { endPoolOnDestroy: null as unknown as boolean }), { name: 'InvalidArgumentError', field: 'options.endPoolOnDestroy' });
  t.throws(() => freshPoolDriver(pool, { endPoolOnDestory: false } as FreshPoolDriverOptions), {
    name: 'InvalidArgumentError',
    field: 'options.endPoolOnDestory',
    message: /unknown option/,
  });
  for (const options of ['no', 42, null, true]) {
    t.throws(() => freshPoolDriver(pool, options as unknown as FreshPoolDriverOptions), { name: 'InvalidArgumentError', field: 'options' }, String(options));
  }
  for (const endTimeout of [-1, Number.NaN, Infinity, 2 ** 31, '1000', null]) {
    t.throws(() => freshPoolDriver(pool, { endTimeout } as unknown as FreshPoolDriverOptions), { name: 'InvalidArgumentError', field: 'options.endTimeout' }, String(endTimeout));
  }
  t.ok(freshPoolDriver(pool, { endPoolOnDestroy: undefined, endTimeout: 0 } as FreshPoolDriverOptions), 'undefined means the default; 0 is a timeout');
  const driver = freshPoolDriver(pool);
  t.equal(driver.pool, pool, 'the pool, for stats and events');
  const adapter = driver.createPool({ supportBigNumbers: true });
  t.equal(adapter.state, 'authenticated');
  await new Promise<void>((resolve, reject) => adapter.end((err) => (err ? reject(err) : resolve())));
  t.equal(adapter.state, 'disconnected');
  await t.rejects(adapter.getConnection(), PoolClosedError, 'an ended adapter lends nothing');
  t.same(await pool.query('SELECT 1 AS one').then(([rows]) => rows), [{ one: 1 }], 'ended before it lent anything: the pool stays open');
});

t.test("a connection's query events and promise(), as TypeORM uses them", async (t) => {
  const { pool } = typeormPool(t, await database('events'));
  const adapter = freshPoolDriver(pool).createPool();
  const conn = await adapter.getConnection();
  t.equal(conn.promise(), conn, 'promise() is the connection itself: it is promise-native');
  t.same(await conn.promise().query({ sql: 'SELECT 1 AS one', timeout: 5_000 }).then(([rows]) => rows), [{ one: 1 }], '{ sql, timeout } accepted');

  const events: unknown[] = [];
  const query = conn.query('SELECT 1 AS n UNION ALL SELECT 2');
  query.on('fields', (fields: Array<{ name: string }>) => events.push(`fields ${fields.map((f) => f.name).join()}`));
  query.on('result', (row: { n: number }, index: number) => events.push(`result ${row.n} ${index}`));
  query.on('error', (err: Error) => events.push(`error ${err.message}`));
  query.on('end', () => events.push('end'));
  t.same(await readAll(query.stream()), [{ n: 1 }, { n: 2 }]);
  t.same(events, ['fields n', 'result 1 0', 'result 2 0', 'end'], "mysql2 Query's events, in its order");

  // 'end' comes once every row has arrived, read or not, as mysql2's does.
  const unread = conn.query('SELECT 1 AS n');
  const ended = new Promise<void>((resolve) => unread.on('end', resolve));
  const stream = unread.stream();
  await ended;
  t.same(await readAll(stream), [{ n: 1 }], 'the rows are still there to read');

  // No 'error' listener: the stream errors, nothing is thrown.
  const failing = conn.query('SELECT * FROM no_such_table');
  const failedEnd = new Promise<void>((resolve) => failing.on('end', resolve));
  await t.rejects(readAll(failing.stream()), { code: 'ER_NO_SUCH_TABLE' });
  await failedEnd;

  const awaited = conn.query('SELECT 1 AS n');
  let heard = 0;
  awaited.on('end', () => heard++);
  await awaited;
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(heard, 0, 'awaited as a promise, a query emits nothing');

  conn.release();
  const late = conn.query('SELECT 1');
  const lateEvents: string[] = [];
  late.on('error', (err: Error) => lateEvents.push(err.name));
  late.on('end', () => lateEvents.push('end'));
  await t.rejects(readAll(late.stream()), { name: 'ConnectionReleasedError' });
  await new Promise((resolve) => setImmediate(resolve));
  t.same(lateEvents, ['ConnectionReleasedError', 'end'], 'after release(): error, then end');
  t.ok(await until(() => pool.stats().borrowed === 0));
  await adapter.end();
  await t.rejects(pool.query('SELECT 1'), PoolClosedError, 'end() after it lent a connection ends the pool (endPoolOnDestroy)');
});

t.test("type: 'mariadb' (inserts with RETURNING) on the same driver", async (t) => {
  const { pool, acquires } = typeormPool(t, await database('maria'));
  const sent: string[] = [];
  const logger = { ...quietLogger, logQuery: (query: string) => void sent.push(query) };
  const ds = dataSourceOn(t, pool, { type: 'mariadb', logger } as Partial<MysqlOptions>);
  await ds.initialize();
  const repo = ds.getRepository(PersonSchema);
  const saved = await repo.save(repo.create({ name: 'ada', big: '12' }));
  t.equal(saved.id, 1, 'the generated id came back');
  t.ok(sent.some((q) => /^INSERT .* RETURNING /.test(q)), 'TypeORM used INSERT ... RETURNING');
  await ds.transaction((manager) => manager.save(PersonSchema, manager.create(PersonSchema, { name: 'grace' })));
  t.same((await repo.find({ order: { id: 'ASC' } })).map((p) => p.name), ['ada', 'grace']);
  t.ok(acquires() >= 5);
  t.equal(pool.stats().borrowed, 0);
});

t.test('a cluster: every statement goes to its writer; destroy() ends the cluster', async (t) => {
  const url = await database('clustered');
  const cluster = createCluster({ nodes: [{ name: 'db', uri: url, ...TYPEORM_CONNECTION_DEFAULTS }], logger: silent });
  t.teardown(() => cluster.end());
  const ds = new DataSource({
    type: 'mysql',
    driver: freshPoolDriver(cluster),
    entities: [PersonSchema],
    migrations: [CreatePerson1700000000000],
    migrationsRun: true,
    logging: false,
  });
  await ds.initialize();
  const repo = ds.getRepository(PersonSchema);
  await repo.save(repo.create({ name: 'ada', big: '1' }));
  await ds.transaction((manager) => manager.save(PersonSchema, manager.create(PersonSchema, { name: 'grace' })));
  t.same((await repo.find({ order: { id: 'ASC' } })).map((p) => p.name), ['ada', 'grace']);
  const writer = cluster.stats().nodes.find((n) => n.name === 'db');
  t.equal(writer?.role, 'writer');
  t.ok((writer?.pool.acquires ?? 0) >= 5, `the writer's pool lent the connections (${writer?.pool.acquires})`);
  await ds.destroy();
  await t.rejects(cluster.query('SELECT 1'), PoolClosedError);
});

t.test('destroy() with a query runner never released', async (t) => {
  t.test('the pool waits endTimeout (default 5 s) for it, then closes its connection and ends', async (t) => {
    const { pool, log } = typeormPool(t, await database('unreleased'));
    const ds = dataSourceOn(t, pool, { migrationsRun: false });
    await ds.initialize();
    const qr = ds.createQueryRunner();
    t.teardown(() => qr.release());
    await qr.query('SELECT 1');
    const destroyed = ds.destroy();
    t.notOk(await settlesWithin(destroyed, 300), 'waits for the connection to come back first');
    t.ok(await settlesWithin(destroyed, 60_000), 'then destroy() resolves');
    t.equal(log.find('end() timed out; closing borrowed connections').length, 1, "the runner's connection was closed under it");
    await t.rejects(pool.query('SELECT 1'), PoolClosedError, 'the pool ended');
    await t.rejects(qr.query('SELECT 1'), 'the runner has no connection any more');
  });

  t.test('endTimeout bounds the wait; a runner released meanwhile ends it sooner', async (t) => {
    const { pool, log } = typeormPool(t, await database('bounded'));
    const ds = dataSourceOn(t, pool, { migrationsRun: false }, { endTimeout: 100 });
    await ds.initialize();
    const qr = ds.createQueryRunner();
    t.teardown(() => qr.release());
    await qr.query('SELECT 1');
    t.ok(await settlesWithin(ds.destroy(), 60_000), 'destroy() resolves');
    t.equal(log.find('end() timed out; closing borrowed connections').length, 1, "after closing the runner's connection");

    const other = typeormPool(t, await database('released'));
    const patient = dataSourceOn(t, other.pool, { migrationsRun: false }, { endTimeout: 120_000 });
    await patient.initialize();
    const held = patient.createQueryRunner();
    await held.query('SELECT 1');
    const destroyed = patient.destroy();
    t.notOk(await settlesWithin(destroyed, 100), 'waiting for the runner');
    await held.release();
    t.ok(await settlesWithin(destroyed, 60_000), 'resolves once the runner is released, long before endTimeout');
    t.equal(other.log.find('end() timed out; closing borrowed connections').length, 0, 'nothing was closed under a user');
    await t.rejects(other.pool.query('SELECT 1'), PoolClosedError);
  });

  t.test('endPoolOnDestroy: false: destroy() resolves at once and leaves the lease with its runner', async (t) => {
    const { pool } = typeormPool(t, await database('shared'));
    const ds = dataSourceOn(t, pool, { migrationsRun: false }, { endPoolOnDestroy: false });
    await ds.initialize();
    const qr = ds.createQueryRunner();
    t.teardown(() => qr.release());
    await qr.query('SELECT 1');
    t.ok(await settlesWithin(ds.destroy(), 60_000), 'destroy() resolves');
    t.equal(pool.stats().borrowed, 1, "the runner's connection is still lent");
    t.same(await qr.query('SELECT 1 AS one'), [{ one: 1 }], 'and still works');
    await qr.release();
    t.ok(await until(() => pool.stats().borrowed === 0), 'release() after destroy() gives it back');
    t.same(await pool.query('SELECT 1 AS one').then(([rows]) => rows), [{ one: 1 }], 'the pool is open');
  });
});

t.test('a failed initialize() after its first borrow (a migration fails)', async (t) => {
  const failing: Partial<MysqlOptions> = { migrations: [CreatePerson1700000000000, BrokenMigration1700000000002], migrationsRun: true, logger: quietLogger };

  // TypeORM calls destroy() on this failure, exactly as a user would: it ends the pool.
  t.test('by default the pool is ended, as TypeORM ends its own', async (t) => {
    const { pool } = typeormPool(t, await database('failed'));
    const broken = dataSourceOn(t, pool, failing);
    await t.rejects(broken.initialize(), QueryFailedError, 'initialize() rejects with the migration error');
    t.equal(broken.isInitialized, false, 'TypeORM destroyed it');
    await t.rejects(pool.query('SELECT 1'), PoolClosedError, 'the pool was ended');
    const fixed = dataSourceOn(t, pool);
    await t.rejects(fixed.initialize(), PoolClosedError, 'a retry on it cannot borrow');
  });

  t.test('endPoolOnDestroy: false: the pool stays open; a corrected DataSource on it initializes', async (t) => {
    const { pool } = typeormPool(t, await database('retried'));
    const broken = dataSourceOn(t, pool, failing, { endPoolOnDestroy: false });
    await t.rejects(broken.initialize(), QueryFailedError, 'initialize() rejects with the migration error');
    t.equal(pool.stats().borrowed, 0, 'every connection went back');
    const fixed = dataSourceOn(t, pool, {}, { endPoolOnDestroy: false });
    await fixed.initialize();
    t.same(await fixed.query('SELECT COUNT(*) AS n FROM person'), [{ n: '0' }]);
  });
});

t.test("option values mysql2 normalises compare as mysql2 holds them", async (t) => {
  t.test("password: '' against a pool without a password (live)", async (t) => {
    const { pool } = typeormPool(t, await database('nopassword'));
    const ds = dataSourceOn(t, pool, { migrationsRun: false, password: '' }, { endPoolOnDestroy: false });
    await ds.initialize();
    t.same(await ds.query('SELECT 1 AS one'), [{ one: 1 }]);
  });

  // A mysql2 ConnectionConfig of a pool given only a host and a user, as mysql2 fills it in.
  const held = { host: 'localhost', port: 3306, user: 'root', password: undefined, database: undefined, socketPath: undefined, timezone: 'local', connectTimeout: 10_000, charsetNumber: 224 };
  const accepted: Array<Record<string, unknown>> = [
    { password: '' },
    { host: '' },
    { port: '' },
    { port: 0 },
    { port: '3306' },
    { database: '' },
    { socketPath: '' },
    { timezone: '' },
    { charset: '' },
    { connectTimeout: Number.NaN },
  ];
  for (const options of accepted) {
    t.doesNotThrow(() => checkAgainstConnection(options, held), JSON.stringify(options, (_k, v: unknown) => (Number.isNaN(v) ? 'NaN' : v)));
  }
  t.doesNotThrow(() => checkAgainstConnection({ user: '', password: '' }, { ...held, user: undefined }), "user: '' is no user");
  t.doesNotThrow(() => checkAgainstConnection({ database: 'app' }, { ...held, database: 'app' }));
  t.doesNotThrow(() => checkAgainstConnection({ timezone: ' 01:00' }, { ...held, timezone: '+01:00' }), "a URL's space for '+'");
  t.throws(
    () => checkAgainstConnection({ timezone: 'Europe/Paris' }, { ...held, timezone: 'Z' }),
    { name: 'ConfigError', field: 'DataSource.timezone', message: /mysql2 would use 'Z'/ },
    "a zone mysql2 replaces with 'Z' is refused, not matched against 'Z'",
  );
  t.doesNotThrow(() => checkAgainstConnection({ database: '' }, { ...held, database: '' }), 'a URI without a database holds ""');
  t.throws(() => checkAgainstConnection({ database: 'app' }, { ...held, database: '' }), { name: 'ConfigError', field: 'DataSource.database' });
  const refused: Array<[Record<string, unknown>, string]> = [
    [{ user: '' }, 'DataSource.username'],
    [{ host: '127.0.0.1' }, 'DataSource.host'],
    [{ password: 'x' }, 'DataSource.password'],
    [{ port: 3307 }, 'DataSource.port'],
    [{ database: 'app' }, 'DataSource.database'],
    [{ timezone: 'Z' }, 'DataSource.timezone'],
  ];
  for (const [options, field] of refused) {
    t.throws(() => checkAgainstConnection(options, held), { name: 'ConfigError', field }, JSON.stringify(options));
  }
});
