/** The events a pool emits, with their payloads. Subscribe with `pool.on(name, listener)`. */
import type { EvictReason } from './entry.js';

/** A connection's identity in an event. */
export interface ConnectionEvent {
  /** The pool's `name`. */
  readonly pool: string;
  /** The server's connection id (`CONNECTION_ID()`). */
  readonly connId: number;
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

/** A borrow got its connection. */
export interface AcquireEvent extends ConnectionEvent {
  /** ms the borrow waited, checks included. */
  readonly waitMs: number;
}

/** Event names and the arguments their listeners get. */
export interface FreshPoolEvents {
  /** A new connection was opened. */
  create: [ConnectionEvent];
  /** A connection was closed, with the reason. */
  evict: [EvictEvent];
  /** A borrow got a connection. */
  acquire: [AcquireEvent];
  /** A connection came back (it may still be cleaned up or destroyed). */
  release: [ConnectionEvent];
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
