/**
 * Knex on a `FreshPool`: `knex({ client: freshPoolClient(pool) })` (the `mysql-fresh-pool/knex`
 * entry point; Knex is an optional peer, loaded only by this entry).
 *
 * Knex pools raw driver connections itself (tarn) and checks them only with a synchronous look
 * at mysql2's flags, blind to a close the event loop has not read yet. This client is Knex's
 * own mysql2 client with its connection handling replaced: Knex's pool is never made, and each
 * connection comes from the `FreshPool` as an adapter connection (`Mysql2AdapterConnection`).
 *
 * Overridden on Knex's client (knex 3.x `lib/client.js`, `lib/dialects/mysql/index.js`):
 * `acquireConnection` (borrows; the first borrow also learns `database()` and, on Knex 3.3 and
 * later, every borrow waits for the server version Knex's `checkVersion` reads once),
 * `releaseConnection` (gives back; a connection Knex marked `__knex__disposed` after a query
 * timeout is destroyed instead), `initializePool` (only reopens after `destroy`), `destroy`,
 * `cancelQuery` (`KILL QUERY` on a one-off connection made with the options of the query's own
 * connection, `kill-query.ts`), `_stream` (also ends on the stream's 'close', so a stream
 * destroyed early gives its connection back), and `acquireRawConnection` /
 * `destroyRawConnection` (refused: only Knex's pool and its own `cancelQuery` called them).
 *
 * What Knex calls on a connection, all provided by the adapter connection: `query(options,
 * bindings, callback)` (`_query` in `lib/dialects/mysql/index.js`, and `checkVersion` through
 * `promisify`), `query(options, bindings).stream(options)` (`_stream`); this client's
 * `cancelQuery` reads `threadId` and `config` (mysql2's options of the connection underneath);
 * and Knex writes `__knexUid`, `__knexTxId` (`lib/execution/runner.js`,
 * `lib/execution/transaction.js`, `lib/execution/internal/query-executioner.js`) and
 * `__knex__disposed` (runner.js). `end`, `on('error')` and `removeAllListeners` were used
 * only by Knex's pool and raw connections, which this client does without.
 *
 * Files: `client.ts` (the client class), `kill-query.ts` (the cancel's one-off connection),
 * `errors.ts`, `knex-mysql2.d.ts` (the types of Knex's untyped mysql2 client, for compiling
 * only).
 */
export { freshPoolClient, type FreshPoolClientOptions } from './client.js';
export { KnexDestroyedError } from './errors.js';
