/**
 * The object given as TypeORM's `driver` option, and the mysql2 pool look-alike its
 * `createPool` returns: the mysql2-pool adapter over a `FreshPool` (or a `FreshCluster`'s
 * writer), with what TypeORM's use adds: the DataSource's options checked against the pool's
 * connections at `initialize()`, and an `end()` that knows whether the DataSource owns the pool.
 */
import type { FreshCluster } from '../cluster/index.js';
import { InvalidArgumentError, PoolClosedError, UnsupportedOperationError } from '../errors.js';
import { Mysql2AdapterConnection, Mysql2PoolAdapter } from '../mysql2-adapter/index.js';
import type { FreshPool } from '../pool/index.js';
import { checkAgainstConnection, refuseUnusable, type TypeormPoolOptions } from './options.js';

/** What `freshPoolDriver` takes: a pool, or a cluster (every TypeORM statement goes to its writer). */
export type TypeormTarget = FreshPool | FreshCluster;

/** Options of `freshPoolDriver`. */
export interface FreshPoolDriverOptions {
  /**
   * Whether `dataSource.destroy()` ends the pool (or cluster). Default true: the DataSource
   * owns it, as it owns the mysql2 pool it builds by default, and a process whose DataSource
   * is destroyed can exit. Set false when other code shares the pool; end it there.
   *
   * TypeORM also calls `destroy()` itself when `initialize()` fails after connecting (an entity
   * that does not validate, a failing migration with `migrationsRun`, `synchronize`,
   * `dropSchema`), and nothing it passes tells that call from yours: with true, such a failure
   * ends the pool, as it ends TypeORM's own. A failure at the first connection (server down,
   * credentials, a DataSource option the pool does not match) leaves the pool open. To retry
   * `initialize()` on the same pool after any failure, set false.
   */
  endPoolOnDestroy?: boolean;
  /**
   * How long `dataSource.destroy()` waits, in ms, for connections still borrowed (a query
   * runner never released, a query under way) before the pool closes them under their users:
   * the `timeout` of `FreshPool.end`. Default 5000. From 0 to 2147483647.
   *
   * TypeORM's own mysql2 pool closes them at once; without a bound, one forgotten
   * `queryRunner.release()` would keep `destroy()` pending forever. Unused with
   * `endPoolOnDestroy: false`: `destroy()` then leaves the borrowed connections with their
   * runners, which may still use and release them; the pool's `leakWarningAfter` reports one
   * that is never released, and its own `end({ timeout })` closes it.
   */
  endTimeout?: number;
}

/** How long `destroy()` lets the statements under way finish, by default: a few seconds, not forever. */
const DEFAULT_END_TIMEOUT_MS = 5_000;
/** `setTimeout`'s limit, which `FreshPool.end` enforces at `destroy()`; refused here, at once. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
const KNOWN_OPTIONS: ReadonlySet<string> = new Set(['endPoolOnDestroy', 'endTimeout']);

interface DriverSettings {
  readonly endPoolOnDestroy: boolean;
  readonly endTimeoutMs: number;
}

/**
 * The value of TypeORM's `driver` option: a stand-in for the `mysql2` module that TypeORM's
 * MySQL driver loads by default, whose `createPool` lends this library's checked connections
 * instead of opening its own. Build it with `freshPoolDriver(pool)`.
 */
export class FreshPoolDriver<P extends TypeormTarget = FreshPool> {
  readonly #pool: P;
  readonly #settings: DriverSettings;

  /** Prefer `freshPoolDriver(pool, options)`. Throws `InvalidArgumentError` as it does. */
  constructor(pool: P, options?: FreshPoolDriverOptions) {
    if (!isTarget(pool)) {
      throw new InvalidArgumentError('pool', pool, 'expected a FreshPool or FreshCluster (createPool() or createCluster()), not cluster.readers()');
    }
    this.#settings = checkOptions(options);
    this.#pool = pool;
  }

  /** The pool (or cluster) TypeORM's connections come from: for `stats()`, events and metrics. */
  get pool(): P {
    return this.#pool;
  }

  /**
   * Called by TypeORM's `dataSource.initialize()` with the mysql2 options it built from the
   * DataSource options; returns a pool adapter over the pool given to `freshPoolDriver`.
   *
   * The pool was configured by `createPool`, and its connections are the ones TypeORM gets,
   * so the DataSource's connection options are not applied: each one it sets must be one the
   * pool's connections already use (checked on the connection `initialize()` borrows first;
   * leaving them out of the DataSource is simplest), and options the pool cannot compare
   * (`poolSize`, `acquireTimeout`, `ssl`, `flags`, `debug`, anything `extra` adds) must be
   * left out. TypeORM sets `supportBigNumbers`, `bigNumberStrings` and `stringifyObjects` to
   * true unless told otherwise: give the pool `TYPEORM_CONNECTION_DEFAULTS`. Throws (here)
   * or rejects `initialize()` (at the first borrow) with `ConfigError` naming the
   * DataSource option, as `DataSource.<name>`.
   */
  createPool(options?: TypeormPoolOptions): TypeormPool<P> {
    const given = options ?? {};
    refuseUnusable(given);
    return new TypeormPool(this.#pool, given, this.#settings);
  }

  /**
   * Throws `UnsupportedOperationError`: TypeORM calls it for its `replication` option, which
   * would have it open connections to each server itself. Give `freshPoolDriver` a
   * `FreshCluster` instead and leave `replication` out: every statement then goes to the
   * cluster's writer, found and followed through failovers by the cluster.
   */
  createPoolCluster(_options?: unknown): never {
    throw new UnsupportedOperationError(
      'createPoolCluster',
      "TypeORM's replication option is not supported; leave it out and give freshPoolDriver() a FreshCluster " +
        '(createCluster()): statements go to its writer',
    );
  }
}

/**
 * The mysql2 pool TypeORM's MySQL driver gets from `FreshPoolDriver.createPool`: the mysql2
 * pool adapter (`Mysql2PoolAdapter`) over the pool, which lends each connection as
 * `FreshPool.lease()` does, checked. TypeORM calls `getConnection(callback)`, and `end(callback)`
 * from `dataSource.destroy()`; the rest of the mysql2 pool API is `Mysql2PoolAdapter`'s.
 */
export class TypeormPool<P extends TypeormTarget = FreshPool> extends Mysql2PoolAdapter<P> {
  readonly #options: TypeormPoolOptions;
  readonly #settings: DriverSettings;
  /** The DataSource's options matched a connection of the pool. */
  #verified = false;
  /** A connection was lent: `initialize()` got past its first borrow. */
  #lent = false;
  #ending: Promise<void> | undefined;

  /** @internal Built by `FreshPoolDriver.createPool`. */
  constructor(pool: P, options: TypeormPoolOptions, settings: DriverSettings) {
    super(pool);
    this.#options = options;
    this.#settings = settings;
  }

  /**
   * Borrows a checked connection, as `Mysql2PoolAdapter.getConnection` does; until one
   * matched, the DataSource's options are compared with the connection's first, and a
   * difference rejects with `ConfigError` (the connection goes back). Rejects with
   * `PoolClosedError` after `end()`. Promise, or `callback(err, connection)`.
   */
  override getConnection(): Promise<Mysql2AdapterConnection>;
  override getConnection(callback: (err: Error | null, connection: Mysql2AdapterConnection) => unknown): void;
  override getConnection(callback?: (err: Error | null, connection: Mysql2AdapterConnection) => unknown): Promise<Mysql2AdapterConnection> | void {
    const promise = this.#borrow();
    if (typeof callback !== 'function') return promise;
    callBack(promise, (err, connection) => callback(err, connection as Mysql2AdapterConnection));
  }

  /**
   * `dataSource.destroy()` calls it, and TypeORM when `initialize()` fails: ends the pool (or
   * cluster) as `end({ timeout: endTimeout })` does, so connections still borrowed are closed
   * after `endTimeout` ms, unless `endPoolOnDestroy` is false or no connection was ever lent
   * (TypeORM's first borrow failed, and `initialize()` may be tried again). Either way this
   * adapter lends nothing more. Promise, or `callback(err)`.
   */
  override end(): Promise<void>;
  override end(callback: (err: Error | null) => unknown): void;
  override end(callback?: (err: Error | null) => unknown): Promise<void> | void {
    this.#ending ??= this.#lent && this.#settings.endPoolOnDestroy ? this.freshPool.end({ timeout: this.#settings.endTimeoutMs }) : Promise.resolve();
    if (typeof callback !== 'function') return this.#ending;
    callBack(this.#ending, (err) => callback(err));
  }

  /** `'disconnected'` once `end()` was called, otherwise `'authenticated'`. */
  override get state(): Mysql2PoolAdapter['state'] {
    return this.#ending === undefined ? 'authenticated' : 'disconnected';
  }

  async #borrow(): Promise<Mysql2AdapterConnection> {
    if (this.#ending !== undefined) throw new PoolClosedError();
    const connection = await super.getConnection();
    if (!this.#verified) {
      try {
        checkAgainstConnection(this.#options, connection.config);
      } catch (err) {
        connection.release();
        throw err;
      }
      this.#verified = true;
    }
    this.#lent = true;
    return connection;
  }
}

/**
 * The object for TypeORM's `driver` option, so that a MySQL or MariaDB DataSource runs every
 * statement on connections lent and checked by `pool` (or by a cluster's writer):
 * `new DataSource({ type: 'mysql', driver: freshPoolDriver(pool), entities })`.
 *
 * Connection options come from `createPool`, not from the DataSource: see
 * `FreshPoolDriver.createPool` for what the DataSource may still say, and give the pool
 * `TYPEORM_CONNECTION_DEFAULTS`. Throws `InvalidArgumentError` when `pool` is not a pool or
 * cluster of this library, or an option is unknown (a misspelt `endPoolOnDestroy` would
 * otherwise end a shared pool) or has the wrong type.
 *
 * It wraps a pool you build rather than building one from the DataSource's options: the pool
 * is where the checks are configured (`connWaitAge`, `pingTimeout`, `maxAge`, `onConnect`...),
 * observed (`stats()`, events, metrics) and shared (with Drizzle or plain queries), and it
 * can be a cluster; a pool made inside TypeORM would have none of that within reach.
 */
export function freshPoolDriver<P extends TypeormTarget = FreshPool>(pool: P, options?: FreshPoolDriverOptions): FreshPoolDriver<P> {
  return new FreshPoolDriver(pool, options);
}

function checkOptions(options: FreshPoolDriverOptions | undefined): DriverSettings {
  if (options === undefined) return { endPoolOnDestroy: true, endTimeoutMs: DEFAULT_END_TIMEOUT_MS };
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', options, 'expected an object');
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) {
      throw new InvalidArgumentError(`options.${key}`, (options as Record<string, unknown>)[key], `unknown option; the options are ${[...KNOWN_OPTIONS].join(', ')}`);
    }
  }
  const { endPoolOnDestroy = true, endTimeout = DEFAULT_END_TIMEOUT_MS } = options;
  if (typeof endPoolOnDestroy !== 'boolean') throw new InvalidArgumentError('options.endPoolOnDestroy', endPoolOnDestroy, 'expected true or false');
  if (typeof endTimeout !== 'number' || !(endTimeout >= 0 && endTimeout <= MAX_TIMEOUT_MS)) {
    throw new InvalidArgumentError('options.endTimeout', endTimeout, `expected a number of milliseconds from 0 to ${MAX_TIMEOUT_MS}`);
  }
  return { endPoolOnDestroy, endTimeoutMs: endTimeout };
}

// Duck-typed: the ESM and CommonJS builds have distinct classes. `cluster.readers()` has no
// stats(), and is refused: TypeORM writes.
function isTarget(value: unknown): value is TypeormTarget {
  if (value === null || typeof value !== 'object') return false;
  const target = value as Record<string, unknown>;
  return ['lease', 'withConnection', 'query', 'execute', 'ready', 'end', 'stats'].every((name) => typeof target[name] === 'function');
}

// Calls a mysql2-style callback with the outcome, outside the promise chain, so a throw in it
// is an uncaught exception as with mysql2, not an unhandled rejection of ours.
function callBack<T>(promise: Promise<T>, callback: (err: Error | null, value?: T) => void): void {
  promise.then(
    (value) => call(() => callback(null, value)),
    (err: unknown) => call(() => callback(err as Error)),
  );
}

function call(fn: () => void): void {
  try {
    fn();
  } catch (thrown) {
    process.nextTick(() => {
      throw thrown;
    });
  }
}
