/**
 * A mysql2-pool look-alike backed by a `FreshPool`, for libraries that take a mysql2 pool:
 * Drizzle (`drizzle(adapter)`) and Kysely (`new MysqlDialect({ pool: adapter })`); TypeORM
 * gets it through its `driver` option (lib/typeorm/).
 *
 * What they call, from their published sources:
 * - Drizzle (`drizzle-orm/mysql2`): `query(options, values)` and `execute(sql, values)`,
 *   promise form, on the pool and on a connection; `'getConnection' in client` to tell a pool
 *   from a connection; `getConnection()` (promise) and `release()` for a transaction, which it
 *   drives with plain `begin` / `commit` / `rollback` statements; for `.iterator()`,
 *   `connection.query(options, values).stream()` then `connection.end()` to give it back. It
 *   calls `client.promise()` when the pool has it: the adapter's pool has none, it is
 *   promise-native (its connections have one, for TypeORM, returning themselves).
 * - Kysely (`MysqlDialect`): `pool.getConnection(callback)`, `connection.query(sql, values,
 *   callback)`, `connection.query(sql, values).stream({ objectMode: true })` for
 *   `.stream()`, `connection.release()`, and `pool.end(callback)` from `db.destroy()`.
 * - TypeORM (`MysqlDriver`, `MysqlQueryRunner`): `pool.getConnection(callback)`,
 *   `connection.promise().query(sql | { sql, timeout }, values)` for every statement,
 *   `connection.query(sql, values)` with `.on('end')`, `.on('error')` then `.stream()` for
 *   its streams, `connection.listeners('error')` / `on('error')`, `connection.release()`,
 *   and `pool.end(callback)`. `promise()` returns the connection itself, and a query read
 *   with `stream()` emits mysql2's `Query` events.
 *
 * Each statement goes through the lent connection's tracked methods, so the checks of
 * `withConnection` apply: the borrow checks the connection, and within a transaction each
 * statement checks it again after an idle spell. A streamed query cannot be tracked (it needs
 * mysql2's callback connection); the same check runs before it starts, and the connection is
 * cleaned up (ROLLBACK) when it comes back.
 *
 * A connection runs its commands in the order they were called, whatever their form, as
 * mysql2's command queue does: code that fires a statement without awaiting it and then sends
 * another (or releases the connection) relies on that.
 *
 * Files: `pool-adapter.ts` (the pool), `connection.ts` (a borrowed connection),
 * `command-queue.ts` (its command order), `query.ts` (a query, awaited or streamed),
 * `row-stream.ts` (a streamed query), `callbacks.ts` (mysql2's callback forms).
 */
export { createMysql2Adapter, Mysql2PoolAdapter, type AdapterTarget } from './pool-adapter.js';
export { Mysql2AdapterConnection } from './connection.js';
export { Mysql2AdapterQuery, type StreamOptions } from './query.js';
export type { StatementCallback } from './callbacks.js';
