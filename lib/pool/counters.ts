/**
 * The pool's running totals, for `stats()`: each path counts its own events here, and the
 * snapshot adds what the resource pool and the connector know.
 */
import type { Connector } from '../connector.js';
import type { PoolEntry } from '../entry.js';
import type { PoolStats } from '../errors.js';
import type { ResourcePool } from '../resource-pool.js';

/** Totals since the pool started; each field means what its namesake in `PoolStats` does. */
export class PoolCounters {
  created = 0;
  pings = 0;
  pingFailures = 0;
  loopStalls = 0;
  acquires = 0;
  /** ms */
  acquireWaitMsTotal = 0;
  /** ms */
  acquireWaitMsMax = 0;
  /** ms */
  validationMsTotal = 0;
  /** By eviction reason. */
  readonly destroyed: Record<string, number> = {};

  /** A frozen snapshot of these totals and of the pool's state now. */
  snapshot(resources: ResourcePool<PoolEntry>, connector: Connector): PoolStats {
    return Object.freeze({
      size: resources.size,
      idle: resources.available,
      borrowed: resources.borrowed,
      waiting: resources.pending,
      max: resources.max,
      min: resources.min,
      created: this.created,
      destroyed: Object.freeze({ ...this.destroyed }),
      pings: this.pings,
      pingFailures: this.pingFailures,
      connectAttempts: connector.attempts,
      connectFailures: connector.failures,
      loopStalls: this.loopStalls,
      acquires: this.acquires,
      acquireWaitMsTotal: this.acquireWaitMsTotal,
      acquireWaitMsMax: this.acquireWaitMsMax,
      validationMsTotal: this.validationMsTotal,
      connWaitAgeMs: connector.connWaitAgeMs,
    });
  }
}
