/** The cluster's own error. */
import { FreshPoolError } from '../errors.js';
import { describeTopology, type NodeState } from './topology.js';

/**
 * No node could take the borrow within `acquireTimeout` ms: no writer (a failover under way,
 * every node read-only or down) for a write, no node at all for a read. Nothing was sent.
 * `nodes` is the cluster's state when the borrow gave up.
 */
export class ClusterUnavailableError extends FreshPoolError {
  static readonly code = 'ERR_FRESH_POOL_CLUSTER_UNAVAILABLE';
  /** What the borrow needed. */
  readonly need: 'writer' | 'reader';
  /** The timeout that expired, in ms. */
  readonly timeoutMs: number;
  /** Every node's role and health when the borrow gave up. */
  readonly nodes: readonly NodeState[];

  constructor(need: 'writer' | 'reader', timeoutMs: number, nodes: readonly NodeState[], cause: unknown) {
    super(
      ClusterUnavailableError.code,
      `No ${need === 'writer' ? 'writable' : 'readable'} node within ${timeoutMs} ms; cluster: ${describeTopology(nodes)}`,
      cause === undefined ? undefined : { cause },
    );
    this.need = need;
    this.timeoutMs = timeoutMs;
    this.nodes = nodes;
  }
}
