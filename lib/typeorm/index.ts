/**
 * TypeORM on a `FreshPool` (entry point `mysql-fresh-pool/typeorm`): one line in the
 * DataSource options, `driver: freshPoolDriver(pool)`, and every repository call, query
 * builder, `transaction()`, query runner, stream and migration runs on connections this pool
 * lent and checked.
 *
 * What TypeORM's MySQL driver uses of the module given as `driver` (default `mysql2`), from
 * its published source (typeorm 1.1.1, driver/mysql/MysqlDriver.js and MysqlQueryRunner.js;
 * the same driver serves `type: 'mysql'` and `type: 'mariadb'`, and it takes the module as
 * given, with no check of its name or version):
 * - the module: `createPool(options)` with the mysql2 options it built from the DataSource
 *   (`FreshPoolDriver.createPool`), and `createPoolCluster(options)` for its `replication`
 *   option (refused: give a `FreshCluster` instead);
 * - the pool: `getConnection(callback)` once right after `createPool` (to fail `initialize()`
 *   on bad credentials), then for each query runner; `end(callback)` from
 *   `dataSource.destroy()` (which `initialize()` also calls when it fails after connecting,
 *   indistinguishable from yours), and when that first borrow failed. No pool event is
 *   subscribed to.
 * - a connection: `listeners('error')` and `on('error', ...)`, which it attaches to log;
 *   `promise().query(sql | { sql, timeout }, values)` for every statement, transactions
 *   included (`START TRANSACTION`, `COMMIT`, `ROLLBACK`, `SAVEPOINT`, sent as statements);
 *   `query(sql, values)` then `.on('end')`, `.on('error')` and `.stream()` for
 *   `queryRunner.stream()` and `createQueryBuilder().stream()`, whose `'end'` and `'error'`
 *   release the query runner; and `release()` from `queryRunner.release()`.
 *
 * The pool adapter and its connections are the mysql2-pool adapter's (`createMysql2Adapter`),
 * so the checks of `withConnection` apply: the borrow checks the connection, each statement
 * inside a transaction checks it again after an idle spell (a connection lost with a
 * transaction open rejects with `TransactionLostError`, which TypeORM wraps in its
 * `QueryFailedError` as `driverError`, its `code` copied), and a connection given back with
 * a transaction open is rolled back.
 *
 * Files: `driver.ts` (the `driver` object and the pool TypeORM gets), `options.ts` (the
 * DataSource's options checked against the pool's connections).
 */
export { freshPoolDriver, FreshPoolDriver, TypeormPool, type FreshPoolDriverOptions, type TypeormTarget } from './driver.js';
export { TYPEORM_CONNECTION_DEFAULTS, type TypeormPoolOptions } from './options.js';
