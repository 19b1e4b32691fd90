/**
 * mysql-fresh-pool: a MySQL/MariaDB pool on mysql2 and generic-pool that never lends a
 * connection the server has already closed.
 */
export { createPool, FreshPool, type EndOptions, type Lease, type PoolConnection } from './pool/index.js';
export type {
  AcquireEvent,
  AcquirePath,
  AcquireTimeoutEvent,
  ConnectionEvent,
  CreateEvent,
  EvictEvent,
  FreshPoolEvents,
  PingCause,
  PingEvent,
  ReleaseEvent,
  ReplaceEvent,
  WrongNodeEvent,
} from './events.js';
export { DEFAULTS, type FreshPoolConfig } from './config.js';
export type { FreshPoolLogger } from './log.js';
export type { IsolationLevel, TransactionOptions } from './transaction.js';
export type { OnConnect } from './session-setup.js';
export {
  FreshPoolError,
  ConfigError,
  InvalidArgumentError,
  AcquireTimeoutError,
  ConnectError,
  PoolClosedError,
  TransactionLostError,
  SessionLostError,
  CommitOutcomeUnknownError,
  ConnectionReleasedError,
  ConnectionSetupError,
  UnsupportedOperationError,
  type PoolStats,
} from './errors.js';
export type { EvictReason } from './entry.js';
export {
  createMysql2Adapter,
  Mysql2PoolAdapter,
  type AdapterTarget,
  Mysql2AdapterConnection,
  Mysql2AdapterQuery,
  type StatementCallback,
  type StreamOptions,
} from './mysql2-adapter/index.js';
export {
  createCluster,
  FreshCluster,
  CLUSTER_DEFAULTS,
  ClusterUnavailableError,
  ClusterSession,
  type ClusterConfig,
  type ClusterNode,
  type ClusterReaders,
  type ClusterStats,
  type FreshClusterEvents,
  type NodeHealth,
  type NodeRole,
  type NodeState,
  type NodeStats,
  type RouteOptions,
  type TopologyEvent,
} from './cluster/index.js';
