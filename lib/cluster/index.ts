/** Clusters: a primary with replicas, or Galera, behind one pool-shaped API. */
export {
  createCluster,
  FreshCluster,
  type ClusterReaders,
  type ClusterStats,
  type FreshClusterEvents,
  type NodeStats,
  type RouteOptions,
  type TopologyEvent,
} from './cluster.js';
export { CLUSTER_DEFAULTS, type ClusterConfig, type ClusterNode } from './config.js';
export { ClusterUnavailableError } from './errors.js';
export { ClusterSession } from './session.js';
export type { NodeHealth, NodeRole, NodeState } from './topology.js';
