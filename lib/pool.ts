/**
 * The pool's policy: when a connection is made, checked, lent, taken back and destroyed.
 * Decisions come from decisions.ts (pure), I/O goes through driver.ts, and the per-connection
 * record is PoolEntry; generic-pool does the queueing.
 */
import { inspect } from 'node:util';
import { pino, type Logger } from 'pino';
import type { FieldPacket, QueryOptions, QueryResult } from 'mysql2/promise';
import { DEFAULTS, resolveConfig, type FreshPoolConfig, type ResolvedConfig } from './config.js';
import { borrowVerdict, type BorrowVerdict, connectBackoffMs, effectiveConnWaitAgeMs, jitteredMaxAgeMs, statementVerdict } from './decisions.js';
import * as driver from './driver.js';
import type { DriverConnection } from './driver.js';
import { PoolEntry, type EvictReason } from './entry.js';
import { AcquireTimeoutError, InvalidArgumentError, PoolClosedError, TransactionLostError, type PoolStats } from './errors.js';
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

// Internal: the same name generic-pool gives its own acquire timeout; never reaches users.
class TimeoutError extends Error {
  override name = 'TimeoutError';
}

// Routine evictions are debug; the ones that mean a connection died are info.
const ROUTINE_EVICTIONS: ReadonlySet<EvictReason> = new Set(['maxAge', 'poolEnded']);

/** A pool of mysql2 connections that validates each one as it is lent. Build it with `createPool`. */
export class FreshPool {
  private readonly config: ResolvedConfig;
  private readonly log: Logger;
  private readonly resources: ResourcePool<PoolEntry>;
  /** The idle threshold in force, ms; undefined until known (every borrow pings meanwhile). */
  private connWaitAgeMs: number | undefined;
  private waitTimeoutKnown = false;
  /** The first connection's read of wait_timeout, while it is in flight. */
  private waitTimeoutRead: Promise<void> | undefined;
  private consecutiveConnectFailures = 0;
  /** The last connect or ping failure since the last successful connect: an acquire timeout's cause. */
  private lastFailure: Error | undefined;
  private ending: Promise<void> | undefined;
  private created = 0;
  private pings = 0;
  private pingFailures = 0;
  private connectFailures = 0;
  private readonly destroyed: Record<string, number> = {};
  private loopStalls = 0;
  private readonly loopWatch = new LoopWatch(DEFAULTS.loopTickMs, DEFAULTS.loopStallMs);

  /** Prefer `createPool(config)`. Throws `ConfigError` on invalid configuration. */
  constructor(config: FreshPoolConfig) {
    this.config = resolveConfig(config);
    this.log = this.config.logger ?? pino({ name: 'mysql-fresh-pool', level: 'info' });
    this.connWaitAgeMs = this.config.connWaitAgeMs;
    this.loopWatch.start();
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
        autostart: true,
      },
    );
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
    const entry = await this.acquire();
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
    const entry = await this.acquire();
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

  private endLoan(entry: PoolEntry, lent: LentConnection, leak: LeakWatch | undefined): void {
    lent.revoke();
    if (leak !== undefined) endLeakWatch(this.log, leak, entry.id);
    this.giveBack(entry);
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

  /** What logging or inspecting the pool shows: its counters, never its connections' options. */
  toJSON(): PoolStats {
    return this.stats();
  }

  [inspect.custom](): string {
    return `FreshPool ${inspect(this.stats())}`;
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
      connectFailures: this.connectFailures,
      loopStalls: this.loopStalls,
      connWaitAgeMs: this.connWaitAgeMs,
    });
  }

  /**
   * Stops lending (later borrows reject with `PoolClosedError`), waits for the borrows already
   * queued or running to finish, then closes every connection. Safe to call more than once.
   */
  end(): Promise<void> {
    this.ending ??= this.shutdown();
    return this.ending;
  }

  private async shutdown(): Promise<void> {
    await this.resources.drain();
    await this.resources.clear();
    this.loopWatch.stop();
    this.log.debug({ stats: this.stats() }, 'pool ended');
  }

  // Validation runs here rather than in generic-pool's testOnBorrow: the hot path (a connection
  // used moments ago) then costs one synchronous decision and no promise of its own, and a
  // check can never leave a connection stuck in generic-pool's test set.
  private async acquire(): Promise<PoolEntry> {
    if (this.ending) throw new PoolClosedError();
    const deadline = Date.now() + this.config.acquireTimeoutMs;
    let request = this.resources.acquire();
    for (;;) {
      let entry: PoolEntry;
      try {
        entry = await request;
      } catch (err) {
        throw this.acquireFailure(err);
      }
      const nowMs = Date.now();
      const verdict = this.borrowVerdictOf(entry, nowMs);
      if (verdict === 'use' && !this.loopWatch.stalled(nowMs)) return entry;
      if (await this.checkBeforeLending(entry, verdict)) return entry;
      void this.resources.destroy(entry);
      // Another connection, within what is left of acquireTimeout.
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) throw this.acquireFailure(new TimeoutError());
      request = this.acquireWithin(remainingMs);
    }
  }

  private acquireFailure(err: unknown): Error {
    if (err instanceof TimeoutError || (err as Error)?.name === 'TimeoutError') {
      return new AcquireTimeoutError(this.config.acquireTimeoutMs, this.stats(), this.lastFailure);
    }
    if (this.ending) return new PoolClosedError();
    return err as Error;
  }

  // generic-pool's own timeout restarts with each acquire; this one keeps the first deadline.
  // A connection that arrives after it gave up goes straight back to the pool.
  private acquireWithin(ms: number): Promise<PoolEntry> {
    const request = this.resources.acquire();
    return new Promise((resolve, reject) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        request.then((entry) => this.resources.release(entry), () => undefined);
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

  private giveBack(entry: PoolEntry): void {
    entry.lastAccessAt = Date.now();
    if (entry.broken || entry.lostReason !== undefined || driver.isKnownClosed(entry.conn)) {
      entry.evictReason = entry.lostReason ?? (entry.broken ? 'fatalError' : 'closed');
      void this.resources.destroy(entry);
    } else if (this.config.resetOnReturn || entry.mayHaveTransaction) {
      void this.cleanThenRelease(entry);
    } else {
      void this.resources.release(entry);
    }
  }

  // Only reached when the OK packets said a transaction may be open (or resetOnReturn): the
  // next borrower must never inherit someone else's uncommitted writes.
  private async cleanThenRelease(entry: PoolEntry): Promise<void> {
    const leftOpen = entry.inTransaction;
    try {
      if (this.config.resetOnReturn) {
        await entry.conn.reset();
      } else {
        await entry.conn.query('ROLLBACK');
        // Untracked statements may have turned autocommit off without our seeing it.
        if (entry.autocommitOff || entry.untracked) await entry.conn.query('SET autocommit = 1');
      }
    } catch (err) {
      this.log.warn({ connId: entry.id, err: { message: (err as Error).message, code: (err as { code?: unknown }).code } }, 'clean-up on return failed');
      entry.evictReason = 'rollbackFailed';
      void this.resources.destroy(entry);
      return;
    }
    if (leftOpen) this.log.warn({ connId: entry.id }, 'connection returned with a transaction open; rolled back');
    entry.inTransaction = false;
    entry.autocommitOff = false;
    entry.untracked = false;
    entry.lastAccessAt = Date.now();
    void this.resources.release(entry);
  }

  // What a lent connection asks before each statement. The first question is the hot path:
  // no I/O. Concurrent statements on one connection share one check.
  private readonly gate: StatementGate = {
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
  };

  private statementVerdictOf(entry: PoolEntry, nowMs: number): 'closed' | 'ping' | 'use' {
    return statementVerdict(entry, entry.lostReason !== undefined || driver.isKnownClosed(entry.conn), nowMs, this.connWaitAgeMs);
  }

  private async checkBeforeStatement(entry: PoolEntry): Promise<void> {
    if (this.loopWatch.stalled(Date.now())) {
      this.loopStalls++;
      await LoopWatch.turn();
    }
    const nowMs = Date.now();
    const verdict = this.statementVerdictOf(entry, nowMs);
    if (verdict === 'use') return;
    let reason: EvictReason = entry.lostReason ?? 'closed';
    let error: Error | undefined = undefined;
    if (verdict === 'ping') {
      this.pings++;
      const outcome = await driver.pingWithin(entry.conn, this.config.pingTimeoutMs);
      if (outcome.ok) {
        entry.lastAccessAt = Date.now();
        return;
      }
      this.pingFailures++;
      this.lastFailure = outcome.error;
      reason = outcome.reason;
      error = outcome.error;
    }
    const lostId = entry.id;
    if (entry.mayHaveTransaction) {
      // Never reconnect under an open transaction: its writes are gone with the connection.
      entry.broken = true;
      this.log.warn({ connId: lostId, reason }, 'connection lost with a transaction open');
      throw new TransactionLostError(lostId, error ?? new Error(`connection ${lostId} closed (${reason})`));
    }
    // Nothing was sent and no transaction is open: swap in a new connection, unseen by `fn`.
    this.retire(entry, reason);
    let conn: DriverConnection;
    try {
      conn = await this.connectWithBackoff();
    } catch (err) {
      entry.broken = true; // the slot holds a closed connection: destroyed on return
      throw err;
    }
    entry.adopt(conn, driver.connectionId(conn), Date.now(), jitteredMaxAgeMs(this.config.maxAgeMs, Math.random()));
    this.watch(entry, conn);
    this.created++;
    this.log.info({ connId: entry.id, replacedConnId: lostId, reason }, 'connection replaced before a statement');
  }

  // Logs, counts and closes the entry's current connection, leaving the entry in the pool.
  private retire(entry: PoolEntry, reason: EvictReason): void {
    entry.evictReason = reason;
    void this.closeLogged(entry);
  }

  private borrowVerdictOf(entry: PoolEntry, nowMs: number): BorrowVerdict {
    return borrowVerdict(entry, entry.lostReason !== undefined || driver.isKnownClosed(entry.conn), nowMs, this.connWaitAgeMs);
  }

  // The slow path of a borrow: after a loop stall, an age or idle verdict. Never rejects.
  private async checkBeforeLending(entry: PoolEntry, verdict: BorrowVerdict): Promise<boolean> {
    if (verdict === 'use') {
      // A close that arrived during the stall is still unread: let the loop deliver it first.
      this.loopStalls++;
      await LoopWatch.turn();
      verdict = this.borrowVerdictOf(entry, Date.now());
    }
    if (verdict === 'use') return true;
    if (verdict === 'ping') return this.pingBeforeLending(entry);
    entry.evictReason = verdict === 'closed' ? (entry.lostReason ?? 'closed') : verdict;
    return false;
  }

  private async pingBeforeLending(entry: PoolEntry): Promise<boolean> {
    const nowMs = Date.now();
    this.pings++;
    const outcome = await driver.pingWithin(entry.conn, this.config.pingTimeoutMs);
    if (outcome.ok) {
      this.log.debug({ connId: entry.id, idleMs: nowMs - entry.lastAccessAt }, 'idle connection pinged');
      entry.lastAccessAt = Date.now();
      return true;
    }
    this.pingFailures++;
    this.lastFailure = outcome.error;
    entry.evictReason = outcome.reason;
    return false;
  }

  private async create(): Promise<PoolEntry> {
    const conn = await this.connectWithBackoff();
    const entry = new PoolEntry(conn, driver.connectionId(conn), Date.now(), jitteredMaxAgeMs(this.config.maxAgeMs, Math.random()));
    this.watch(entry, conn);
    this.created++;
    this.log.debug({ connId: entry.id }, 'connection created');
    return entry;
  }

  // generic-pool retries a failed create at once, in a loop; the delay here paces it.
  private async connectWithBackoff(): Promise<DriverConnection> {
    const delayMs = connectBackoffMs(this.consecutiveConnectFailures, Math.random());
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    // No early exit when the pool is ending: borrows queued before end() are still served,
    // and a create that failed without a delay would make generic-pool retry in a tight loop.
    let conn: DriverConnection;
    try {
      conn = await driver.connect(this.config.connection);
    } catch (err) {
      this.noteConnectFailure(err as Error, delayMs);
      throw err;
    }
    // Until it is watched, an 'error' event would have no listener and crash the process.
    driver.onConnectionLost(conn, () => {});
    if (!this.waitTimeoutKnown) {
      if (this.waitTimeoutRead === undefined) {
        this.waitTimeoutRead = this.learnWaitTimeout(conn).finally(() => {
          this.waitTimeoutRead = undefined;
        });
        try {
          await this.waitTimeoutRead;
        } catch (err) {
          await driver.close(conn, DEFAULTS.closeTimeout);
          this.noteConnectFailure(err as Error, delayMs);
          throw err;
        }
      } else {
        // Made alongside the first connection: wait for its answer rather than lend this one
        // before the idle threshold is known (which would cost it a ping).
        await this.waitTimeoutRead.catch(() => undefined);
      }
    }
    this.consecutiveConnectFailures = 0;
    this.lastFailure = undefined;
    return conn;
  }

  private watch(entry: PoolEntry, conn: DriverConnection): void {
    driver.onConnectionLost(conn, (reason, err) => this.onConnectionLost(entry, conn, reason, err));
  }

  private noteConnectFailure(err: Error, delayMs: number): void {
    this.consecutiveConnectFailures++;
    this.connectFailures++;
    this.lastFailure = err;
    this.log.warn(
      { err: { message: err.message, code: (err as { code?: unknown }).code }, failures: this.consecutiveConnectFailures, delayMs },
      'connect failed',
    );
  }

  private async learnWaitTimeout(conn: DriverConnection): Promise<void> {
    try {
      const waitTimeoutSeconds = await driver.readWaitTimeoutSeconds(conn);
      const { ms, clamped } = effectiveConnWaitAgeMs(this.config.connWaitAgeMs, waitTimeoutSeconds);
      if (clamped) {
        this.log.warn(
          { connWaitAgeMs: this.config.connWaitAgeMs, waitTimeoutSeconds, clampedToMs: ms },
          'connWaitAge is not below the server wait_timeout; clamped',
        );
      }
      this.connWaitAgeMs = ms;
      this.waitTimeoutKnown = true;
      this.log.debug({ waitTimeoutSeconds, connWaitAgeMs: ms }, 'server wait_timeout read');
    } catch (err) {
      if ((err as { fatal?: boolean }).fatal) throw err;
      // A server or proxy that will not say: keep the explicit value, else the cap.
      this.connWaitAgeMs = this.config.connWaitAgeMs ?? DEFAULTS.connWaitAgeCap;
      this.waitTimeoutKnown = true;
      this.log.warn({ err: { message: (err as Error).message }, connWaitAgeMs: this.connWaitAgeMs }, 'could not read wait_timeout');
    }
  }

  // A connection the server closed while it sat idle leaves the pool now, not at its next
  // borrow, so the pool's size is true and `min` is topped up.
  private onConnectionLost(entry: PoolEntry, conn: DriverConnection, reason: 'closedByServer' | 'connectionError', err?: Error): void {
    // Ignore a connection already replaced in its slot, or one we are closing ourselves.
    if (entry.conn !== conn || entry.evictReason !== undefined) return;
    entry.lostReason = reason;
    if (err) this.lastFailure = err;
    entry.evictReason = reason;
    if (!this.resources.removeIdle(entry)) entry.evictReason = undefined; // lent or in validation: handled there
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
    return driver.close(entry.conn, DEFAULTS.closeTimeout);
  }
}

/** Builds a pool. Throws `ConfigError` at once when `config` is invalid. */
export function createPool(config: FreshPoolConfig): FreshPool {
  return new FreshPool(config);
}
