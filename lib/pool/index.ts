/**
 * The single-server pool: when a connection is checked, lent, taken back and destroyed.
 * Decisions come from decisions.ts (pure), I/O goes through driver.ts, connections are made
 * by connector.ts, upkeep runs in housekeeping.ts, and the per-connection record is PoolEntry;
 * generic-pool does the queueing.
 *
 * The policy is split by path (borrow, statement check, return, shutdown), each a set of
 * functions over the state they share (core.ts), so a path reads alone. What two paths both
 * need sits below them: liveness.ts (verdicts, the ping) and lifecycle.ts (a connection made,
 * watched, retired, closed). fresh-pool.ts is the public surface and wires the parts.
 */
export { createPool, FreshPool, type EndOptions, type Lease, type PoolConnection } from './fresh-pool.js';
