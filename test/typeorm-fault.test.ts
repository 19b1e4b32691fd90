// The fault TypeORM meets in production: the server closes idle connections after
// wait_timeout while the event loop is busy, so the pool never hears of it. First on
// TypeORM's default setup (its own mysql2 pool): the next query fails. Then on this pool
// (`driver: freshPoolDriver(pool)`): repositories, a held query runner, a stream and a
// transaction, each after the same busy stretch.
import t, { type Test } from 'tap';
import { DataSource, QueryFailedError } from 'typeorm';
import type { MysqlDataSourceOptions } from 'typeorm/driver/mysql/MysqlDataSourceOptions.js';
import { TransactionLostError } from '../lib/errors.js';
import { createPool } from '../lib/pool/index.js';
import { freshPoolDriver, TYPEORM_CONNECTION_DEFAULTS } from '../lib/typeorm/index.js';
import { captureLog } from './helpers/log.js';
import { busyWait, startServer } from './helpers/mariadb.js';
import { CreatePerson1700000000000, PersonSchema } from './helpers/typeorm.js';

const server = await startServer(t, { waitTimeoutSeconds: 1 });
const noShortTimeout = !server.canRestart && 'needs a private server with wait_timeout=1';
const DEAD = /ECONNRESET|PROTOCOL_CONNECTION_LOST|EPIPE/;
const DIED = new Set(['pingFailed', 'pingTimeout', 'connectionError', 'closedByServer']);
// Three times wait_timeout: the server has closed the idle connections by then, even on a busy machine.
const BUSY_MS = 3_000;
// TypeORM logs a lost connection's 'error' event and failed queries even with `logging: false`.
const quietLogger = { logQuery() {}, logQueryError() {}, logQuerySlow() {}, logSchemaBuild() {}, logMigration() {}, log() {} };

async function database(name: string): Promise<string> {
  await server.query(`CREATE DATABASE ${name}`);
  return name;
}

const common = {
  type: 'mysql',
  entities: [PersonSchema],
  migrations: [CreatePerson1700000000000],
  migrationsRun: true,
  logging: false,
  logger: quietLogger,
} as const satisfies Partial<MysqlDataSourceOptions>;

async function initialized(t: Test, options: MysqlDataSourceOptions): Promise<DataSource> {
  const ds = new DataSource(options);
  await ds.initialize();
  t.teardown(async () => {
    if (ds.isInitialized) await ds.destroy();
  });
  return ds;
}

/** TypeORM on this pool, in a database of its own, its table made by migration. */
async function onFreshPool(t: Test, name: string) {
  const log = captureLog();
  const url = `mysql://root@${server.host}:${server.port}/${await database(name)}`;
  const pool = createPool({ connection: { uri: url, ...TYPEORM_CONNECTION_DEFAULTS }, max: 2, logger: log.logger });
  t.teardown(() => pool.end());
  const ds = await initialized(t, { ...common, driver: freshPoolDriver(pool) });
  return { pool, log, ds, repo: ds.getRepository(PersonSchema) };
}

t.test('fault is real: TypeORM on its default mysql2 pool fails after a busy loop past wait_timeout', { skip: noShortTimeout }, async (t) => {
  const name = await database('plain');
  const ds = await initialized(t, { ...common, host: server.host, port: server.port, username: 'root', database: name });
  const repo = ds.getRepository(PersonSchema);
  await repo.save(repo.create({ name: 'ada' }));
  t.equal(await repo.count(), 1);
  busyWait(BUSY_MS);
  const err = await repo.find().catch((e: unknown) => e);
  t.type(err, QueryFailedError, 'the query fails');
  t.match(err, { code: DEAD }, `the connection was gone (${String((err as { code?: unknown }).code)})`);
});

t.test('TypeORM on this pool: no error after a busy loop past wait_timeout', { skip: noShortTimeout }, async (t) => {
  const { pool, log, repo } = await onFreshPool(t, 'fresh');
  await repo.save(repo.create({ name: 'ada' }));
  t.equal(await repo.count(), 1);
  busyWait(BUSY_MS);
  t.same((await repo.find()).map((p) => p.name), ['ada'], 'the query succeeds');
  const evicted = log.find('connection evicted');
  t.ok(evicted.length >= 1, 'the dead connection was found before TypeORM got it');
  // Found by the borrow's ping, or by its close event when the pool let the loop turn first.
  t.ok(evicted.every((e) => DIED.has(e.reason as string)), `evicted as dead (${evicted.map((e) => e.reason).join(', ')})`);
  t.equal(pool.stats().borrowed, 0);
});

t.test('a query runner held across the busy loop: its next statement runs on a new connection', { skip: noShortTimeout }, async (t) => {
  const { log, ds } = await onFreshPool(t, 'held');
  const qr = ds.createQueryRunner();
  t.teardown(() => qr.release());
  const [{ id: first }] = await qr.query('SELECT CONNECTION_ID() AS id');
  busyWait(BUSY_MS);
  const [{ id: second }] = await qr.query('SELECT CONNECTION_ID() AS id');
  t.not(second, first, 'replaced before the statement, unseen by TypeORM');
  t.equal(log.find('connection replaced before a statement').length, 1);
});

t.test('a stream on a query runner held across the busy loop is checked before it is sent', { skip: noShortTimeout }, async (t) => {
  const { log, ds, repo } = await onFreshPool(t, 'streamed');
  await repo.save(repo.create([{ name: 'ada' }, { name: 'grace' }]));
  const qr = ds.createQueryRunner();
  t.teardown(() => qr.release());
  await qr.query('SELECT 1');
  busyWait(BUSY_MS);
  const rows: unknown[] = [];
  for await (const row of await qr.stream('SELECT name FROM person ORDER BY id')) rows.push(row);
  t.same(rows, [{ name: 'ada' }, { name: 'grace' }]);
  t.equal(log.find('connection replaced before a statement').length, 1, 'the held connection was replaced first');
});

t.test('transaction(): a connection lost mid-transaction rejects with TransactionLostError; the server rolled back', { skip: noShortTimeout }, async (t) => {
  const { pool, repo, ds } = await onFreshPool(t, 'lost');
  const err = await ds
    .transaction(async (manager) => {
      await manager.save(PersonSchema, manager.create(PersonSchema, { name: 'lost' }));
      busyWait(BUSY_MS);
      await manager.find(PersonSchema);
    })
    .catch((e: unknown) => e);
  t.type(err, QueryFailedError, "TypeORM's wrapper");
  t.type((err as QueryFailedError).driverError, TransactionLostError, 'driverError: the typed error');
  t.match(err, { code: TransactionLostError.code }, 'its code copied onto the QueryFailedError');
  t.equal(await repo.findOneBy({ name: 'lost' }), null, 'nothing of the transaction was kept');
  t.equal(pool.stats().borrowed, 0);
});
