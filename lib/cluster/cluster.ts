/**
 * A pool per node, composed through the pools' public surface, behind one pool-shaped API.
 * A monitor per node finds roles and health; the router picks the node for each borrow; a
 * borrow waits (within `acquireTimeout`) while no node may take it, and moves to another node
 * when the one it waits on leaves the topology. Only borrows move: a statement that may have
 * run is never sent again.
 */
import { EventEmitter } from 'node:events';
import { inspect } from 'node:util';
import type { FieldPacket, QueryOptions, QueryResult } from 'mysql2/promise';
import { isPermanentFailure } from '../connector.js';
import { describeTarget } from '../config.js';
import { AcquireTimeoutError, ConfigError, InvalidArgumentError, PoolClosedError, ConnectError, ConnectionSetupError, type PoolStats } from '../errors.js';
import { poolLog, type PoolLog } from '../log.js';
import { createPool, type FreshPool, type Lease, type PoolConnection } from '../pool/index.js';
import { transactionOn, type TransactionOptions } from '../transaction.js';
import { resolveClusterConfig, type ClusterConfig, type ResolvedClusterConfig } from './config.js';
import { ClusterUnavailableError } from './errors.js';
import { ClusterSession, GtidSet, type RoutedLease } from './session.js';
import { NodeMonitor } from './monitor.js';
import { candidatesFor, pickFrom, type Need } from './router.js';
import { ambiguousWriters, decideTopology, describeTopology, type NodeObservation, type NodeState } from './topology.js';

/** Where a borrow goes. */
export interface RouteOptions {
  /** Reads only: a healthy replica (or another synced Galera node), else the writer. Default false. */
  readOnly?: boolean;
}

/** The cluster's state in a `topology` event. */
export interface TopologyEvent {
  /** The cluster's `name`. */
  readonly cluster: string;
  /** The writer's name; undefined while there is none (a failover under way). */
  readonly writer: string | undefined;
  /** Every node's role and health, in configuration order. */
  readonly nodes: readonly NodeState[];
}

/** `cluster.readers()`: the pool-shaped API with every borrow sent to the readers. */
export interface ClusterReaders {
  readonly name: string;
  lease(): Promise<Lease>;
  withConnection<T>(fn: (conn: PoolConnection) => T | Promise<T>): Promise<T>;
  /** A `READ ONLY` transaction on a replica. */
  withTransaction<T>(fn: (conn: PoolConnection) => T | Promise<T>, options?: Omit<TransactionOptions, 'readOnly'>): Promise<T>;
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: unknown): Promise<[T, FieldPacket[]]>;
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: unknown): Promise<[T, FieldPacket[]]>;
  /** The cluster's `ready()`. */
  ready(): Promise<void>;
  /** Ends the whole cluster. */
  end(): Promise<void>;
}

/** One node in `stats()`. */
export interface NodeStats extends NodeState {
  /** The node's pool. */
  readonly pool: PoolStats;
}

/** A snapshot of the cluster: the writer and every node with its pool's counters. */
export interface ClusterStats {
  readonly name: string;
  readonly writer: string | undefined;
  readonly nodes: readonly NodeStats[];
}

/** Event names and the arguments their listeners get. */
export interface FreshClusterEvents {
  /** A node's role or health changed. */
  topology: [TopologyEvent];
}

interface Node {
  readonly name: string;
  /** For errors: host and port, or socket; never the password. */
  readonly target: string;
  readonly pool: FreshPool;
  readonly monitor: NodeMonitor;
  observation: NodeObservation | undefined;
  suspect: boolean;
  // Suspicion is cleared only by a check that started after it (one under way read the old state).
  suspectUntilCheck: number;
  warnedDenied: boolean;
}

// Why a borrow left the node it waited on; internal.
class NodeLeft extends Error {
  override name = 'NodeLeft';
}

export class FreshCluster extends EventEmitter<FreshClusterEvents> {
  readonly #config: ResolvedClusterConfig;
  readonly #log: PoolLog;
  readonly #nodes: Node[];
  readonly #byName: ReadonlyMap<string, Node>;
  #states: readonly NodeState[];
  #writers = new Set<string>();
  // Per need, the nodes that may take a borrow: computed at each topology change, read per borrow.
  #candidates: Record<Need, NodeState[]> = { writer: [], reader: [] };
  readonly #borrowedOf = (name: string): number => this.#poolOf(name).borrowed;
  #waiters = new Set<() => void>();
  #turn = 0;
  #ending: Promise<void> | undefined;
  // Set by end() before it wakes the waiting borrows, so that they see it.
  #closing = false;
  #warnedAmbiguous = '';

  constructor(config: ClusterConfig) {
    super();
    const resolved = resolveClusterConfig(config);
    this.#config = resolved;
    this.#log = poolLog(config.logger, resolved.name);
    const timings = { intervalMs: resolved.monitorIntervalMs, backoffMaxMs: resolved.monitorBackoffMaxMs, timeoutMs: resolved.pingTimeoutMs };
    this.#nodes = resolved.nodes.map((spec) => {
      const pool = createPool(spec.poolConfig);
      const node: Node = {
        name: spec.name,
        target: describeTarget(spec.resolved.connection),
        pool,
        monitor: new NodeMonitor(spec.resolved.connection, timings, (observation, seq) => this.#observed(node, observation, seq)),
        observation: undefined,
        suspect: false,
        suspectUntilCheck: 0,
        warnedDenied: false,
      };
      pool.on('wrongNode', (event) => this.#wrongNode(node, event.errno));
      return node;
    });
    this.#byName = new Map(this.#nodes.map((n) => [n.name, n]));
    this.#states = this.#decide();
    for (const node of this.#nodes) void node.monitor.start();
  }

  /** The cluster's `name`. */
  get name(): string {
    return this.#config.name;
  }

  /**
   * Resolves once every node has been checked once and a writer is known, with each reachable
   * node's pool warmed (`ready()`). Rejects with `ClusterUnavailableError` when no writer
   * appears within `acquireTimeout`, with the writer's `ConnectError` when it refuses the
   * credentials, `PoolClosedError` after `end()`.
   */
  async ready(): Promise<void> {
    if (this.#ending) throw new PoolClosedError();
    await Promise.all(this.#nodes.map((node) => (node.observation === undefined ? node.monitor.checkNow() : undefined)));
    const deadlineMs = Date.now() + this.#config.acquireTimeoutMs;
    while (candidatesFor('writer', this.#states).length === 0) {
      const permanent = this.#permanentFailure();
      if (permanent !== undefined) throw permanent;
      if (!(await this.#changeBefore(deadlineMs))) throw new ClusterUnavailableError('writer', this.#config.acquireTimeoutMs, this.#states, this.#lastCheckError());
      if (this.#closing) throw new PoolClosedError();
    }
    const warmed = await Promise.allSettled(this.#nodes.map((node) => (node.observation?.reachable ? node.pool.ready() : undefined)));
    for (const [i, outcome] of warmed.entries()) {
      if (outcome.status === 'fulfilled') continue;
      const node = this.#nodes[i]!;
      if (this.#writers.has(node.name)) throw outcome.reason;
      this.#log.warn({ node: node.name, err: outcome.reason }, 'node pool did not warm up');
    }
  }

  /**
   * Borrows a connection from the writer (or, with `readOnly`, from a healthy replica), runs
   * `fn`, and gives it back. While no node may take the borrow (a failover under way) it waits
   * up to `acquireTimeout` ms, then rejects with `ClusterUnavailableError`. `fn` runs once:
   * a statement cut by a failover rejects, typed, as on a single pool.
   */
  async withConnection<T>(fn: (conn: PoolConnection) => T | Promise<T>, options?: RouteOptions): Promise<T> {
    if (typeof fn !== 'function') throw new InvalidArgumentError('fn', fn, 'expected a function');
    const need = needOf(options);
    // The common case, a fit node with an idle connection used moments ago: its lease comes at
    // once, with no promise of the cluster's. Otherwise the borrow waits on that node's pool;
    // only a wait that fails (the node left: its pool's waits were cancelled) goes the routed
    // way. Nothing is allocated per borrow to move waits off a node that leaves.
    const name = this.#closing ? undefined : pickFrom(this.#candidates[need], this.#borrowedOf, this.#turn++);
    let lease: Lease;
    if (name === undefined) {
      lease = await this.#borrow(need);
    } else {
      const node = this.#byName.get(name)!;
      const got = node.pool.leaseOrWait();
      if (!(got instanceof Promise)) {
        lease = got;
      } else {
        // Nothing has waited yet (leaseOrWait returns at once): acquireTimeout counts from here.
        // The first wait is awaited here, not in the routed loop: one async frame less on the
        // busy path, where callers outnumber connections.
        const startedMs = Date.now();
        try {
          lease = await got;
        } catch (err) {
          const lastError = this.#attemptFailed(err, need, name, startedMs + this.#config.acquireTimeoutMs);
          lease = await this.#borrowRouted(need, leaseOnly, startedMs, lastError);
        }
      }
    }
    try {
      return await fn(lease.conn);
    } finally {
      lease.release();
    }
  }

  /**
   * A read-your-writes session (needs `readYourWrites: true`): its reads see its own writes,
   * and those of the session whose `token()` is given as `after`. Throws `InvalidArgumentError`
   * for a malformed token, `ConfigError` when the cluster does not track GTIDs.
   */
  session(options?: { after?: string }): ClusterSession {
    if (!this.#config.readYourWrites) throw new ConfigError('readYourWrites', false, 'cluster.session() needs createCluster({ readYourWrites: true })');
    const after = GtidSet.parse(options?.after, 'after');
    const router = { borrow: (need: Need) => this.#borrowRouted(need), log: this.#log, statementTimeoutMs: this.#config.pingTimeoutMs };
    return new ClusterSession(router, after, this.#config.readYourWritesTimeoutMs, options?.after !== undefined && options.after !== '');
  }

  /**
   * Borrows a connection without a callback (for adapters), from the writer or, with
   * `readOnly`, a replica; as `FreshPool.lease()`, and routed and waiting as `withConnection`.
   */
  async lease(options?: RouteOptions): Promise<Lease> {
    return this.#borrow(needOf(options));
  }

  /**
   * The same API with every borrow routed to the readers (as `{ readOnly: true }`), for code
   * that takes a pool: `createMysql2Adapter(cluster.readers())` gives Drizzle or Kysely a
   * read-only database. Its `end()` ends the whole cluster.
   */
  readers(): ClusterReaders {
    const readOnly = { readOnly: true } as const;
    return {
      name: this.#config.name,
      lease: () => this.lease(readOnly),
      withConnection: (fn) => this.withConnection(fn, readOnly),
      withTransaction: (fn, options) => this.withTransaction(fn, { ...options, readOnly: true }),
      query: (sql, values) => this.query(sql, values, readOnly),
      execute: (sql, values) => this.execute(sql, values, readOnly),
      ready: () => this.ready(),
      end: () => this.end(),
    } as ClusterReaders;
  }

  /**
   * Runs `fn` in a transaction on the writer (on a replica when `options.readOnly`): as
   * `FreshPool.withTransaction`, never retried.
   */
  withTransaction<T>(fn: (conn: PoolConnection) => T | Promise<T>, options?: TransactionOptions): Promise<T> {
    return transactionOn(fn, options, this.#log, (run, readOnly) => this.withConnection(run, { readOnly }));
  }

  /** One query on the writer, or on a replica with `{ readOnly: true }`. */
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: unknown, options?: RouteOptions): Promise<[T, FieldPacket[]]> {
    return this.withConnection((conn) => conn.query<T>(sql as string, values as never), options);
  }

  /** One prepared statement on the writer, or on a replica with `{ readOnly: true }`. */
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: unknown, options?: RouteOptions): Promise<[T, FieldPacket[]]> {
    return this.withConnection((conn) => conn.execute<T>(sql as string, values as never), options);
  }

  /** Every node's role, health and pool counters now. */
  stats(): ClusterStats {
    const byName = new Map(this.#nodes.map((n) => [n.name, n]));
    return Object.freeze({
      name: this.#config.name,
      writer: this.#writer(),
      nodes: Object.freeze(this.#states.map((s) => Object.freeze({ ...s, pool: byName.get(s.name)!.pool.stats() }))),
    });
  }

  /** The node pools, by node name, for what the cluster does not forward (metrics, adapters). */
  get pools(): ReadonlyMap<string, FreshPool> {
    return new Map(this.#nodes.map((n) => [n.name, n.pool]));
  }

  toJSON(): ClusterStats {
    return this.stats();
  }

  [inspect.custom](): string {
    return `FreshCluster ${inspect(this.stats(), { depth: 4 })}`;
  }

  /**
   * Stops the monitors, ends every node's pool (each as `FreshPool.end`, with the same
   * `timeout`), and fails the borrows still waiting for a node with `PoolClosedError`.
   */
  end(options?: { timeout?: number }): Promise<void> {
    this.#closing = true;
    this.#ending ??= (async () => {
      for (const node of this.#nodes) node.pool.cancelWaiting(new PoolClosedError());
      this.#wake();
      await Promise.all(this.#nodes.map((n) => n.monitor.stop()));
      await Promise.all(this.#nodes.map((n) => n.pool.end(options)));
    })();
    return this.#ending;
  }

  #borrow(need: Need): Promise<Lease> {
    return this.#borrowRouted(need, leaseOnly);
  }

  // The routed path: pick a node fit for `need`, wait on its pool while it stays fit, and pick
  // again when it leaves, all within acquireTimeout from `startedMs`.
  async #borrowRouted<R = RoutedLease>(need: Need, wrap: (lease: Lease, node: NodeState) => R = routed as never, startedMs = Date.now(), lastError?: unknown): Promise<R> {
    const timeoutMs = this.#config.acquireTimeoutMs;
    const deadlineMs = startedMs + timeoutMs;
    for (;;) {
      if (this.#closing) throw new PoolClosedError();
      const candidates = this.#candidates[need];
      const name = pickFrom(candidates, this.#borrowedOf, this.#turn++);
      if (name === undefined) {
        // Wrong credentials on every node that could serve: no wait will fix it.
        const permanent = this.#permanentFailure();
        if (permanent !== undefined) throw permanent;
        if (!(await this.#changeBefore(deadlineMs))) throw new ClusterUnavailableError(need, timeoutMs, this.#states, lastError ?? this.#lastCheckError());
        continue;
      }
      const state = candidates.find((s) => s.name === name)!;
      const node = this.#byName.get(name)!;
      // No timer of its own: the node pool's acquireTimeout (the cluster's) bounds the wait.
      const leasing = node.pool.leaseOrWait();
      try {
        return wrap(leasing instanceof Promise ? await leasing : leasing, state);
      } catch (err) {
        lastError = this.#attemptFailed(err, need, name, deadlineMs);
      }
    }
  }

  // A borrow from `name`'s pool failed: throws what the caller must hear, or returns the error
  // to remember while the borrow tries again.
  #attemptFailed(err: unknown, need: Need, name: string, deadlineMs: number): unknown {
    if (err instanceof PoolClosedError && this.#closing) throw err;
    if (isFinal(err)) throw err;
    // The node stayed fit all along: its pool was busy, which is what the caller must hear.
    if (err instanceof AcquireTimeoutError && this.#candidates[need].some((s) => s.name === name)) throw err;
    if (Date.now() >= deadlineMs) throw new ClusterUnavailableError(need, this.#config.acquireTimeoutMs, this.#states, err);
    return err;
  }

  // Resolves true at the next topology change, false at the deadline.
  #changeBefore(deadlineMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const onChange = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(onChange);
        resolve(false);
      }, Math.max(0, deadlineMs - Date.now()));
      // Not unref'd: a borrow waiting for a node keeps the process alive until it settles, as
      // a single pool's waiting borrow does.
      this.#waiters.add(onChange);
    });
  }

  #wake(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }

  #observed(node: Node, observation: NodeObservation, checkSeq: number): void {
    node.observation = observation;
    // A check that started after the wrong-node error says more than the error did.
    if (checkSeq > node.suspectUntilCheck) node.suspect = false;
    if (!observation.reachable) this.#log.debug({ node: node.name, err: observation.error }, 'node check failed');
    if (observation.replicaStatusDenied === true && !node.warnedDenied) {
      node.warnedDenied = true;
      this.#log.warn({ node: node.name }, 'cannot read the replica status: grant REPLICATION CLIENT (SLAVE MONITOR); replication lag is not checked');
    }
    this.#update();
  }

  #wrongNode(node: Node, errno: number): void {
    if (this.#closing) return;
    this.#log.warn({ node: node.name, errno }, 'node suspect after a wrong-node error; checking the topology now');
    node.suspect = true;
    node.suspectUntilCheck = node.monitor.checksStarted;
    this.#update();
    void node.monitor.checkNow();
  }

  // A ConnectError for a node whose last check failed on credentials or an unknown database,
  // when no node can take borrows: no wait will fix it.
  #permanentFailure(): ConnectError | undefined {
    for (const node of this.#nodes) {
      const err = node.observation?.reachable === false ? node.observation.error : undefined;
      if (err !== undefined && isPermanentFailure(err)) return new ConnectError(node.target, err);
    }
    return undefined;
  }

  // What the last failed check of a node that is down said, for an error's cause.
  #lastCheckError(): Error | undefined {
    return this.#nodes.find((n) => n.observation?.reachable === false)?.observation?.error;
  }

  #update(): void {
    const next = this.#decide();
    const changed = next.some((s, i) => {
      const was = this.#states[i]!;
      return s.role !== was.role || s.health !== was.health;
    });
    this.#states = next;
    // The writer is kept while it qualifies, but only once every node has answered once: before
    // that the choice is provisional, or whichever Galera node answered first would keep the
    // role over the one with the lowest wsrep_local_index.
    // Kept through a failover (no writer for a while): an old primary back writable must not
    // win over the node promoted in the meantime.
    const writersNow = next.filter((s) => s.role === 'writer').map((s) => s.name);
    if (writersNow.length !== 0 && this.#nodes.every((n) => n.observation !== undefined)) this.#writers = new Set(writersNow);
    const ambiguous = ambiguousWriters(this.#inputs(), this.#writers, this.#topologyOptions()).join(',');
    if (ambiguous !== this.#warnedAmbiguous) {
      this.#warnedAmbiguous = ambiguous;
      if (ambiguous !== '') this.#log.warn({ nodes: ambiguous }, 'more than one writable node and none was the writer: no writes until all but one are read-only');
    }
    const before = this.#candidates;
    this.#candidates = { writer: candidatesFor('writer', next), reader: candidatesFor('reader', next) };
    this.#moveWaitsOffLeavers(before);
    if (!changed) return;
    const event: TopologyEvent = Object.freeze({ cluster: this.#config.name, writer: this.#writer(), nodes: next });
    this.#log.info({ writer: event.writer, nodes: describeTopology(next) }, 'cluster topology changed');
    if (this.listenerCount('topology') !== 0) {
      try {
        this.emit('topology', event);
      } catch (err) {
        this.#log.error({ err }, 'a topology listener threw');
      }
    }
    this.#wake();
  }

  // The borrows waiting on a node that is no longer a candidate for their need move on: its
  // pool's waits are all cancelled (those of a need it still serves come straight back to it).
  #moveWaitsOffLeavers(before: Record<Need, NodeState[]>): void {
    const left = new Set<string>();
    for (const need of ['writer', 'reader'] as const) {
      for (const was of before[need]) if (!this.#candidates[need].some((s) => s.name === was.name)) left.add(was.name);
    }
    for (const name of left) this.#poolOf(name).cancelWaiting(new NodeLeft(`node ${name} left: ${describeTopology(this.#states)}`));
  }

  #decide(): readonly NodeState[] {
    return decideTopology(this.#inputs(), this.#writers, this.#topologyOptions());
  }

  #inputs() {
    return this.#nodes.map((n, i) => ({ name: n.name, observation: n.observation, suspect: n.suspect, previousHealth: this.#states?.[i]?.health }));
  }

  #topologyOptions() {
    return { maxReplicationLagMs: this.#config.maxReplicationLagMs, galeraWriters: this.#config.galeraWriters };
  }

  #writer(): string | undefined {
    return this.#states.find((s) => s.role === 'writer')?.name;
  }

  #poolOf(name: string): FreshPool {
    return this.#byName.get(name)!.pool;
  }
}

const leaseOnly = (lease: Lease): Lease => lease;
const routed = (lease: Lease, node: NodeState): RoutedLease => ({ lease, node });

function needOf(options: RouteOptions | undefined): Need {
  if (options !== undefined && (options === null || typeof options !== 'object')) throw new InvalidArgumentError('options', options, 'expected { readOnly?: boolean }');
  const readOnly = options?.readOnly;
  if (readOnly !== undefined && typeof readOnly !== 'boolean') throw new InvalidArgumentError('readOnly', readOnly, 'expected a boolean');
  return readOnly === true ? 'reader' : 'writer';
}

// Credentials or session setup: another node, or another try, will not do better.
function isFinal(err: unknown): boolean {
  return err instanceof ConnectionSetupError || (err instanceof ConnectError && isPermanentFailure(err.cause));
}

/** Builds a cluster and starts its monitors. Throws `ConfigError` at once when `config` is invalid. */
export function createCluster(config: ClusterConfig): FreshCluster {
  return new FreshCluster(config);
}
