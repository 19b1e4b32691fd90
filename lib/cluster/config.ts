/**
 * The cluster's configuration: its nodes, the pool options every node's pool gets, and the
 * cluster's own options, with their defaults in `CLUSTER_DEFAULTS`. Checked at
 * `createCluster`: a `ConfigError` names the field and the value.
 */
import type { ConnectionOptions } from 'mysql2/promise';
import { POOL_NAME, redactUrl, resolveConfig, type FreshPoolConfig, type ResolvedConfig } from '../config.js';
import { ConfigError } from '../errors.js';

/** A node: a URL, or mysql2 connection options; `name` labels it in stats, events, logs and metrics. */
export type ClusterNode = string | (ConnectionOptions & { name?: string });

/** What `createCluster` accepts. Durations in milliseconds. */
export interface ClusterConfig extends Omit<FreshPoolConfig, 'connection'> {
  /**
   * The servers: a primary and its replicas, or the nodes of a Galera cluster, in any order.
   * Roles are found by the monitor, never configured. At least one. Default names: `host:port`.
   */
  nodes: ClusterNode[];
  /** ms between two checks of a node that answers. Default 1 000. */
  monitorInterval?: number;
  /** ms. The longest wait between checks of a node that is down (doubling from `monitorInterval`). Default 5 000. */
  monitorBackoffMax?: number;
  /** ms. A replica further behind its primary than this takes no reads. Default 10 000. */
  maxReplicationLag?: number;
  /**
   * Galera: `one` sends every write to one node (the lowest `wsrep_local_index` among the
   * synced ones, kept while it qualifies), so writes never conflict in certification; `all`
   * spreads them over every synced node. Default `one`.
   */
  galeraWriters?: 'one' | 'all';
  /**
   * Makes `cluster.session()` available: every node's connections track `last_gtid`
   * (`session_track_system_variables`), so a write's GTID arrives in its OK packet, no extra
   * round trip; about 20 bytes more per committing statement. Default false.
   */
  readYourWrites?: boolean;
  /** ms a session read waits for a replica to apply its writes (`MASTER_GTID_WAIT`) before it reads from the writer instead. Default 1 000. */
  readYourWritesTimeout?: number;
}

/** The cluster's defaults, ms. The node pools' own defaults are in `DEFAULTS`. */
export const CLUSTER_DEFAULTS = Object.freeze({
  monitorInterval: 1_000,
  monitorBackoffMax: 5_000,
  maxReplicationLag: 10_000,
  galeraWriters: 'one' as 'one' | 'all',
  readYourWrites: false,
  readYourWritesTimeout: 1_000,
  name: 'cluster',
});

/** One node, checked: its name and the pool configuration for it. */
export interface ResolvedNode {
  readonly name: string;
  readonly poolConfig: FreshPoolConfig;
  /** As the node's pool will connect (password non-enumerable). */
  readonly resolved: ResolvedConfig;
}

export interface ResolvedClusterConfig {
  readonly name: string;
  readonly nodes: readonly ResolvedNode[];
  readonly acquireTimeoutMs: number;
  readonly pingTimeoutMs: number;
  readonly monitorIntervalMs: number;
  readonly monitorBackoffMaxMs: number;
  readonly maxReplicationLagMs: number;
  readonly galeraWriters: 'one' | 'all';
  readonly readYourWrites: boolean;
  readonly readYourWritesTimeoutMs: number;
}

const CLUSTER_KEYS = new Set(['nodes', 'monitorInterval', 'monitorBackoffMax', 'maxReplicationLag', 'galeraWriters', 'readYourWrites', 'readYourWritesTimeout']);

// Asks MariaDB to report each commit's GTID in its OK packet, keeping what is tracked already.
const TRACK_LAST_GTID = "SET SESSION session_track_system_variables = CONCAT_WS(',', NULLIF(@@session.session_track_system_variables, ''), 'last_gtid')";

/** Checks `config`; throws `ConfigError` on the first problem, before anything connects. */
export function resolveClusterConfig(config: ClusterConfig): ResolvedClusterConfig {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new ConfigError('config', config, 'expected an object');
  const { nodes } = config;
  if (!Array.isArray(nodes) || nodes.length === 0) {
    // Never the value itself: a single URL or an options object carries the password.
    const shown = typeof nodes === 'string' ? redactUrl(nodes) : Array.isArray(nodes) ? nodes : typeof nodes;
    throw new ConfigError('nodes', shown, 'expected a non-empty array of URLs or connection options');
  }
  const poolOptions: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) if (!CLUSTER_KEYS.has(key)) poolOptions[key] = value;
  if ('connection' in poolOptions) throw new ConfigError('connection', '[redacted]', 'a cluster takes `nodes`, not `connection`');
  const clusterName = (config.name ?? CLUSTER_DEFAULTS.name) as unknown;
  if (typeof clusterName !== 'string' || !POOL_NAME.test(clusterName)) throw new ConfigError('name', clusterName, 'expected 1 to 128 letters, digits, or _ . : -');
  const readYourWrites = config.readYourWrites ?? CLUSTER_DEFAULTS.readYourWrites;
  if (typeof readYourWrites !== 'boolean') throw new ConfigError('readYourWrites', readYourWrites, 'expected a boolean');
  if (readYourWrites) {
    const userSql = poolOptions.initSql as string | string[] | undefined;
    poolOptions.initSql = [TRACK_LAST_GTID, ...(userSql === undefined ? [] : Array.isArray(userSql) ? userSql : [userSql])];
  }
  const seen = new Set<string>();
  const resolvedNodes = nodes.map((node, i): ResolvedNode => {
    const { name: given, connection } = splitNode(node, i);
    // Checks the pool options too (unknown keys, ranges), once per node, naming the node's field.
    let resolved: ResolvedConfig;
    try {
      resolved = resolveConfig({ ...(poolOptions as Omit<FreshPoolConfig, 'connection'>), connection, name: 'check' });
    } catch (err) {
      // A connection problem names the node: `nodes[2].port`, not `connection.port`.
      if (err instanceof ConfigError && err.field.startsWith('connection')) {
        const problem = /^Invalid config "[^"]*": (.*) \(got [\s\S]*\)$/.exec(err.message)?.[1] ?? err.message;
        throw new ConfigError(`nodes[${i}]${err.field.slice('connection'.length)}`, err.value, problem);
      }
      throw err;
    }
    const name = given ?? `${resolved.connection.host ?? 'localhost'}:${resolved.connection.port ?? 3306}`;
    if (!POOL_NAME.test(`${clusterName}.${name}`)) {
      throw new ConfigError(`nodes[${i}].name`, name, `expected letters, digits, or _ . : -, at most ${127 - clusterName.length} with the cluster's name`);
    }
    if (seen.has(name)) throw new ConfigError(`nodes[${i}].name`, name, 'two nodes share this name; give each a distinct `name`');
    seen.add(name);
    const poolConfig: FreshPoolConfig = {
      // A statement on a connection to a node that died waits no longer than a check would:
      // the node is likely down, and the cluster routes the next borrow elsewhere.
      reconnectTimeout: Math.min(resolved.pingTimeoutMs, resolved.acquireTimeoutMs),
      ...(poolOptions as Omit<FreshPoolConfig, 'connection'>),
      connection,
      name: `${clusterName}.${name}`,
    };
    return { name, poolConfig, resolved };
  });
  const first = resolvedNodes[0]!.resolved;
  const monitorIntervalMs = positive('monitorInterval', config.monitorInterval ?? CLUSTER_DEFAULTS.monitorInterval);
  const monitorBackoffMaxMs = positive('monitorBackoffMax', config.monitorBackoffMax ?? CLUSTER_DEFAULTS.monitorBackoffMax);
  if (monitorBackoffMaxMs < monitorIntervalMs) throw new ConfigError('monitorBackoffMax', monitorBackoffMaxMs, `must be at least monitorInterval (${monitorIntervalMs} ms)`);
  const galeraWriters = config.galeraWriters ?? CLUSTER_DEFAULTS.galeraWriters;
  if (galeraWriters !== 'one' && galeraWriters !== 'all') throw new ConfigError('galeraWriters', galeraWriters, "expected 'one' or 'all'");
  return Object.freeze({
    name: clusterName,
    nodes: Object.freeze(resolvedNodes),
    acquireTimeoutMs: first.acquireTimeoutMs,
    pingTimeoutMs: first.pingTimeoutMs,
    monitorIntervalMs,
    monitorBackoffMaxMs,
    maxReplicationLagMs: nonNegative('maxReplicationLag', config.maxReplicationLag ?? CLUSTER_DEFAULTS.maxReplicationLag),
    galeraWriters,
    readYourWrites,
    readYourWritesTimeoutMs: positive('readYourWritesTimeout', config.readYourWritesTimeout ?? CLUSTER_DEFAULTS.readYourWritesTimeout),
  });
}

function splitNode(node: unknown, i: number): { name: string | undefined; connection: string | ConnectionOptions } {
  if (typeof node === 'string') return { name: undefined, connection: node };
  if (node === null || typeof node !== 'object' || Array.isArray(node)) throw new ConfigError(`nodes[${i}]`, node, 'expected a URL or connection options');
  const descriptors = Object.getOwnPropertyDescriptors(node);
  const name = (node as { name?: unknown }).name;
  if (name !== undefined && (typeof name !== 'string' || name === '')) throw new ConfigError(`nodes[${i}].name`, name, 'expected a non-empty string');
  delete descriptors.name;
  return { name: name as string | undefined, connection: Object.defineProperties({}, descriptors) as ConnectionOptions };
}

// Node's timers take at most 2^31 - 1 ms; a longer delay fires after 1 ms (a check storm).
const MAX_TIMER_MS = 2 ** 31 - 1;

function positive(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_TIMER_MS) {
    throw new ConfigError(field, value, `expected a whole number of ms from 1 to ${MAX_TIMER_MS}`);
  }
  return value;
}

function nonNegative(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_TIMER_MS) {
    throw new ConfigError(field, value, `expected a whole number of ms from 0 to ${MAX_TIMER_MS}`);
  }
  return value;
}
