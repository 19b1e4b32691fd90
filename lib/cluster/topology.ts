/**
 * Who is the writer and who may take reads, decided from what the monitor last saw of each
 * node. Pure: no I/O, no clock; the monitor feeds it, the router reads its answer.
 *
 * Replication: the writer is the node with `read_only = OFF` that replicates from no one; a
 * replica takes reads while both its threads run and its lag is known and within the bound.
 * Galera: a node is usable only while it is ready, Synced (state 4) and in the primary
 * component; writes go to one usable node at a time (the lowest `wsrep_local_index`, as
 * MaxScale's galeramon does), so that concurrent writes never meet in certification.
 */

/** A Galera node's state, from `SHOW GLOBAL STATUS LIKE 'wsrep_%'`. */
export interface GaleraStatus {
  readonly ready: boolean;
  /** `wsrep_local_state`: 4 is Synced, 2 Donor/Desynced. */
  readonly localState: number;
  /** `wsrep_cluster_status`: `Primary` when in the primary component. */
  readonly clusterStatus: string;
  readonly localIndex: number;
  readonly clusterSize: number;
  /** `wsrep_cluster_conf_id`: the membership change the node has seen last. */
  readonly confId?: number;
  /** `wsrep_last_committed`: the cluster-wide sequence number of the last write set the node applied. */
  readonly lastCommitted?: number;
}

/** A replica's state, from `SHOW SLAVE STATUS`. */
export interface ReplicaStatus {
  readonly ioRunning: boolean;
  readonly sqlRunning: boolean;
  /** `Seconds_Behind_Master`; null when replication is broken or stopped. */
  readonly lagSeconds: number | null;
}

/** What one check of a node found. */
export interface NodeObservation {
  /** The check got its answers within its timeout. */
  readonly reachable: boolean;
  readonly readOnly: boolean;
  /** Present when `wsrep_on` is ON. */
  readonly galera: GaleraStatus | undefined;
  /** Present when the node replicates from another. */
  readonly replica: ReplicaStatus | undefined;
  /** Why the check failed, when it did. */
  readonly error: Error | undefined;
  /** ms timestamp of the answer (of the failure, for an unreachable node). */
  readonly at?: number;
  /** ms timestamp at which the check sent its first statement: the answer describes the node at or after it. */
  readonly askedAt?: number;
  /** Galera: ms timestamp of the first of the checks in a row, up to this one, that found the node Synced in the primary component. */
  readonly syncedSince?: number;
  /** The user may not read the replica status (no REPLICATION CLIENT / SLAVE MONITOR): lag is not checked. */
  readonly replicaStatusDenied?: boolean;
}

/**
 * A node's health:
 * - `up`: usable for what its role says;
 * - `down`: the last check failed (refused, timed out, frozen);
 * - `suspect`: a statement met a wrong-node error; re-checked at once;
 * - `lagging`: a replica further behind than `maxReplicationLag`;
 * - `replicationBroken`: a replica whose lag is unknown (a thread stopped);
 * - `sourceLost`: a replica whose IO thread is not running (its primary is unreachable or
 *   stopped) while its SQL thread has applied what it received: its lag is unknown, so it
 *   takes reads only when no healthy replica and no writer can (a primary that crashed before
 *   the failover is done);
 * - `notSynced`: a Galera node not ready, not Synced or outside the primary component, or
 *   whose view of the cluster disagrees with the others' (a node resumed after a freeze
 *   reports a stale Synced state for seconds);
 * - `unknown`: not checked yet.
 */
export type NodeHealth = 'up' | 'down' | 'suspect' | 'lagging' | 'replicationBroken' | 'sourceLost' | 'notSynced' | 'unknown';

/** What the cluster uses a node for. */
export type NodeRole = 'writer' | 'reader' | 'none';

/** A node as the router sees it. */
export interface NodeState {
  readonly name: string;
  readonly role: NodeRole;
  readonly health: NodeHealth;
  /** `galera`, `replication`, or `unknown` before the first answer. */
  readonly kind: 'galera' | 'replication' | 'unknown';
  /** Seconds behind its source, for a replica; null when unknown; undefined otherwise. */
  readonly lagSeconds: number | null | undefined;
}

export interface TopologyOptions {
  /** ms. A replica further behind takes no reads. */
  readonly maxReplicationLagMs: number;
  /** `one`: one Galera writer at a time; `all`: every usable Galera node takes writes. */
  readonly galeraWriters: 'one' | 'all';
}

/** One node's input: its last observation (undefined before the first) and whether it is suspect. */
export interface NodeInput {
  readonly name: string;
  readonly observation: NodeObservation | undefined;
  readonly suspect: boolean;
  /** The node's health in the previous decision, if any. */
  readonly previousHealth?: NodeHealth;
}

/**
 * The roles and health of every node, in the order given (frozen: events and errors hand it
 * out). `previousWriters` (the last writers known, kept through a failover) keeps the choice
 * stable: a writer stays the writer while it still qualifies. With replication, two writable
 * nodes of which none was the writer give no writer at all: an unfenced old primary must
 * never take writes by accident (see `ambiguousWriters`).
 */
export function decideTopology(nodes: readonly NodeInput[], previousWriters: ReadonlySet<string>, options: TopologyOptions): readonly NodeState[] {
  const usable = nodes.map((node) => usability(node, options));
  excludeStaleGaleraViews(nodes, usable);
  const writers = chooseWriters(nodes, usable, previousWriters, options);
  return Object.freeze(
    nodes.map((node, i) => {
      const { health, kind, lagSeconds, canRead } = usable[i]!;
      const role: NodeRole = writers.has(node.name) ? 'writer' : canRead ? 'reader' : 'none';
      return Object.freeze({ name: node.name, role, health, kind, lagSeconds });
    }),
  );
}

/** Replication nodes that are writable together while none of them was the writer: the cluster picks none. */
export function ambiguousWriters(nodes: readonly NodeInput[], previousWriters: ReadonlySet<string>, options: TopologyOptions): string[] {
  const usable = nodes.map((node) => usability(node, options));
  const candidates = nodes.filter((n, i) => usable[i]!.canWrite && n.observation?.galera === undefined);
  if (candidates.length < 2 || candidates.some((n) => previousWriters.has(n.name))) return [];
  return candidates.map((n) => n.name);
}

interface Usability {
  health: NodeHealth;
  kind: NodeState['kind'];
  lagSeconds: number | null | undefined;
  canRead: boolean;
  canWrite: boolean;
}

function usability({ observation: o, suspect }: NodeInput, options: TopologyOptions): Usability {
  if (o === undefined) return { health: 'unknown', kind: 'unknown', lagSeconds: undefined, canRead: false, canWrite: false };
  const kind = o.galera !== undefined ? 'galera' : 'replication';
  const lagSeconds = o.replica === undefined ? undefined : o.replica.lagSeconds;
  if (!o.reachable) return { health: 'down', kind, lagSeconds, canRead: false, canWrite: false };
  if (suspect) return { health: 'suspect', kind, lagSeconds, canRead: false, canWrite: false };
  if (o.galera !== undefined) {
    const g = o.galera;
    const synced = g.ready && g.localState === 4 && g.clusterStatus === 'Primary';
    if (!synced) return { health: 'notSynced', kind, lagSeconds, canRead: false, canWrite: false };
    return { health: 'up', kind, lagSeconds, canRead: true, canWrite: !o.readOnly };
  }
  if (o.replica !== undefined) {
    const r = o.replica;
    // Promoted with STOP SLAVE and read_only = 0, its slave status kept: a primary now.
    if (!o.readOnly && !r.ioRunning && !r.sqlRunning) return { health: 'up', kind, lagSeconds, canRead: true, canWrite: true };
    if (!r.ioRunning && r.sqlRunning) return { health: 'sourceLost', kind, lagSeconds, canRead: false, canWrite: false };
    if (!r.ioRunning || !r.sqlRunning || r.lagSeconds === null) {
      return { health: 'replicationBroken', kind, lagSeconds, canRead: false, canWrite: false };
    }
    if (r.lagSeconds * 1000 > options.maxReplicationLagMs) return { health: 'lagging', kind, lagSeconds, canRead: false, canWrite: false };
    return { health: 'up', kind, lagSeconds, canRead: true, canWrite: false };
  }
  // Replicates from no one: the primary when writable; a read-only one is a stand-alone
  // server nobody writes to, still fit for reads (nothing feeds it, so nothing lags).
  return { health: 'up', kind, lagSeconds, canRead: true, canWrite: !o.readOnly };
}

// A Galera node coming back (it was down, not synced or suspect) is taken back only once
// - it is in the newest configuration (wsrep_cluster_conf_id) a node in the primary component
//   reports: a node resumed after SIGSTOP reports the Synced state it had before the others
//   evicted it;
// - every other reachable Galera node has been checked since it came back, and before its own
//   latest check began: the others' answers must postdate its return to tell anything, and
//   predate its own answer to be compared with it;
// - it has applied every write set the others had applied by then (wsrep_last_committed):
//   Synced does not mean caught up: a node thawed before the others evicted it, or one that
//   goes Synced with write sets still queued, would serve reads that miss writes committed
//   seconds ago.
// A node that stayed up is judged by its own status alone, so that a view change seen a few
// ms apart moves no role.
function excludeStaleGaleraViews(nodes: readonly NodeInput[], usable: Usability[]): void {
  let newest: number | undefined;
  for (const n of nodes) {
    const g = n.observation?.reachable === true ? n.observation.galera : undefined;
    if (g?.clusterStatus === 'Primary' && g.confId !== undefined && (newest === undefined || g.confId > newest)) newest = g.confId;
  }
  nodes.forEach((n, i) => {
    const o = n.observation;
    const g = o?.galera;
    if (o === undefined || g === undefined || usable[i]!.health !== 'up') return;
    const returning = n.previousHealth === 'down' || n.previousHealth === 'notSynced' || n.previousHealth === 'suspect';
    if (!returning) return;
    const behind = newest !== undefined && g.confId !== undefined && g.confId < newest;
    if (behind || !caughtUp(n, o, g, nodes)) usable[i] = { ...usable[i]!, health: 'notSynced', canRead: false, canWrite: false };
  });
}

function caughtUp(n: NodeInput, o: NodeObservation, g: GaleraStatus, nodes: readonly NodeInput[]): boolean {
  const since = o.syncedSince ?? o.at;
  const askedAt = o.askedAt ?? o.at;
  for (const b of nodes) {
    const p = b.observation;
    if (b === n || p?.reachable !== true || p.galera === undefined) continue;
    const at = p.at ?? 0;
    if (since !== undefined && at < since) return false; // not checked since it came back
    if (askedAt !== undefined && at > askedAt) return false; // checked after its own check began: not comparable yet
    const peer = p.galera.lastCommitted;
    if (peer !== undefined && g.lastCommitted !== undefined && g.lastCommitted < peer) return false;
  }
  return true;
}

function chooseWriters(nodes: readonly NodeInput[], usable: readonly Usability[], previous: ReadonlySet<string>, options: TopologyOptions): Set<string> {
  // The writer met a wrong-node error and is being re-checked: no other node takes its place
  // on that alone (a blip must not hand writes to an old primary left writable).
  if (nodes.some((n) => previous.has(n.name) && n.suspect && n.observation?.reachable === true)) return new Set();
  const candidates = nodes.filter((_, i) => usable[i]!.canWrite);
  if (candidates.length === 0) return new Set();
  const galera = candidates.filter((n) => n.observation?.galera !== undefined);
  if (galera.length === candidates.length && options.galeraWriters === 'all') return new Set(candidates.map((n) => n.name));
  const kept = candidates.find((n) => previous.has(n.name));
  if (kept !== undefined) return new Set([kept.name]);
  if (galera.length === candidates.length) {
    const lowest = galera.reduce((a, b) => (b.observation!.galera!.localIndex < a.observation!.galera!.localIndex ? b : a));
    return new Set([lowest.name]);
  }
  // Replication with more than one writable node, none of them the last writer (a switchover
  // half done, an old primary back unfenced): no writer until the orchestrator decides.
  return candidates.length === 1 ? new Set([candidates[0]!.name]) : new Set();
}

/** A one-line summary for errors and logs: `a writer up, b reader up (lag 0 s), c none down`. */
export function describeTopology(states: readonly NodeState[]): string {
  return states
    .map((s) => `${s.name} ${s.role} ${s.health}${typeof s.lagSeconds === 'number' ? ` (lag ${s.lagSeconds} s)` : ''}`)
    .join(', ');
}
