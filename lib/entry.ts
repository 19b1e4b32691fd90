/**
 * The per-connection record (HikariCP's PoolEntry): the connection and the times the pool's
 * decisions need. generic-pool hands only the resource to `validate`, so the times live here.
 */
import type { ConnectionTimes } from './decisions.js';
import type { DriverConnection } from './driver.js';

/** Why a connection left the pool; logged and counted. */
export type EvictReason =
  | 'closed'
  | 'closedByServer'
  | 'connectionError'
  | 'maxAge'
  | 'pingFailed'
  | 'pingTimeout'
  | 'poolEnded';

/** One pooled connection and its lifetime record. Times are ms since the epoch. */
export class PoolEntry implements ConnectionTimes {
  /** The mysql2 promise connection lent to the user. */
  readonly conn: DriverConnection;
  /** The server's connection id (`CONNECTION_ID()`), for logs. */
  readonly id: number;
  /** When the connection was made, ms since the epoch. */
  readonly createdAt: number;
  /** When the connection was made or last came back to the pool, ms since the epoch. */
  lastAccessAt: number;
  /** This connection's own age limit in ms (maxAge less its jitter); 0 means none. */
  readonly maxAgeMs: number;
  /** Set when mysql2 reports the connection ended or failed. */
  lostReason: 'closedByServer' | 'connectionError' | undefined = undefined;
  /** Why the pool is about to destroy it; read by the destroy hook for the log. */
  evictReason: EvictReason | undefined = undefined;

  constructor(conn: DriverConnection, id: number, nowMs: number, maxAgeMs: number) {
    this.conn = conn;
    this.id = id;
    this.createdAt = nowMs;
    this.lastAccessAt = nowMs;
    this.maxAgeMs = maxAgeMs;
  }
}
