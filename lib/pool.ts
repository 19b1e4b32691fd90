/**
 * The pool's policy: when a connection is checked, lent, taken back and destroyed.
 * Decisions come from decisions.ts (pure), I/O goes through driver.ts, connections are made
 * by connector.ts, upkeep runs in housekeeping.ts, and the per-connection record is PoolEntry;
 * generic-pool does the queueing.
 */
import { EventEmitter } from 'node:events';
import { inspect } from 'node:util';
import { pino, type Logger } from 'pino';
import type { FieldPacket, QueryOptions, QueryResult } from 'mysql2/promise';
import { DEFAULTS, resolveConfig, type FreshPoolConfig, type ResolvedConfig } from './config.js';
import { Connector, isPermanentFailure, type NewConnection } from './connector.js';
import { borrowVerdict, type BorrowVerdict, jitteredMaxAgeMs, statementVerdict } from './decisions.js';
import * as driver from './driver.js';
import type { DriverConnection } from './driver.js';
import { PoolEntry, type EvictReason } from './entry.js';
import { AcquireTimeoutError, ConnectionSetupError, InvalidArgumentError, PoolClosedError, TransactionLostError, type PoolStats } from './errors.js';
import type { FreshPoolEvents } from './events.js';
import { Housekeeping } from './housekeeping.js';
import { endLeakWatch, watchForLeak, type LeakWatch } from './leak-watch.js';
import { LentConnection, type StatementGate } from './lent-connection.js';
import { LoopWatch } from './loop-watch.js';
import { createResourcePool, type ResourcePool } from './resource-pool.js';
import { planTransaction, runTransaction, type TransactionOptions } from './transaction.js';

/**
 * The connection lent to `withConnection`'s function: mysql2's promise connection API. Each
 * statement on it is checked first when the connection sat idle past `connWaitAge`.
 */
export type PoolConnection = DriverConnection;

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

// Internal: the same name generic-pool gives its own acquire timeout; never reaches users.
class TimeoutError extends Error {
  override name = 'TimeoutError';
}

// Routine evictions are debug; the ones that mean a connection died are info.
const ROUTINE_EVICTIONS: ReadonlySet<EvictReason> = new Set(['maxAge', 'idleTimeout', 'poolEnded']);

/** Typed listeners; see `FreshPoolEvents`. */
export interface FreshPool {
  on<E extends keyof FreshPoolEvents>(event: E, listener: (...args: FreshPoolEvents[E]) => void): this;
  once<E extends keyof FreshPoolEvents>(event: E, listener: (...args: FreshPoolEvents[E]) => void): this;
  off<E extends keyof FreshPoolEvents>(event: E, listener: (...args: FreshPoolEvents[E]) => void): this;
  emit<E extends keyof FreshPoolEvents>(event: E, ...args: FreshPoolEvents[E]): boolean;
}

/** A pool of mysql2 connections that validates each one as it is lent. Build it with `createPool`. */
export class FreshPool extends EventEmitter {
  private readonly config: ResolvedConfig;
  /** What a lent connection asks before each statement; see `makeGate`. */
  private readonly gate: StatementGate;
  private readonly log: Logger;
  private readonly resources: ResourcePool<PoolEntry>;
  private readonly connector: Connector;
  private readonly housekeeping: Housekeeping;
  private readonly loopWatch = new LoopWatch(DEFAULTS.loopTickMs, DEFAULTS.loopStallMs);
  /** Connections last used before this moment (ms) are checked before use: one was found dead. */
  private suspectBeforeMs = 0;
  private lastPingFailure: { error: Error; atAttempt: number } | undefined;
  private ending: Promise<void> | undefined;
  /** Set when an `end({ timeout })` expires: borrowed connections are being closed under their users. */
  private forcedClose = false;
  /** `end()` has finished. */
  private ended = false;
  /** Resolves the wait of `end()` for borrowed connections early (an `end({ timeout })` expired). */
  private forceEnd: (() => void) | undefined;
  private readonly endTimers = new Set<NodeJS.Timeout>();
  private readying: Promise<void> | undefined;
  private created = 0;
  private pings = 0;
  private pingFailures = 0;
  private loopStalls = 0;
  private acquires = 0;
  private acquireWaitMsTotal = 0;
  private acquireWaitMsMax = 0;
  private validationMsTotal = 0;
  private readonly destroyed: Record<string, number> = {};

  /** Prefer `createPool(config)`. Throws `ConfigError` on invalid configuration. */
  constructor(config: FreshPoolConfig) {
    super();
    this.config = resolveConfig(config);
    this.gate = this.makeGate();
    this.log = this.config.logger ?? pino({ name: 'mysql-fresh-pool', level: 'info' });
    this.connector = new Connector(this.config, this.log, (err, permanent) => {
      if (this.listenerCount('error') !== 0) this.emit('error', err);
      if (permanent) this.failWaitingBorrows(err);
    });
    this.resources = createResourcePool<PoolEntry>(
      { create: () => this.create(), destroy: (entry) => this.destroy(entry) },
      {
        max: this.config.max,
        min: this.config.min,
        testOnBorrow: false,
        acquireTimeoutMillis: this.config.acquireTimeoutMs,
        // LIFO keeps the busy connections busy and lets the rest age out, so a steady load
        // borrows connections used moments ago: no ping.
        fifo: false,
        // `min` connections open at ready() or the first borrow, not at construction.
        autostart: false,
      },
    );
    this.housekeeping = new Housekeeping(this.config, {
      idleEntries: () => this.resources.idleResources(),
      size: () => this.resources.size,
      retireIdle: (entry, reason) => this.retireIdle(entry, reason),
      keepAlive: (entry) => this.keepAlive(entry),
    });
    this.loopWatch.start();
    this.housekeeping.start();
  }

  /**
   * Opens a first connection, reads the server's `wait_timeout` and opens `min` connections.
   * Rejects at once with `ConnectError` (the server's own error as `cause`) when the server
   * cannot be reached or refuses the credentials, instead of retrying until `acquireTimeout`.
   * Optional: without it the pool starts on its first borrow.
   */
  ready(): Promise<void> {
    if (this.ending) return Promise.reject(new PoolClosedError());
    // Once is enough; a failed warm-up may be tried again.
    this.readying ??= this.warmUp().catch((err: unknown) => {
      this.readying = undefined;
      throw err;
    });
    return this.readying;
  }

  private async warmUp(): Promise<void> {
    if (this.resources.size === 0) await this.connector.probe();
    if (this.ending) throw new PoolClosedError();
    this.resources.start();
    // Every lease that succeeded goes back, even when another failed: none may be left held.
    const leases = await Promise.allSettled(Array.from({ length: this.config.min }, () => this.lease()));
    let failure: { reason: unknown } | undefined;
    for (const lease of leases) {
      if (lease.status === 'fulfilled') lease.value.release();
      else failure ??= lease;
    }
    if (failure !== undefined) throw failure.reason;
    if (this.ending) throw new PoolClosedError();
  }

  // A connect failure no retry within a borrow can fix (wrong password, unknown database, a
  // failing session setup): the borrows waiting now fail at once instead of at acquireTimeout
  // (mysql2's and pg's pools fail the borrow whose connect failed). All of them, even one a
  // connection returned moments later could have served: the pool cannot tell which borrow
  // waits for a new connection. Attempts go on, paced, for later borrows.
  private failWaitingBorrows(err: Error): void {
    if (this.resources.pending === 0) return;
    this.resources.rejectWaiting(err instanceof ConnectionSetupError ? err : this.connector.connectError(err));
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
    // Captured before the first await, while the borrower's own frames are still on the stack.
    const borrowStack = this.config.leakWarningAfterMs > 0 ? new Error('connection borrowed here').stack : undefined;
    const acquired = this.acquire();
    const entry = acquired instanceof Promise ? await acquired : acquired;
    const lent = new LentConnection(entry, this.gate);
    const leak = borrowStack !== undefined ? watchForLeak(this.log, () => entry.id, this.config.leakWarningAfterMs, borrowStack) : undefined;
    try {
      return await fn(lent as unknown as PoolConnection);
    } finally {
      this.endLoan(entry, lent, leak);
    }
  }

  /**
   * Borrows a connection without a callback, for code that must hand a connection to another
   * library (the mysql2-pool adapter). `release()` gives it back; a second call does nothing.
   * Prefer `withConnection`, which cannot forget to give it back. Same errors as it.
   */
  async lease(): Promise<Lease> {
    const borrowStack = this.config.leakWarningAfterMs > 0 ? new Error('connection borrowed here').stack : undefined;
    const acquired = this.acquire();
    const entry = acquired instanceof Promise ? await acquired : acquired;
    const lent = new LentConnection(entry, this.gate);
    const leak = borrowStack !== undefined ? watchForLeak(this.log, () => entry.id, this.config.leakWarningAfterMs, borrowStack) : undefined;
    let released = false;
    return {
      conn: lent as unknown as PoolConnection,
      release: () => {
        if (released) return;
        released = true;
        this.endLoan(entry, lent, leak);
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
    if (typeof fn !== 'function') return Promise.reject(new InvalidArgumentError('fn', fn, 'expected a function'));
    let plan;
    try {
      plan = planTransaction(options);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.withConnection((conn) =>
      runTransaction(conn as unknown as LentConnection, plan, fn as unknown as (c: LentConnection) => T | Promise<T>, this.log),
    );
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
    return this.config.name;
  }

  /** A frozen snapshot of the pool's counters. */
  stats(): PoolStats {
    const r = this.resources;
    return Object.freeze({
      size: r.size,
      idle: r.available,
      borrowed: r.borrowed,
      waiting: r.pending,
      max: r.max,
      min: r.min,
      created: this.created,
      destroyed: Object.freeze({ ...this.destroyed }),
      pings: this.pings,
      pingFailures: this.pingFailures,
      connectAttempts: this.connector.attempts,
      connectFailures: this.connector.failures,
      loopStalls: this.loopStalls,
      acquires: this.acquires,
      acquireWaitMsTotal: this.acquireWaitMsTotal,
      acquireWaitMsMax: this.acquireWaitMsMax,
      validationMsTotal: this.validationMsTotal,
      connWaitAgeMs: this.connector.connWaitAgeMs,
    });
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
    const timeoutMs = options?.timeout;
    if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || !(timeoutMs >= 0) || (timeoutMs > 2 ** 31 - 1 && timeoutMs !== Infinity))) {
      return Promise.reject(new InvalidArgumentError('timeout', timeoutMs, 'expected a number of milliseconds from 0 to 2147483647, or Infinity'));
    }
    if (this.ending === undefined) {
      const forced = new Promise<void>((resolve) => (this.forceEnd = resolve));
      this.ending = this.shutdown(forced);
    }
    // A later end({ timeout }) shortens the wait of an earlier end() too; the first to expire wins.
    if (timeoutMs !== undefined && timeoutMs !== Infinity && !this.forcedClose && !this.ended) {
      // unref: until end() settles, the shutdown's own hold keeps the process alive.
      const timer = setTimeout(() => this.forceEnd?.(), timeoutMs).unref();
      this.endTimers.add(timer);
    }
    return this.ending;
  }

  private async shutdown(forced: Promise<void>): Promise<void> {
    // The pool's own timers are unref'd; this one keeps the process alive until end() settles.
    const hold = setInterval(() => undefined, 60_000);
    try {
      await this.closeAll(forced);
    } finally {
      this.ended = true;
      clearInterval(hold);
      for (const timer of this.endTimers) clearTimeout(timer);
      this.endTimers.clear();
    }
  }

  private async closeAll(forced: Promise<void>): Promise<void> {
    this.housekeeping.stop();
    const drained = this.resources.drain();
    const timedOut = await Promise.race([drained.then(() => false, () => false), forced.then(() => true)]);
    if (timedOut) {
      this.forcedClose = true;
      const borrowed = this.resources.borrowedResources();
      this.log.warn({ borrowed: borrowed.length, waiting: this.resources.pending }, 'end() timed out; closing borrowed connections');
      this.resources.rejectWaiting(new PoolClosedError());
      for (const entry of borrowed) {
        entry.broken = true;
        driver.destroySocket(entry.conn, 'Connection closed by end(): its timeout expired');
      }
    }
    // Through the pool's own path, so each is logged and counted (generic-pool's clear()
    // would also leave them in its idle list).
    for (const entry of this.resources.idleResources()) {
      entry.evictReason = 'poolEnded';
      if (!this.resources.removeIdle(entry)) entry.evictReason = undefined;
    }
    // Connects under way finish and close what they made: nothing the pool opened outlives end().
    await this.connector.close();
    await this.resources.clear();
    await this.connector.closeSpare();
    this.loopWatch.stop();
    this.log.debug({ stats: this.stats() }, 'pool ended');
  }

  // Validation runs here rather than in generic-pool's testOnBorrow: the hot path (an idle
  // connection used moments ago, nobody waiting ahead) costs one synchronous decision and
  // returns the entry itself: no promise, no timer, no await. A check can never leave a
  // connection stuck in generic-pool's test set.
  private acquire(): PoolEntry | Promise<PoolEntry> {
    if (this.ending) return Promise.reject(new PoolClosedError());
    const startedMs = Date.now();
    const idle = this.resources.takeIdle();
    if (idle !== undefined && idle.pinging === undefined && this.borrowVerdictOf(idle, startedMs) === 'use' && !this.loopWatch.stalled(startedMs)) {
      this.noteAcquire(idle, 0);
      return idle;
    }
    return this.acquireChecked(startedMs, idle);
  }

  // The slow path: wait in generic-pool's queue, check what it lends, retry within acquireTimeout.
  private async acquireChecked(startedMs: number, taken: PoolEntry | undefined): Promise<PoolEntry> {
    let next: PoolEntry | Promise<PoolEntry> = taken ?? this.resources.acquire();
    for (;;) {
      let entry: PoolEntry;
      try {
        entry = await next;
      } catch (err) {
        throw this.acquireFailure(err);
      }
      let nowMs = Date.now();
      const verdict = this.borrowVerdictOf(entry, nowMs);
      if (verdict !== 'use' || entry.pinging !== undefined || this.loopWatch.stalled(nowMs)) {
        const ok = await this.checkBeforeLending(entry, verdict);
        const checkedMs = Date.now();
        this.validationMsTotal += checkedMs - nowMs;
        nowMs = checkedMs;
        if (!ok) {
          void this.resources.destroy(entry);
          // Another connection, within what is left of acquireTimeout.
          const remainingMs = startedMs + this.config.acquireTimeoutMs - nowMs;
          if (remainingMs <= 0) throw this.acquireFailure(new TimeoutError());
          next = this.acquireWithin(remainingMs);
          continue;
        }
      }
      this.noteAcquire(entry, nowMs - startedMs);
      return entry;
    }
  }

  private noteAcquire(entry: PoolEntry, waitMs: number): void {
    this.acquires++;
    this.acquireWaitMsTotal += waitMs;
    if (waitMs > this.acquireWaitMsMax) this.acquireWaitMsMax = waitMs;
    if (this.listenerCount('acquire') !== 0) this.emit('acquire', { pool: this.config.name, connId: entry.id, waitMs });
  }

  private acquireFailure(err: unknown): Error {
    if (err instanceof TimeoutError || (err as Error)?.name === 'TimeoutError') {
      return new AcquireTimeoutError(this.config.acquireTimeoutMs, this.stats(), this.lastFailure());
    }
    if (this.ending) return new PoolClosedError();
    return err as Error;
  }

  // The last connect or ping failure since the last successful connect.
  private lastFailure(): Error | undefined {
    const ping = this.lastPingFailure;
    const pingIsRecent = ping !== undefined && ping.atAttempt === this.connector.attempts;
    return this.connector.lastFailure ?? (pingIsRecent ? ping.error : undefined);
  }

  // generic-pool's own timeout restarts with each acquire; this one keeps the first deadline.
  // A connection that arrives after it gave up goes straight back to the pool.
  private acquireWithin(ms: number): Promise<PoolEntry> {
    const request = this.resources.acquire();
    return new Promise((resolve, reject) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        request.then((entry) => this.resources.giveBack(entry), () => undefined);
        reject(new TimeoutError());
      }, ms);
      request.then(
        (entry) => {
          if (timedOut) return;
          clearTimeout(timer);
          resolve(entry);
        },
        (err: unknown) => {
          if (timedOut) return;
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  private endLoan(entry: PoolEntry, lent: LentConnection, leak: LeakWatch | undefined): void {
    lent.revoke();
    if (leak !== undefined) endLeakWatch(this.log, leak, entry.id);
    if (this.listenerCount('release') !== 0) this.emit('release', { pool: this.config.name, connId: entry.id });
    this.giveBack(entry);
  }

  private giveBack(entry: PoolEntry): void {
    if (entry.inFlight !== 0) {
      // A statement left running when the loan ended: the next borrower must not inherit it,
      // nor the transaction it may open. The return waits for its answer, as long as a borrow
      // would wait (on a silently dropped connection it would never come).
      const timeoutMs = this.config.acquireTimeoutMs;
      const watchdog = driver.destroyUnlessDoneWithin(entry.conn, timeoutMs, `A statement left running by its borrower did not finish within ${timeoutMs} ms`);
      entry.onSettled = () => {
        watchdog.cancel();
        if (!watchdog.fired) return this.giveBack(entry);
        entry.evictReason = 'cleanupTimeout';
        void this.resources.destroy(entry);
      };
      return;
    }
    entry.lastAccessAt = Date.now();
    entry.lastUsedAt = entry.lastAccessAt;
    if (entry.broken || isGone(entry)) {
      entry.evictReason = entry.lostReason ?? (entry.broken ? 'fatalError' : 'closed');
      this.suspectIdle(entry.evictReason);
      void this.resources.destroy(entry);
    } else if (entry.identityChanged) {
      // changeUser() or USE: the next borrower gets the configured user and database, always.
      entry.evictReason = 'identityChanged';
      void this.resources.destroy(entry);
    } else if (this.config.resetOnReturn || entry.mayHaveTransaction) {
      void this.cleanThenRelease(entry);
    } else {
      this.resources.giveBack(entry);
    }
  }

  // Only reached when the OK packets said a transaction may be open (or resetOnReturn): the
  // next borrower must never inherit someone else's uncommitted writes.
  private async cleanThenRelease(entry: PoolEntry): Promise<void> {
    const leftOpen = entry.inTransaction;
    const conn = entry.conn;
    // Bounded like a ping: on a silently dropped connection the slot would otherwise stay
    // borrowed with no holder, and end() would wait for TCP to give up.
    const timeoutMs = this.config.pingTimeoutMs;
    const watchdog = driver.destroyUnlessDoneWithin(conn, timeoutMs, `Clean-up on return did not finish within ${timeoutMs} ms`);
    try {
      if (this.config.resetOnReturn) {
        await conn.reset();
        await this.connector.setUp(conn);
      } else {
        await conn.query('ROLLBACK');
        // Untracked statements may have turned autocommit off without our seeing it.
        if (entry.autocommitOff || entry.untracked) await conn.query('SET autocommit = 1');
      }
    } catch (err) {
      this.log.warn({ connId: entry.id, err: { message: (err as Error).message, code: (err as { code?: unknown }).code } }, 'clean-up on return failed');
      entry.evictReason = watchdog.fired ? 'cleanupTimeout' : 'rollbackFailed';
      void this.resources.destroy(entry);
      return;
    } finally {
      watchdog.cancel();
    }
    if (leftOpen) this.log.warn({ connId: entry.id }, 'connection returned with a transaction open; rolled back');
    entry.inTransaction = false;
    entry.autocommitOff = false;
    entry.transactionUnknown = false;
    entry.untracked = false;
    entry.lastAccessAt = Date.now();
    entry.lastUsedAt = entry.lastAccessAt;
    this.resources.giveBack(entry);
  }

  // After a restart or failover, every connection made before it is suspect: each is checked
  // at its next use, so the pool pays one detection, not one user-visible failure per connection.
  private suspectIdle(reason: EvictReason): void {
    const nowMs = Date.now();
    if (nowMs - this.suspectBeforeMs > 1_000) {
      this.log.info({ reason }, 'connection found dead; connections used before now will be checked before use');
    }
    this.suspectBeforeMs = nowMs;
  }

  // What a lent connection asks before each statement. The first question is the hot path:
  // no I/O. Concurrent statements on one connection share one check.
  private makeGate(): StatementGate {
    return {
      needsCheck: (entry) => {
        const nowMs = Date.now();
        return this.statementVerdictOf(entry, nowMs) !== 'use' || this.loopWatch.stalled(nowMs);
      },
      freshen: (entry) => {
        entry.freshening ??= this.checkBeforeStatement(entry).finally(() => {
          entry.freshening = undefined;
        });
        return entry.freshening;
      },
      stackTraces: this.config.stackTraces,
      afterReset: async (entry) => {
        try {
          await this.connector.setUp(entry.conn);
        } catch (err) {
          entry.broken = true; // never lent again half set up
          throw err;
        }
      },
    };
  }

  private statementVerdictOf(entry: PoolEntry, nowMs: number): 'closed' | 'ping' | 'use' {
    return statementVerdict(entry, isGone(entry), nowMs, this.connector.connWaitAgeMs, this.suspectBeforeMs);
  }

  private borrowVerdictOf(entry: PoolEntry, nowMs: number): BorrowVerdict {
    return borrowVerdict(entry, isGone(entry), nowMs, this.connector.connWaitAgeMs, this.suspectBeforeMs);
  }

  private async checkBeforeStatement(entry: PoolEntry): Promise<void> {
    if (this.loopWatch.stalled(Date.now())) await this.letLoopTurn();
    const verdict = this.statementVerdictOf(entry, Date.now());
    if (verdict === 'use') return;
    let reason: EvictReason = entry.lostReason ?? 'closed';
    let error: Error | undefined = undefined;
    if (verdict === 'ping') {
      const outcome = await this.ping(entry);
      if (outcome.ok) return;
      reason = outcome.reason;
      error = outcome.error;
    }
    const lostId = entry.id;
    if (this.ending) {
      entry.broken = true;
      throw new PoolClosedError();
    }
    this.suspectIdle(reason);
    if (entry.mayHaveTransaction) {
      // Never reconnect under an open transaction: its writes are gone with the connection.
      entry.broken = true;
      this.log.warn({ connId: lostId, reason }, 'connection lost with a transaction open');
      throw new TransactionLostError(lostId, error ?? new Error(`connection ${lostId} closed (${reason})`));
    }
    // Nothing was sent and no transaction is open: swap in a new connection, unseen by `fn`.
    entry.evictReason = reason;
    void this.closeLogged(entry);
    let made: NewConnection;
    try {
      made = await this.reconnectWithin(this.config.acquireTimeoutMs);
    } catch (err) {
      entry.broken = true; // the slot holds a closed connection: destroyed on return
      throw err;
    }
    const conn = made.conn;
    if (this.forcedClose) {
      // end({ timeout }) expired meanwhile: the slot was closed under its user.
      entry.broken = true;
      await driver.close(conn, DEFAULTS.closeTimeout);
      throw new PoolClosedError();
    }
    entry.adopt(conn, driver.connectionId(conn), made.madeAtMs, jitteredMaxAgeMs(this.config.maxAgeMs, Math.random()));
    this.watch(entry, conn);
    this.log.info({ connId: entry.id, replacedConnId: lostId, reason }, 'connection replaced before a statement');
  }

  // Nothing was sent yet, so waiting for the server (a restart) is safe, as a borrow would.
  private async reconnectWithin(timeoutMs: number): Promise<NewConnection> {
    const deadlineMs = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await this.connector.connect(true);
      } catch (err) {
        if (err instanceof PoolClosedError) throw err;
        if (isPermanentFailure(err)) throw err instanceof ConnectionSetupError ? err : this.connector.connectError(err);
        if (Date.now() >= deadlineMs) throw new AcquireTimeoutError(timeoutMs, this.stats(), err);
      }
    }
  }

  // The slow path of a borrow: after a loop stall, an age or idle verdict. Never rejects.
  private async checkBeforeLending(entry: PoolEntry, verdict: BorrowVerdict): Promise<boolean> {
    if (entry.pinging !== undefined) {
      // Taken while a keep-alive ping was in flight: its outcome decides, and its timeout must
      // never destroy the socket under this borrower's statement.
      const outcome = await entry.pinging;
      if (!outcome.ok) {
        entry.evictReason = outcome.reason;
        this.suspectIdle(outcome.reason);
        return false;
      }
      verdict = this.borrowVerdictOf(entry, Date.now());
    }
    if (verdict === 'use') {
      // A close that arrived during the stall is still unread: let the loop deliver it first.
      await this.letLoopTurn();
      verdict = this.borrowVerdictOf(entry, Date.now());
    }
    if (verdict === 'use') return true;
    if (verdict === 'ping') {
      const outcome = await this.ping(entry);
      if (outcome.ok) return true;
      entry.evictReason = outcome.reason;
    } else {
      entry.evictReason = verdict === 'closed' ? (entry.lostReason ?? 'closed') : verdict;
    }
    if (verdict !== 'maxAge') this.suspectIdle(entry.evictReason);
    return false;
  }

  // After a stall, one loop turn delivers the closes that arrived meanwhile; counted.
  private async letLoopTurn(): Promise<void> {
    this.loopStalls++;
    await LoopWatch.turn();
  }

  // A bounded ping; a live connection counts as just used. One at a time per connection: a
  // borrow that finds one in flight waits for it.
  private ping(entry: PoolEntry): Promise<driver.PingOutcome> {
    entry.pinging ??= this.pingOnce(entry).finally(() => {
      entry.pinging = undefined;
    });
    return entry.pinging;
  }

  private async pingOnce(entry: PoolEntry): Promise<driver.PingOutcome> {
    const idleMs = Date.now() - entry.lastAccessAt;
    this.pings++;
    const outcome = await driver.pingWithin(entry.conn, this.config.pingTimeoutMs);
    if (outcome.ok) {
      this.log.debug({ connId: entry.id, idleMs }, 'connection pinged');
      entry.lastAccessAt = Date.now();
    } else {
      this.pingFailures++;
      this.lastPingFailure = { error: outcome.error, atAttempt: this.connector.attempts };
    }
    return outcome;
  }

  private async keepAlive(entry: PoolEntry): Promise<void> {
    const pinged = entry.conn;
    const outcome = await this.ping(entry);
    // The outcome is about the connection pinged, never whatever the slot holds by now.
    if (outcome.ok || entry.conn !== pinged) return;
    this.suspectIdle(outcome.reason);
    entry.evictReason = outcome.reason;
    // Lent meanwhile: the borrow waited for this ping and drops the connection itself.
    if (!this.resources.removeIdle(entry)) entry.evictReason = undefined;
  }

  private retireIdle(entry: PoolEntry, reason: 'maxAge' | 'idleTimeout'): boolean {
    entry.evictReason = reason;
    if (this.resources.removeIdle(entry)) return true;
    entry.evictReason = undefined;
    return false;
  }

  private async create(): Promise<PoolEntry> {
    // Stamped with when it was made, not when it is handed over: ready()'s spare may have sat idle.
    const { conn, madeAtMs } = await this.connector.connect();
    const entry = new PoolEntry(conn, driver.connectionId(conn), madeAtMs, jitteredMaxAgeMs(this.config.maxAgeMs, Math.random()));
    this.watch(entry, conn);
    return entry;
  }

  private watch(entry: PoolEntry, conn: DriverConnection): void {
    driver.onConnectionLost(conn, (reason, err) => this.onConnectionLost(entry, conn, reason, err));
    this.created++;
    this.log.debug({ connId: entry.id }, 'connection created');
    if (this.listenerCount('create') !== 0) this.emit('create', { pool: this.config.name, connId: entry.id });
  }

  // A connection the server closed while it sat idle leaves the pool now, not at its next
  // borrow, so the pool's size is true and `min` is topped up.
  private onConnectionLost(entry: PoolEntry, conn: DriverConnection, reason: 'closedByServer' | 'connectionError', err?: Error): void {
    // Ignore a connection already replaced in its slot, or one we are closing ourselves.
    if (entry.conn !== conn || entry.evictReason !== undefined) return;
    entry.lostReason = reason;
    if (err) this.log.debug({ connId: entry.id, err: { message: err.message, code: (err as { code?: unknown }).code } }, 'connection error');
    entry.evictReason = reason;
    if (!this.resources.removeIdle(entry)) entry.evictReason = undefined; // lent or being checked: handled there
  }

  private destroy(entry: PoolEntry): Promise<void> {
    entry.evictReason ??= this.ending ? 'poolEnded' : 'closed';
    return this.closeLogged(entry);
  }

  private closeLogged(entry: PoolEntry): Promise<void> {
    if (entry.closing) return Promise.resolve(); // counted and logged when it was retired
    entry.closing = true;
    const reason = entry.evictReason ?? 'closed';
    this.destroyed[reason] = (this.destroyed[reason] ?? 0) + 1;
    const nowMs = Date.now();
    const fields = { connId: entry.id, reason, ageMs: nowMs - entry.createdAt, idleMs: nowMs - entry.lastAccessAt };
    if (ROUTINE_EVICTIONS.has(reason)) this.log.debug(fields, 'connection evicted');
    else this.log.info(fields, 'connection evicted');
    if (this.listenerCount('evict') !== 0) this.emit('evict', { pool: this.config.name, ...fields });
    return driver.close(entry.conn, DEFAULTS.closeTimeout);
  }
}

// Whether mysql2 or its events already told us the connection is dead (no I/O).
function isGone(entry: PoolEntry): boolean {
  return entry.lostReason !== undefined || driver.isKnownClosed(entry.conn);
}

/** Builds a pool. Throws `ConfigError` at once when `config` is invalid. */
export function createPool(config: FreshPoolConfig): FreshPool {
  return new FreshPool(config);
}
