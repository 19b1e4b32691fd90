/**
 * Pure decisions. Each takes the clock (and randomness) as input, so unit tests need no sleeps
 * and no server; the pool supplies `Date.now()` and `Math.random()`.
 */
import { DEFAULTS } from './config.js';

/** What a borrow does with an idle connection. */
export type BorrowVerdict = 'closed' | 'maxAge' | 'ping' | 'use';

/** The times a borrow decision needs from a connection's record. All in ms since the epoch. */
export interface ConnectionTimes {
  readonly createdAt: number;
  readonly lastAccessAt: number;
  /** Last use by a borrower (a ping is not use); defaults to lastAccessAt. */
  readonly lastUsedAt?: number;
  /** This connection's own age limit in ms (already jittered); 0 means none. */
  readonly maxAgeMs: number;
}

/**
 * Decides, without I/O, what to do with a connection about to be lent:
 * `closed` (the driver already knows it is dead), `maxAge` (too old: replace it),
 * `ping` (idle longer than `connWaitAgeMs`: check it first) or `use` (hand it out as is).
 *
 * @param knownClosed whether mysql2 has already seen the connection close or fail
 * @param nowMs the current time, ms since the epoch
 * @param connWaitAgeMs idle threshold in ms; `undefined` (not yet known) pings every time
 */
export function borrowVerdict(
  times: ConnectionTimes,
  knownClosed: boolean,
  nowMs: number,
  connWaitAgeMs: number | undefined,
  suspectBeforeMs = 0,
): BorrowVerdict {
  if (knownClosed) return 'closed';
  if (times.maxAgeMs !== 0 && nowMs - times.createdAt > times.maxAgeMs) return 'maxAge';
  return idleVerdict(times, nowMs, connWaitAgeMs, suspectBeforeMs);
}

/**
 * The same decision before a statement on a connection already lent. Age is not checked: a
 * connection in use is never retired under its user (HikariCP's rule too).
 */
export function statementVerdict(
  times: ConnectionTimes,
  knownClosed: boolean,
  nowMs: number,
  connWaitAgeMs: number | undefined,
  suspectBeforeMs = 0,
  statementsInFlight = 0,
): Exclude<BorrowVerdict, 'maxAge'> {
  if (knownClosed) return 'closed';
  // A connection with statements still running is busy, not idle: a ping would only queue
  // behind them, and its timeout would tear down the healthy statement it waited for.
  return statementsInFlight !== 0 ? 'use' : idleVerdict(times, nowMs, connWaitAgeMs, suspectBeforeMs);
}

// A clock that went backwards (idle time below zero) means the idle time is unknown, so the
// connection is pinged rather than trusted. A connection last used before another one was
// found dead (`suspectBeforeMs`: a restart, a failover) is pinged too, however recent its use:
// one detection, not one failure per connection (SQLAlchemy's rule).
function idleVerdict(times: ConnectionTimes, nowMs: number, connWaitAgeMs: number | undefined, suspectBeforeMs: number): 'ping' | 'use' {
  const idleMs = nowMs - times.lastAccessAt;
  if (connWaitAgeMs === undefined || idleMs > connWaitAgeMs || idleMs < 0) return 'ping';
  return times.lastAccessAt < suspectBeforeMs ? 'ping' : 'use';
}

/** What the housekeeping run does with an idle connection. */
export type IdleAction = 'maxAge' | 'idleTimeout' | 'keepAlive' | 'keep';

/**
 * Decides, without I/O, what housekeeping does with a connection sitting idle: retire it past
 * its age limit, close it after `idleTimeoutMs` of idleness when the pool is above `min`
 * (`aboveMin`), ping it when idle for `keepAliveIntervalMs` so no middlebox sees it idle long
 * enough to drop it, or leave it. 0 turns a setting off.
 */
export function idleAction(times: ConnectionTimes, nowMs: number, idleTimeoutMs: number, keepAliveIntervalMs: number, aboveMin: boolean): IdleAction {
  if (times.maxAgeMs !== 0 && nowMs - times.createdAt > times.maxAgeMs) return 'maxAge';
  const idleMs = nowMs - times.lastAccessAt;
  const unusedMs = nowMs - (times.lastUsedAt ?? times.lastAccessAt);
  if (aboveMin && idleTimeoutMs !== 0 && unusedMs > idleTimeoutMs) return 'idleTimeout';
  if (keepAliveIntervalMs !== 0 && idleMs >= keepAliveIntervalMs) return 'keepAlive';
  return 'keep';
}

/**
 * How often housekeeping runs, ms: a quarter of the shortest of the idle settings in force
 * (0 = off), between 50 ms and 30 s; `undefined` when nothing needs it.
 */
export function housekeepingIntervalMs(idleTimeoutMs: number, keepAliveIntervalMs: number, maxAgeMs: number): number | undefined {
  const settings = [idleTimeoutMs, keepAliveIntervalMs, maxAgeMs].filter((ms) => ms > 0);
  if (settings.length === 0) return undefined;
  return Math.min(30_000, Math.max(50, Math.floor(Math.min(...settings) / 4)));
}

/**
 * The idle threshold derived from the server's `wait_timeout` (seconds): half of it, at most
 * `DEFAULTS.connWaitAgeCap` ms. Half leaves room for clock skew and a busy event loop; the cap
 * catches middleboxes that drop idle flows long before the server would.
 */
export function derivedConnWaitAgeMs(waitTimeoutSeconds: number): number {
  return Math.min(Math.floor((waitTimeoutSeconds * 1000) / 2), DEFAULTS.connWaitAgeCap);
}

/**
 * The idle threshold in force once the server's `wait_timeout` is known: the explicit one when
 * it is below `wait_timeout`, otherwise the derived one. `clamped` says an explicit value was
 * overridden, which the pool logs as a warning.
 */
export function effectiveConnWaitAgeMs(explicitMs: number | undefined, waitTimeoutSeconds: number): { ms: number; clamped: boolean } {
  const derived = derivedConnWaitAgeMs(waitTimeoutSeconds);
  if (explicitMs === undefined) return { ms: derived, clamped: false };
  if (explicitMs >= waitTimeoutSeconds * 1000) return { ms: derived, clamped: true };
  return { ms: explicitMs, clamped: false };
}

/**
 * One connection's age limit in ms: `maxAgeMs` shortened by a random share of up to
 * `DEFAULTS.maxAgeJitter`, so connections made together do not all expire together. 0 (no
 * limit) stays 0; any other `maxAgeMs` gives at least 1 ms.
 * @param maxAgeMs the configured maxAge, ms; 0 means no age limit
 * @param random a number in [0, 1)
 */
export function jitteredMaxAgeMs(maxAgeMs: number, random: number): number {
  if (maxAgeMs === 0) return 0;
  // 0 means "no limit": flooring a tiny maxAge (1 ms, or a fraction) to it would turn the
  // strictest setting into none.
  return Math.max(1, Math.floor(maxAgeMs * (1 - DEFAULTS.maxAgeJitter * random)));
}

/**
 * ms to wait before the next connect attempt after `failures` consecutive failures:
 * 0 after none, then doubling from `DEFAULTS.connectBackoffInitial` up to
 * `DEFAULTS.connectBackoffMax`, with the upper half jittered so many processes do not retry
 * in step.
 * @param random a number in [0, 1)
 */
export function connectBackoffMs(failures: number, random: number): number {
  if (failures <= 0) return 0;
  const ceiling = Math.min(DEFAULTS.connectBackoffMax, DEFAULTS.connectBackoffInitial * 2 ** Math.min(failures - 1, 30));
  return Math.floor(ceiling / 2 + (ceiling / 2) * random);
}
