/**
 * The pool's public surface: borrowing, transactions, one-off statements, stats and `end()`.
 * It builds the parts (connector, resource pool, housekeeping, the shared core) and hands
 * each path its work; the policy itself lives in the path files beside it.
 */
import { EventEmitter } from 'node:events';
import { inspect } from 'node:util';
import type { FieldPacket, QueryOptions, QueryResult } from 'mysql2/promise';
import { DEFAULTS, resolveConfig, type FreshPoolConfig } from '../config.js';
import { Connector } from '../connector.js';
import type { DriverConnection } from '../driver.js';
import type { PoolEntry } from '../entry.js';
import { InvalidArgumentError, PoolClosedError, type PoolStats } from '../errors.js';
import type { FreshPoolEvents } from '../events.js';
import { Housekeeping } from '../housekeeping.js';
import { watchForLeak } from '../leak-watch.js';
import { poolLog } from '../log.js';
import { LentConnection, type StatementGate } from '../lent-connection.js';
import { LoopWatch } from '../loop-watch.js';
import { createResourcePool } from '../resource-pool.js';
import { transactionOn, type TransactionOptions } from '../transaction.js';
import { acquire, cancelWaiting, failWaitingBorrows } from './borrow.js';
import { PoolCore } from './core.js';
import { createEntry, destroyEntry, keepAlive, retireIdle } from './lifecycle.js';
import { endLoan } from './return.js';
import { endPool } from './shutdown.js';
import { makeGate } from './statement-check.js';

/**
 * The connection lent to `withConnection`'s function: mysql2's promise connection API. Each
 * statement on it is checked first when the connection sat idle past `connWaitAge`.
 * `lastGtid` is the GTID of the last transaction it committed, when MariaDB reports it.
 */
export type PoolConnection = DriverConnection & { readonly lastGtid: string | undefined };

/** A connection borrowed with `lease()`. */
export interface Lease {
  /** The lent connection (mysql2's promise API). */
  readonly conn: PoolConnection;
  /** Gives the connection back; later calls do nothing. */
  release(): void;
}

/** Options of `end()`. */
export interface EndOptions {
  /**
   * ms to wait for borrowed connections to come back; then waiting borrows reject with
   * `PoolClosedError` and borrowed connections are closed under their users. Default: no limit.
   */
  timeout?: number;
}

/** Typed listeners; see `FreshPoolEvents`. */
export interface FreshPool {
  on<E extends keyof FreshPoolEvents>(event: E, listener: (...args: FreshPoolEvents[E]) => void): this;
  once<E extends keyof FreshPoolEvents>(event: E, listener: (...args: FreshPoolEvents[E]) => void): this;
  off<E extends keyof FreshPoolEvents>(event: E, listener: (...args: FreshPoolEvents[E]) => void): this;
  emit<E extends keyof FreshPoolEvents>(event: E, ...args: FreshPoolEvents[E]): boolean;
}

/** A pool of mysql2 connections that validates each one as it is lent. Build it with `createPool`. */
export class FreshPool extends EventEmitter {
  /** What the paths share; see `PoolCore`. */
  private readonly core: PoolCore;
  /** What a lent connection asks before each statement; see `makeGate`. */
  private readonly gate: StatementGate;
  private readying: Promise<void> | undefined;

  /** Prefer `createPool(config)`. Throws `ConfigError` on invalid configuration. */
  constructor(config: FreshPoolConfig) {
    super();
    const resolved = resolveConfig(config);
    const log = poolLog(resolved.logger, resolved.name);
    // The callbacks below run only once the pool is in use, when `core` is set.
    const connector = new Connector(resolved, log, (err, permanent) => {
      if (this.listenerCount('error') !== 0) this.emit('error', err);
      if (permanent) failWaitingBorrows(core, err);
    });
    const resources = createResourcePool<PoolEntry>(
      { create: () => createEntry(core), destroy: (entry) => destroyEntry(core, entry) },
      {
        max: resolved.max,
        min: resolved.min,
        testOnBorrow: false,
        acquireTimeoutMillis: resolved.acquireTimeoutMs,
        // LIFO keeps the busy connections busy and lets the rest age out, so a steady load
        // borrows connections used moments ago: no ping.
        fifo: false,
        // `min` connections open at ready() or the first borrow, not at construction.
        autostart: false,
      },
    );
    const housekeeping = new Housekeeping(resolved, {
      idleEntries: () => resources.idleResources(),
      size: () => resources.size,
      retireIdle: (entry, reason) => retireIdle(core, entry, reason),
      keepAlive: (entry) => keepAlive(core, entry),
    });
    const loopWatch = new LoopWatch(DEFAULTS.loopTickMs, DEFAULTS.loopStallMs);
    const core: PoolCore = new PoolCore({ config: resolved, log, events: this, connector, resources, housekeeping, loopWatch });
    this.core = core;
    this.gate = makeGate(core);
    loopWatch.start();
    housekeeping.start();
  }

  /**
   * Opens a first connection, reads the server's `wait_timeout` and opens `min` connections.
   * Rejects at once with `ConnectError` (the server's own error as `cause`) when the server
   * cannot be reached or refuses the credentials, instead of retrying until `acquireTimeout`.
   * Optional: without it the pool starts on its first borrow.
   */
  ready(): Promise<void> {
    if (this.core.ending) return Promise.reject(new PoolClosedError());
    // Once is enough; a failed warm-up may be tried again.
    this.readying ??= this.warmUp().catch((err: unknown) => {
      this.readying = undefined;
      throw err;
    });
    return this.readying;
  }

  private async warmUp(): Promise<void> {
    const core = this.core;
    if (core.resources.size === 0) {
      const askedAtMs = Date.now();
      await core.connector.probe();
      // The connection probe() made is handed to the next connect(): that one reports this time.
      core.spareCreateMs = Date.now() - askedAtMs;
    }
    if (core.ending) throw new PoolClosedError();
    core.resources.start();
    // Every lease that succeeded goes back, even when another failed: none may be left held.
    const leases = await Promise.allSettled(Array.from({ length: core.config.min }, () => this.lease()));
    let failure: { reason: unknown } | undefined;
    for (const lease of leases) {
      if (lease.status === 'fulfilled') lease.value.release();
      else failure ??= lease;
    }
    if (failure !== undefined) throw failure.reason;
    if (core.ending) throw new PoolClosedError();
  }

  /**
   * Borrows a connection, runs `fn` with it, and always gives it back, whether `fn` resolves
   * or throws. Resolves with `fn`'s result and rejects with `fn`'s error, both unchanged.
   * Rejects with `AcquireTimeoutError` when no connection is had within `acquireTimeout` ms,
   * and with `PoolClosedError` after `end()`.
   *
   * Inside `fn`, a statement on a connection idle past `connWaitAge` pings it first; a dead
   * connection is replaced before the statement is sent when no transaction is open, and the
   * statement rejects with `TransactionLostError` when one was. A connection that comes back
   * with a transaction open is rolled back before anyone else gets it.
   */
  async withConnection<T>(fn: (conn: PoolConnection) => T | Promise<T>): Promise<T> {
    if (typeof fn !== 'function') throw new InvalidArgumentError('fn', fn, 'expected a function');
    const core = this.core;
    // Captured before the first await, while the borrower's own frames are still on the stack.
    const borrowStack = core.config.leakWarningAfterMs > 0 ? new Error('connection borrowed here').stack : undefined;
    const acquired = acquire(core);
    const entry = acquired instanceof Promise ? await acquired : acquired;
    const lent = new LentConnection(entry, this.gate);
    const leak = borrowStack !== undefined ? watchForLeak(core.log, () => entry.id, core.config.leakWarningAfterMs, borrowStack) : undefined;
    try {
      return await fn(lent as unknown as PoolConnection);
    } finally {
      endLoan(core, entry, lent, leak);
    }
  }

  /**
   * Borrows a connection without a callback, for code that must hand a connection to another
   * library (the mysql2-pool adapter). `release()` gives it back; a second call does nothing.
   * Prefer `withConnection`, which cannot forget to give it back. Same errors as it.
   */
  async lease(): Promise<Lease> {
    return this.leaseOrWait();
  }

  /**
   * As `lease()`, but a connection that can be lent at once (an idle one used moments ago,
   * nobody waiting: the hot path) comes back as the `Lease` itself, with no promise; otherwise
   * a promise of it. For routers that borrow per statement, such as a cluster's.
   */
  leaseOrWait(): Lease | Promise<Lease> {
    const core = this.core;
    const borrowStack = core.config.leakWarningAfterMs > 0 ? new Error('connection borrowed here').stack : undefined;
    const acquired = acquire(core);
    if (acquired instanceof Promise) return acquired.then((entry) => this.#leaseOf(entry, borrowStack));
    return this.#leaseOf(acquired, borrowStack);
  }

  /**
   * Rejects with `reason` every borrow of this pool waiting for a connection now: those queued
   * at once, one whose connection is being checked once the check is done (the connection
   * goes back unlent). Later borrows are not affected; nothing is retried. For routers that
   * move waits elsewhere: a cluster calls it when a node stops being fit for its borrows.
   */
  cancelWaiting(reason: Error): void {
    if (!(reason instanceof Error)) throw new InvalidArgumentError('reason', reason, 'expected an Error');
    cancelWaiting(this.core, reason);
  }

  #leaseOf(entry: PoolEntry, borrowStack: string | undefined): Lease {
    const core = this.core;
    const lent = new LentConnection(entry, this.gate);
    const leak = borrowStack !== undefined ? watchForLeak(core.log, () => entry.id, core.config.leakWarningAfterMs, borrowStack) : undefined;
    let released = false;
    return {
      conn: lent as unknown as PoolConnection,
      release: () => {
        if (released) return;
        released = true;
        endLoan(core, entry, lent, leak);
      },
    };
  }

  /**
   * Runs `fn` in a transaction: START TRANSACTION, `fn`, then COMMIT; ROLLBACK when `fn`
   * throws, and `fn`'s error is what rejects (a failed ROLLBACK is logged, never thrown over
   * it). Nothing is retried: a connection lost mid-transaction rejects with
   * `TransactionLostError`, one lost during COMMIT with `CommitOutcomeUnknownError`.
   */
  withTransaction<T>(fn: (conn: PoolConnection) => T | Promise<T>, options?: TransactionOptions): Promise<T> {
    return transactionOn(fn, options, this.core.log, (run) => this.withConnection(run));
  }

  /** Runs one query on a borrowed connection (mysql2's `query`: text protocol, client-side escaping). */
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: unknown): Promise<[T, FieldPacket[]]> {
    return this.withConnection((conn) => conn.query<T>(sql as string, values as never));
  }

  /** Runs one prepared statement on a borrowed connection (mysql2's `execute`). */
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: unknown): Promise<[T, FieldPacket[]]> {
    return this.withConnection((conn) => conn.execute<T>(sql as string, values as never));
  }

  /** The pool's `name`, as in its logs, events and metrics. */
  get name(): string {
    return this.core.config.name;
  }

  /** Connections lent out now: `stats().borrowed` without building the snapshot (a router reads it per borrow). */
  get borrowed(): number {
    return this.core.resources.borrowed;
  }

  /** A frozen snapshot of the pool's counters. */
  stats(): PoolStats {
    return this.core.stats();
  }

  /** What logging or inspecting the pool shows: its counters, never its connections' options. */
  toJSON(): PoolStats {
    return this.stats();
  }

  [inspect.custom](): string {
    return `FreshPool ${inspect(this.stats())}`;
  }

  /**
   * Stops lending (later borrows reject with `PoolClosedError`), waits for the borrows already
   * queued or running to finish (at most `timeout` ms), then closes every connection. Safe to
   * call more than once. No timer of the pool's outlives it.
   */
  end(options?: EndOptions): Promise<void> {
    return endPool(this.core, options?.timeout);
  }
}

/** Builds a pool. Throws `ConfigError` at once when `config` is invalid. */
export function createPool(config: FreshPoolConfig): FreshPool {
  return new FreshPool(config);
}
