/** The events a pool emits, with their payloads. Subscribe with `pool.on(name, listener)`. */
import type { EvictReason } from './entry.js';

/** A connection's identity in an event. */
export interface ConnectionEvent {
  /** The pool's `name`. */
  readonly pool: string;
  /** The server's connection id (`CONNECTION_ID()`). */
  readonly connId: number;
}

/** A new connection was opened (for a new slot, or in place of a dead one before a statement). */
export interface CreateEvent extends ConnectionEvent {
  /**
   * ms from the pool asking for the connection to its being ready: handshake, session setup
   * (`initSql`, `onConnect`) and, for a pool's first connection, the read of `wait_timeout`.
   * After a failed connect it includes the backoff before the attempt; for a replacement
   * before a statement, every attempt until one succeeded.
   */
  readonly createMs: number;
}

/** A connection left the pool. */
export interface EvictEvent extends ConnectionEvent {
  readonly reason: EvictReason;
  /** ms since the connection was made. */
  readonly ageMs: number;
  /** ms since it was last used. */
  readonly idleMs: number;
}

/** A statement met a wrong-node error. */
export interface WrongNodeEvent extends ConnectionEvent {
  /** The server's error number. */
  readonly errno: number;
}

/**
 * How a borrow got its connection:
 * - `idle`: an idle connection used moments ago, lent at once (no check, no wait);
 * - `checked`: an idle connection, lent after a check (a ping, a loop turn after an event-loop
 *   stall, or the outcome of a keep-alive ping in flight);
 * - `waited`: none was idle, or those found were unfit: the borrow waited for a connection
 *   given back or newly made (and checked it when needed).
 */
export type AcquirePath = 'idle' | 'checked' | 'waited';

/** A borrow got its connection. */
export interface AcquireEvent extends ConnectionEvent {
  /** ms the borrow waited, checks included; 0 on the `idle` path. */
  readonly waitMs: number;
  /** How it got the connection; see `AcquirePath`. */
  readonly via: AcquirePath;
}

/** A loan ended: the connection came back (it may still be cleaned up or destroyed). */
export interface ReleaseEvent extends ConnectionEvent {
  /**
   * ms the connection was lent (from the borrow getting it to its return). `undefined` for a
   * loan that began while nobody listened to 'release': its start was not noted.
   */
  readonly useMs: number | undefined;
}

/** Why the pool pinged a connection. */
export type PingCause = 'borrow' | 'statement' | 'keepAlive';

/**
 * The pool pinged a connection: to validate it for a borrow or before a statement (it sat idle
 * past `connWaitAge`, or connections were suspect after one was found dead), or as a keep-alive
 * (`keepAliveInterval`).
 */
export interface PingEvent extends ConnectionEvent {
  /** Whether the server answered within `pingTimeout`. */
  readonly ok: boolean;
  /** Why it failed (`pingFailed`, `pingTimeout`); `undefined` when `ok`. */
  readonly reason: 'pingFailed' | 'pingTimeout' | undefined;
  /** ms from sending the ping to its answer, failure or timeout. */
  readonly pingMs: number;
  /** ms the connection had been idle when pinged. */
  readonly idleMs: number;
  /**
   * What the ping was for: `borrow` and `statement` run inside the caller's async context
   * (its active trace span), `keepAlive` in the pool's upkeep timer.
   */
  readonly cause: PingCause;
}

/**
 * A connection found unfit was dropped on a caller's behalf. `connId` is the dropped one.
 * At a `borrow`, the borrow goes on to another connection (its 'acquire' names it); before a
 * `statement`, a new connection took the dropped one's place in the loan before anything
 * was sent. Emitted inside the caller's async context.
 */
export interface ReplaceEvent extends ConnectionEvent {
  /** Why it was dropped: `pingFailed`, `pingTimeout`, `closedByServer`, `maxAge`, ... */
  readonly reason: EvictReason;
  /** Where it happened. */
  readonly phase: 'borrow' | 'statement';
  /** The connection that took its place (`statement`); `undefined` at a `borrow`. */
  readonly newConnId: number | undefined;
}

/**
 * No connection could be had in time: a borrow reached `acquireTimeout`, or a statement waiting
 * for a replacement reached `reconnectTimeout`. Emitted as the `AcquireTimeoutError` is made.
 */
export interface AcquireTimeoutEvent {
  /** The pool's `name`. */
  readonly pool: string;
  /** The timeout that expired, ms. */
  readonly timeoutMs: number;
  /** A borrow (`acquireTimeout`) or a statement's replacement (`reconnectTimeout`). */
  readonly phase: 'borrow' | 'statement';
}

/** Event names and the arguments their listeners get. */
export interface FreshPoolEvents {
  /** A new connection was opened, with how long that took. */
  create: [CreateEvent];
  /** A connection was closed, with the reason. */
  evict: [EvictEvent];
  /** A borrow got a connection. */
  acquire: [AcquireEvent];
  /** A connection came back (it may still be cleaned up or destroyed), with how long it was lent. */
  release: [ReleaseEvent];
  /** The pool pinged a connection, with the outcome. */
  ping: [PingEvent];
  /** A connection found unfit was dropped for a borrow or before a statement. */
  replace: [ReplaceEvent];
  /** A borrow, or a statement's replacement, ran out of time (`AcquireTimeoutError`). */
  acquireTimeout: [AcquireTimeoutEvent];
  /**
   * A statement met a wrong-node error: the server is read-only (1290, 1792, 1836) or a Galera
   * node not ready (1047, 1180). The connection is closed when it comes back; a cluster
   * re-checks its topology at once.
   */
  wrongNode: [WrongNodeEvent];
  /**
   * A connect failed (the pool retries by itself). Emitted only while someone listens, so an
   * unheard 'error' never crashes the process.
   */
  error: [Error];
}
