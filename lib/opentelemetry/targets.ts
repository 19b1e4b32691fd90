/**
 * What the OpenTelemetry helpers take (pools, clusters) turned into the pools to watch, each
 * with the attributes that identify it: its name, and for a cluster's node pool the cluster
 * and the node. Shared by metrics and traces, so both label a pool the same way.
 */
import type { Attributes } from '@opentelemetry/api';
import type { FreshCluster } from '../cluster/index.js';
import { InvalidArgumentError } from '../errors.js';
import type { FreshPool } from '../pool/index.js';
import { ATTR, ATTR_POOL_NAME } from './names.js';

/** What the OpenTelemetry helpers take: a pool, or a cluster (its node pools). */
export type TelemetryTarget = FreshPool | FreshCluster;

/** One pool to watch. */
export interface PoolSource {
  readonly pool: FreshPool;
  /** `db.client.connection.pool.name`, plus the cluster's and the node's name for a node pool. */
  readonly attributes: Readonly<Attributes>;
}

/**
 * The pools behind `targets`, a cluster standing for its node pools. Throws
 * `InvalidArgumentError` (field `pools`) for something that is neither a pool nor a cluster,
 * or when two pools share a name: the name identifies a pool's series.
 */
export function poolSources(targets: TelemetryTarget | readonly TelemetryTarget[]): PoolSource[] {
  const list: readonly unknown[] = Array.isArray(targets) ? targets : [targets];
  const sources: PoolSource[] = [];
  for (const target of list) {
    if (isCluster(target)) {
      for (const [node, pool] of target.pools) {
        sources.push({ pool, attributes: Object.freeze({ [ATTR_POOL_NAME]: pool.name, [ATTR.clusterName]: target.name, [ATTR.nodeName]: node }) });
      }
    } else if (isPool(target)) {
      sources.push({ pool: target, attributes: Object.freeze({ [ATTR_POOL_NAME]: target.name }) });
    } else {
      throw new InvalidArgumentError('pools', target, 'expected a pool from createPool or a cluster from createCluster');
    }
  }
  const names = sources.map((s) => s.pool.name);
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate !== undefined) throw new InvalidArgumentError('pools', duplicate, 'pool names must be unique: they identify the series and span events');
  return sources;
}

function isPool(target: unknown): target is FreshPool {
  const t = target as Partial<FreshPool> | null;
  return typeof t === 'object' && t !== null && typeof t.stats === 'function' && typeof t.on === 'function' && typeof t.name === 'string';
}

function isCluster(target: unknown): target is FreshCluster {
  const t = target as Partial<FreshCluster> | null;
  return typeof t === 'object' && t !== null && t.pools instanceof Map && typeof t.name === 'string';
}
