/**
 * A connection's life in the pool: made and watched, taken out while idle (age, idle
 * timeout, a failed keep-alive, the server closing it), and closed, each close counted,
 * logged and announced once.
 */
import { DEFAULTS } from '../config.js';
import { jitteredMaxAgeMs } from '../decisions.js';
import * as driver from '../driver.js';
import type { DriverConnection } from '../driver.js';
import { PoolEntry, type EvictReason } from '../entry.js';
import { emitSafely, type PoolCore } from './core.js';
import { ping, suspectIdle } from './liveness.js';

// Routine evictions are debug; the ones that mean a connection died are info.
const ROUTINE_EVICTIONS: ReadonlySet<EvictReason> = new Set(['maxAge', 'idleTimeout', 'poolEnded']);

/** generic-pool's `create`: a new connection in a new slot, watched. */
export async function createEntry(core: PoolCore): Promise<PoolEntry> {
  const askedAtMs = Date.now();
  const spareCreateMs = takeSpareCreateMs(core);
  // Stamped with when it was made, not when it is handed over: ready()'s spare may have sat idle.
  const { conn, madeAtMs } = await core.connector.connect();
  const entry = new PoolEntry(conn, driver.connectionId(conn), madeAtMs, jitteredMaxAgeMs(core.config.maxAgeMs, Math.random()));
  watch(core, entry, conn, spareCreateMs ?? madeAtMs - askedAtMs);
  entry.onWrongNode = (errno) => {
    core.log.warn({ connId: entry.id, errno }, 'statement reached a server that cannot take it; connection closed on return');
    if (core.events.listenerCount('wrongNode') !== 0) emitSafely(core, 'wrongNode', { pool: core.config.name, connId: entry.id, errno });
  };
  return entry;
}

/**
 * The create time `ready()` measured for its connection, once: call it just before
 * `connector.connect()`, which hands that connection to the first call after `ready()` made it.
 */
export function takeSpareCreateMs(core: PoolCore): number | undefined {
  const ms = core.spareCreateMs;
  core.spareCreateMs = undefined;
  return ms;
}

/**
 * Counts and announces `conn`, new in `entry`'s slot, and takes the slot out when the server drops it while idle.
 * @param createMs how long the connection took to make, ms (the 'create' event's `createMs`)
 */
export function watch(core: PoolCore, entry: PoolEntry, conn: DriverConnection, createMs: number): void {
  driver.onConnectionLost(conn, (reason, err) => onConnectionLost(core, entry, conn, reason, err));
  core.counters.created++;
  core.log.debug({ connId: entry.id }, 'connection created');
  if (core.events.listenerCount('create') !== 0) emitSafely(core, 'create', { pool: core.config.name, connId: entry.id, createMs });
}

// A connection the server closed while it sat idle leaves the pool now, not at its next
// borrow, so the pool's size is true and `min` is topped up.
function onConnectionLost(core: PoolCore, entry: PoolEntry, conn: DriverConnection, reason: 'closedByServer' | 'connectionError', err?: Error): void {
  // Ignore a connection already replaced in its slot, or one we are closing ourselves.
  if (entry.conn !== conn || entry.evictReason !== undefined) return;
  entry.lostReason = reason;
  if (err) {
    entry.lostError ??= err;
    core.log.debug({ connId: entry.id, err }, 'connection error');
  }
  entry.evictReason = reason;
  if (!core.resources.removeIdle(entry)) entry.evictReason = undefined; // lent or being checked: handled there
}

/** generic-pool's `destroy`. */
export function destroyEntry(core: PoolCore, entry: PoolEntry): Promise<void> {
  entry.evictReason ??= core.ending ? 'poolEnded' : 'closed';
  return closeLogged(core, entry);
}

/** Closes the slot's connection (bounded by `DEFAULTS.closeTimeout` ms), counted and logged with its `evictReason`, once. */
export function closeLogged(core: PoolCore, entry: PoolEntry): Promise<void> {
  if (entry.closing) return Promise.resolve(); // counted and logged when it was retired
  entry.closing = true;
  const reason = entry.evictReason ?? 'closed';
  core.counters.destroyed[reason] = (core.counters.destroyed[reason] ?? 0) + 1;
  const nowMs = Date.now();
  const fields = { connId: entry.id, reason, ageMs: nowMs - entry.createdAt, idleMs: nowMs - entry.lastAccessAt };
  // The line also names the error that showed the connection dead, when there was one.
  const logged = entry.lostError === undefined ? fields : { ...fields, err: entry.lostError };
  if (ROUTINE_EVICTIONS.has(reason)) core.log.debug(logged, 'connection evicted');
  else core.log.info(logged, 'connection evicted');
  if (core.events.listenerCount('evict') !== 0) emitSafely(core, 'evict', { pool: core.config.name, ...fields });
  const closed = driver.close(entry.conn, DEFAULTS.closeTimeout);
  core.closing.add(closed);
  void closed.then(() => core.closing.delete(closed));
  return closed;
}

/** Housekeeping's keep-alive: pings an idle entry and takes it out when dead. Never rejects. */
export async function keepAlive(core: PoolCore, entry: PoolEntry): Promise<void> {
  const pinged = entry.conn;
  const outcome = await ping(core, entry, 'keepAlive');
  // The outcome is about the connection pinged, never whatever the slot holds by now.
  if (outcome.ok || entry.conn !== pinged) return;
  suspectIdle(core, outcome.reason);
  entry.evictReason = outcome.reason;
  // Lent meanwhile: the borrow waited for this ping and drops the connection itself.
  if (!core.resources.removeIdle(entry)) entry.evictReason = undefined;
}

/** Housekeeping's retirement of an idle entry; false when it was lent meanwhile. */
export function retireIdle(core: PoolCore, entry: PoolEntry, reason: 'maxAge' | 'idleTimeout'): boolean {
  entry.evictReason = reason;
  if (core.resources.removeIdle(entry)) return true;
  entry.evictReason = undefined;
  return false;
}
