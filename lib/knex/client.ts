/**
 * The Knex client: Knex's own mysql2 dialect (its SQL, schema builder, transactions and
 * streams, unchanged) with the connection handling replaced, so that every connection Knex
 * uses is borrowed from a `FreshPool` through the mysql2 adapter and given back to it. Knex's
 * own pool (tarn) is never made: one pool, one set of checks.
 */
// Also for programs that reach this file by an import rather than by the lib/**/*.ts glob.
/// <reference path="./knex-mysql2.d.ts" />
import type { Readable } from 'node:stream';
import type { Knex } from 'knex';
import Client_MySQL2 from 'knex/lib/dialects/mysql2/index.js';
import { ConfigError, ConnectionReleasedError, InvalidArgumentError } from '../errors.js';
import { createMysql2Adapter, Mysql2AdapterConnection, type AdapterTarget } from '../mysql2-adapter/index.js';
import { KnexDestroyedError, knexUnsupported } from './errors.js';
import { killQuery } from './kill-query.js';

/** Options of `freshPoolClient`. */
export interface FreshPoolClientOptions {
  /**
   * Whether `knex.destroy()` also ends the pool (`pool.end()`, which waits for the borrowed
   * connections to come back). Default true, as Kysely's `destroy()` through the mysql2
   * adapter and TypeORM's `destroy()` through `freshPoolDriver` do: the usual shutdown is one
   * call. Set false when the pool is shared with other code; end it yourself then.
   */
  endPoolOnDestroy?: boolean;
}

/** What Knex writes on a connection it holds. */
interface KnexMarks {
  /** Knex's id of the connection in its 'query' events and debug output; new on each borrow. */
  __knexUid?: string;
  /** The Knex transaction holding the connection; Knex's Transaction sets and deletes it. */
  __knexTxId?: string;
  /** Set by Knex's Runner on a query timeout without `cancel`: the connection is still busy with the query. */
  __knex__disposed?: unknown;
}

type KnexConnection = Mysql2AdapterConnection & KnexMarks;

/**
 * One Knex instance's state. A class instance rather than a plain object or a private field:
 * `knex.withUserParams()` clones the client with lodash `merge`, which shares class instances
 * by reference and deep-copies plain objects, and the clone must see the same `destroy()`.
 */
class Lifecycle {
  destroyed = false;
}

// Knex's own ids are `__knexUid1`, `__knexUid2`...; a prefix of our own keeps them apart.
let lastUid = 0;

// Settings of Knex's own pool would be ignored without a word: refused, each saying where it goes.
const REFUSED_SETTINGS: ReadonlyArray<readonly [keyof Knex.Config, string]> = [
  ['connection', 'the pool makes the connections: give the connection settings to createPool'],
  ['connectionPool', 'the connections come from the pool given to freshPoolClient(pool)'],
  [
    'pool',
    "Knex's own pool is not used: set max, min, acquireTimeout and idleTimeout on createPool, " +
      'and per-connection setup (afterCreate) as its onConnect or initSql',
  ],
  ['acquireConnectionTimeout', "Knex's own pool is not used: set acquireTimeout on createPool"],
];

const KNOWN_OPTIONS: ReadonlySet<string> = new Set(['endPoolOnDestroy']);

/**
 * A Knex client class whose connections are borrowed from `pool`: give it to Knex as
 * `client`, with no `connection` and no `pool` settings (those belong to `createPool`).
 *
 * ```ts
 * const db = knex({ client: freshPoolClient(pool) });
 * ```
 *
 * Every query borrows a connection from `pool` (checked as `lease()` checks it: age, idle time,
 * a stalled event loop, with a ping when needed) and gives it back when done; a
 * `knex.transaction()` holds one connection from BEGIN to COMMIT or ROLLBACK, and each of its
 * statements is checked again after an idle spell (a connection lost with the transaction
 * open rejects with `TransactionLostError`, nothing retried); a `.stream()` is checked before
 * it starts. The pool's statistics and events count Knex's borrows.
 *
 * `pool` may also be a `FreshCluster` (statements go to the writer) or `cluster.readers()`.
 * `.timeout(ms, { cancel: true })` sends `KILL QUERY` on a one-off connection outside the pool,
 * as Knex's own client does, so that it works with every connection of the pool busy; it is
 * made with the options of the connection running the query (its host and port or socket, its
 * user), so that on a cluster it reaches the node the query runs on. Through a proxy that
 * spreads connections over several servers it may reach another one. A cancel that fails
 * (`ConnectError` when the one-off connection is refused) rejects with Knex's "cancelling of
 * query failed" message, and the busy connection is closed.
 *
 * `knex(...)` throws `ConfigError` when the configuration holds `connection`,
 * `connectionPool`, `pool` or `acquireConnectionTimeout`. After `knex.destroy()` queries reject
 * with `KnexDestroyedError` (code `ERR_FRESH_POOL_CLOSED`); the pool is ended too unless
 * `endPoolOnDestroy` is false.
 *
 * Throws `InvalidArgumentError` when `pool` is not a pool or `options` is invalid.
 */
export function freshPoolClient(pool: AdapterTarget, options?: FreshPoolClientOptions): typeof Knex.Client {
  checkTarget(pool);
  const endPoolOnDestroy = checkOptions(options);
  const adapter = createMysql2Adapter(pool);

  class FreshPoolKnexClient extends Client_MySQL2 {
    /** Undefined on the per-transaction clients Knex derives from this one (they never borrow). */
    freshPoolLifecycle: Lifecycle | undefined;

    constructor(config: Knex.Config) {
      refuseOwnPoolSettings(config ?? {});
      super(config);
      this.freshPoolLifecycle = new Lifecycle();
    }

    // Called by Knex's Runner for each query (or schema batch, or stream) outside a
    // transaction, and by Transaction once per top-level transaction.
    override async acquireConnection(): Promise<KnexConnection> {
      if (this.freshPoolLifecycle?.destroyed === true) throw new KnexDestroyedError();
      const connection: KnexConnection = await adapter.getConnection();
      connection.__knexUid = `__knexUid_fresh${++lastUid}`;
      // Knex's own pool learns these on each new connection; this client borrows instead.
      const settings = this.connectionSettings;
      if (settings.database === undefined && connection.config.database !== undefined) settings.database = connection.config.database;
      // checkVersion came with Knex 3.3; earlier ones read no version. Awaited on every borrow,
      // not only the first: it returns the read under way, and a borrow served while the first
      // still reads must not compile SQL for an unknown server (isMariaDB unset).
      if (typeof this.checkVersion === 'function') {
        try {
          await this.checkVersion(connection);
        } catch (err) {
          // Knex's own catches its failures; should a later one not, the borrow must not leak.
          connection.release();
          throw err;
        }
      }
      return connection;
    }

    // Called by Runner and Transaction, also twice for one stream (its end and its close):
    // giving back is idempotent.
    override releaseConnection(connection: unknown): Promise<void> {
      if (connection instanceof Mysql2AdapterConnection) {
        if ((connection as KnexConnection).__knex__disposed === undefined) connection.release();
        else closeBusy(connection);
      }
      return Promise.resolve();
    }

    // knex.initialize() after knex.destroy().
    override initializePool(): void {
      if (this.freshPoolLifecycle !== undefined) this.freshPoolLifecycle.destroyed = false;
    }

    override async destroy(callback?: (err?: unknown) => void): Promise<void> {
      try {
        if (this.freshPoolLifecycle !== undefined) this.freshPoolLifecycle.destroyed = true;
        if (endPoolOnDestroy) await pool.end();
      } catch (err) {
        if (typeof callback !== 'function') throw err;
        callback(err);
        return;
      }
      if (typeof callback === 'function') callback();
    }

    // Knex's own opens a connection with its `connection` settings, which this client has none
    // of; the settings of the connection running the query lead to its server. Not through the
    // pool: the query holds a connection of it, maybe the last. After a cancel Knex gives the
    // connection back (the pool takes it once the killed statement has returned); after a
    // failed one it marks it `__knex__disposed`, and releaseConnection closes it.
    override async cancelQuery(connectionToKill: unknown): Promise<void> {
      if (!(connectionToKill instanceof Mysql2AdapterConnection)) {
        throw new InvalidArgumentError('connectionToKill', connectionToKill, 'expected a connection lent by this Knex client');
      }
      // Written into the KILL statement: only a server's thread id may get there.
      const threadId: unknown = connectionToKill.threadId;
      if (typeof threadId !== 'number' || !Number.isSafeInteger(threadId) || threadId < 0) {
        throw new InvalidArgumentError('connectionToKill.threadId', threadId, 'expected the thread id of a connected connection');
      }
      await killQuery(connectionToKill.config, threadId);
    }

    // Knex's waits only for the stream's 'end' or 'error', which a stream destroyed before its
    // query started (or while it ran) never emits: Runner would never give the connection back,
    // and `.stream(handler)` would never settle. Its 'close' ends the wait too.
    override _stream(connection: unknown, obj: unknown, stream: Readable, options: unknown): Promise<unknown> {
      if (stream.destroyed) return Promise.resolve();
      // Called outside the promise: Knex's throws at once for an empty query, and its caller
      // emits that on the stream.
      const running = super._stream(connection, obj, stream, options);
      return new Promise((resolve, reject) => {
        stream.once('close', () => resolve(undefined));
        running.then(resolve, reject);
      });
    }

    // Knex calls these only from its own pool and its own cancelQuery, both replaced here;
    // refused rather than letting a path overlooked open a connection to a default server.
    override acquireRawConnection(): Promise<unknown> {
      return Promise.reject(knexUnsupported('acquireRawConnection', 'the connections are borrowed from the pool'));
    }

    override destroyRawConnection(): Promise<void> {
      return Promise.reject(knexUnsupported('destroyRawConnection', 'the pool closes its connections itself'));
    }
  }
  return FreshPoolKnexClient as unknown as typeof Knex.Client;
}

// The query that timed out may still be running on it: close it under the query, and the
// pool replaces it once the query is over, as Knex's own pool would destroy it.
function closeBusy(connection: Mysql2AdapterConnection): void {
  try {
    connection.destroy();
  } catch (err) {
    // Given back already (a stream gives back twice): nothing is left to close.
    if ((err as { code?: unknown }).code !== ConnectionReleasedError.code) throw err;
  }
}

function refuseOwnPoolSettings(config: Knex.Config): void {
  for (const [key, hint] of REFUSED_SETTINGS) {
    if (config[key] !== undefined) throw new ConfigError(key, config[key], hint);
  }
}

function checkTarget(pool: unknown): asserts pool is AdapterTarget {
  const p = pool as Partial<Record<keyof AdapterTarget, unknown>> | null | undefined;
  const ok = typeof p === 'object' && p !== null && (['lease', 'query', 'withConnection', 'end'] as const).every((m) => typeof p[m] === 'function');
  if (!ok) throw new InvalidArgumentError('pool', pool, 'expected a FreshPool, a FreshCluster or cluster.readers()');
}

function checkOptions(options: FreshPoolClientOptions | undefined): boolean {
  if (options === undefined) return true;
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', options, 'expected an object');
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) throw new InvalidArgumentError(key, (options as Record<string, unknown>)[key], 'unknown option');
  }
  const { endPoolOnDestroy } = options;
  if (endPoolOnDestroy !== undefined && typeof endPoolOnDestroy !== 'boolean') {
    throw new InvalidArgumentError('endPoolOnDestroy', endPoolOnDestroy, 'expected a boolean');
  }
  return endPoolOnDestroy ?? true;
}
