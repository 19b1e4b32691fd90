/**
 * The pool's policy: when a connection is made, checked, lent, taken back and destroyed.
 * Decisions come from decisions.ts (pure), I/O goes through driver.ts, and the per-connection
 * record is PoolEntry; generic-pool does the queueing.
 */
import { pino, type Logger } from 'pino';
import type { FieldPacket, QueryOptions, QueryResult } from 'mysql2/promise';
import { DEFAULTS, resolveConfig, type FreshPoolConfig, type ResolvedConfig } from './config.js';
import { borrowVerdict, connectBackoffMs, effectiveConnWaitAgeMs, jitteredMaxAgeMs } from './decisions.js';
import * as driver from './driver.js';
import type { DriverConnection } from './driver.js';
import { PoolEntry, type EvictReason } from './entry.js';
import { AcquireTimeoutError, PoolClosedError, type PoolStats } from './errors.js';
import { createResourcePool, type ResourcePool } from './resource-pool.js';

/** The connection lent to `withConnection`'s function: a mysql2 promise connection. */
export type PoolConnection = DriverConnection;

// Preallocated so the hot path (a recently used connection) allocates no promise of its own.
const VALID = Promise.resolve(true);
const INVALID = Promise.resolve(false);

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
  private readingWaitTimeout = false;
  private consecutiveConnectFailures = 0;
  /** The last connect or ping failure since the last successful connect: an acquire timeout's cause. */
  private lastFailure: Error | undefined;
  private ending: Promise<void> | undefined;
  private created = 0;
  private pings = 0;
  private pingFailures = 0;
  private connectFailures = 0;
  private readonly destroyed: Record<string, number> = {};

  /** Prefer `createPool(config)`. Throws `ConfigError` on invalid configuration. */
  constructor(config: FreshPoolConfig) {
    this.config = resolveConfig(config);
    this.log = this.config.logger ?? pino({ name: 'mysql-fresh-pool', level: 'info' });
    this.connWaitAgeMs = this.config.connWaitAgeMs;
    this.resources = createResourcePool<PoolEntry>(
      { create: () => this.create(), destroy: (entry) => this.destroy(entry), validate: (entry) => this.validate(entry) },
      {
        max: this.config.max,
        min: this.config.min,
        testOnBorrow: true,
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
   */
  async withConnection<T>(fn: (conn: PoolConnection) => T | Promise<T>): Promise<T> {
    const entry = await this.acquire();
    try {
      return await fn(entry.conn);
    } finally {
      this.giveBack(entry);
    }
  }

  /** Runs one query on a borrowed connection (mysql2's `query`: text protocol, client-side escaping). */
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: unknown): Promise<[T, FieldPacket[]]> {
    return this.withConnection((conn) => conn.query<T>(sql as string, values as never));
  }

  /** Runs one prepared statement on a borrowed connection (mysql2's `execute`). */
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: unknown): Promise<[T, FieldPacket[]]> {
    return this.withConnection((conn) => conn.execute<T>(sql as string, values as never));
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
    this.log.debug({ stats: this.stats() }, 'pool ended');
  }

  private async acquire(): Promise<PoolEntry> {
    if (this.ending) throw new PoolClosedError();
    try {
      return await this.resources.acquire();
    } catch (err) {
      if ((err as Error)?.name === 'TimeoutError') {
        throw new AcquireTimeoutError(this.config.acquireTimeoutMs, this.stats(), this.lastFailure);
      }
      if (this.ending) throw new PoolClosedError();
      throw err;
    }
  }

  private giveBack(entry: PoolEntry): void {
    entry.lastAccessAt = Date.now();
    if (entry.lostReason !== undefined || driver.isKnownClosed(entry.conn)) {
      entry.evictReason = entry.lostReason ?? 'closed';
      void this.resources.destroy(entry);
    } else {
      void this.resources.release(entry);
    }
  }

  // generic-pool evicts only on a resolved `false`; a rejection would leave the connection
  // stuck in its test set forever. So this never rejects.
  private validate(entry: PoolEntry): Promise<boolean> {
    const nowMs = Date.now();
    const knownClosed = entry.lostReason !== undefined || driver.isKnownClosed(entry.conn);
    const verdict = borrowVerdict(entry, knownClosed, nowMs, this.connWaitAgeMs);
    if (verdict === 'use') return VALID;
    if (verdict === 'ping') return this.pingBeforeLending(entry, nowMs);
    entry.evictReason = verdict === 'closed' ? (entry.lostReason ?? 'closed') : verdict;
    return INVALID;
  }

  private async pingBeforeLending(entry: PoolEntry, nowMs: number): Promise<boolean> {
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
    // generic-pool retries a failed create at once, in a loop; the delay here paces it.
    const delayMs = connectBackoffMs(this.consecutiveConnectFailures, Math.random());
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    if (this.ending) throw new PoolClosedError();
    let conn: DriverConnection;
    try {
      conn = await driver.connect(this.config.connection);
    } catch (err) {
      this.noteConnectFailure(err as Error, delayMs);
      throw err;
    }
    const entry = new PoolEntry(conn, driver.connectionId(conn), Date.now(), jitteredMaxAgeMs(this.config.maxAgeMs, Math.random()));
    driver.onConnectionLost(conn, (reason, err) => this.onConnectionLost(entry, reason, err));
    if (!this.waitTimeoutKnown && !this.readingWaitTimeout) {
      try {
        await this.learnWaitTimeout(conn);
      } catch (err) {
        await driver.close(conn, DEFAULTS.closeTimeout);
        this.noteConnectFailure(err as Error, delayMs);
        throw err;
      }
    }
    this.consecutiveConnectFailures = 0;
    this.lastFailure = undefined;
    this.created++;
    this.log.debug({ connId: entry.id }, 'connection created');
    return entry;
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
    this.readingWaitTimeout = true;
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
    } finally {
      this.readingWaitTimeout = false;
    }
  }

  // A connection the server closed while it sat idle leaves the pool now, not at its next
  // borrow, so the pool's size is true and `min` is topped up.
  private onConnectionLost(entry: PoolEntry, reason: 'closedByServer' | 'connectionError', err?: Error): void {
    if (entry.evictReason !== undefined) return; // we are closing it ourselves
    entry.lostReason = reason;
    if (err) this.lastFailure = err;
    entry.evictReason = reason;
    if (!this.resources.removeIdle(entry)) entry.evictReason = undefined; // lent or in validation: handled there
  }

  private destroy(entry: PoolEntry): Promise<void> {
    const reason: EvictReason = entry.evictReason ?? (this.ending ? 'poolEnded' : 'closed');
    entry.evictReason = reason;
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
