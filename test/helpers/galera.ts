/**
 * A private Galera cluster (MariaDB + galera-4, rsync SST) on loopback for one test, with the
 * faults a cluster pool must survive: isolation from the cluster (gmcast.isolate), freeze
 * (SIGSTOP), kill -9 and restart (IST after --wsrep-recover, or full SST), stop and bootstrap
 * of the whole cluster. Every node has its own datadir (copied from the cached template) and
 * its own SQL, gcomm, IST and SST ports, all picked free (bound to port 0 and released); the
 * teardown registered on `t` stops the nodes and removes the files, and a watchdog does the
 * same if the test process dies first.
 *
 * Applications connect as `app` (password `app`), with ALL on the test database.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { boundedQuery, ensureTemplate, freePorts, GuardedDir, poll, ServerProcess, type ProcessState } from './mariadb-process.js';

const run = promisify(execFile);

export const GALERA_PROVIDER = '/usr/lib/galera/libgalera_smm.so';

export interface GaleraOptions {
  /** Nodes in the cluster. Default 3. */
  nodes?: number;
  /** Database created on node1 (so it replicates), on which `app` has ALL. Default 'test'. */
  database?: string;
  /**
   * Default true: all nodes start at once from the template, as members of one cluster that
   * was just running (hand-written grastate.dat and gvwstate.dat), and form it without any
   * state transfer. False: node1 bootstraps (--wsrep-new-cluster) and the others join one
   * after the other, each with a full rsync SST (slow: 5-17 s per joiner here).
   */
  seed?: boolean;
  /** Without `seed`: start the joiners all at once instead of one after the other. */
  joinConcurrently?: boolean;
  /** Extra wsrep_provider_options, e.g. 'evs.suspect_timeout=PT2S' (';'-separated). */
  providerOptions?: string;
  /** Extra mariadbd arguments for every node. */
  extraArgs?: string[];
}

export interface GaleraNode {
  /** 'node1', 'node2', …; node1 bootstraps the cluster (without `seed`). */
  readonly name: string;
  readonly host: string;
  /** The SQL port. */
  readonly port: number;
  readonly gcommPort: number;
  readonly istPort: number;
  readonly sstPort: number;
  /** mysql://app:app@127.0.0.1:PORT/test */
  readonly url: string;
  /** mysql://root@127.0.0.1:PORT/test */
  readonly adminUrl: string;
  /** Runs one statement as root on a fresh connection (bounded: 30 s). */
  query<T = unknown>(sql: string, values?: unknown[]): Promise<T>;
  /** 'running', 'frozen' (SIGSTOP) or 'down'. */
  readonly state: ProcessState;
  /** True between isolate() and rejoin(). */
  readonly isolated: boolean;
  readonly pid: number | undefined;
}

export interface WsrepStatus {
  /** wsrep_ready = ON */
  ready: boolean;
  /** wsrep_local_state: 1 Joining, 2 Donor/Desynced, 3 Joined, 4 Synced. */
  localState: number;
  localStateComment: string;
  /** wsrep_cluster_status: 'Primary', 'non-Primary' or 'Disconnected'. */
  clusterStatus: string;
  clusterSize: number;
  localIndex: number;
  /** wsrep_cluster_conf_id: changes with every membership change. */
  confId: number;
  /** wsrep_connected = ON */
  connected: boolean;
}

export interface Galera {
  readonly nodes: readonly GaleraNode[];
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /** Milliseconds some steps took: start, bootstrap, join nodeN, restart nodeN, stopAll, startAll. */
  readonly timings: Record<string, number>;

  /** wsrep status of `node` (as root; works on a non-Primary node too). */
  status(node: GaleraNode): Promise<WsrepStatus>;
  /** Polls status(node) until `check` holds (at most `timeoutMs`, default 90 s); returns that status. */
  waitStatus(node: GaleraNode, check: (s: WsrepStatus) => boolean, what: string, timeoutMs?: number): Promise<WsrepStatus>;
  /**
   * Waits until `node` is Synced (ready, state 4, Primary) in a component of `size` nodes
   * (default: the nodes running, not frozen, not isolated) whose configuration id the other such
   * nodes share: a node thawed after being evicted reports a stale Synced/size for seconds, and
   * does not pass until it has truly rejoined.
   */
  waitSynced(node: GaleraNode, options?: { size?: number; timeoutMs?: number }): Promise<WsrepStatus>;
  /** gmcast.isolate=1: the node drops out of the cluster (wsrep_ready=OFF some seconds later). */
  isolate(node: GaleraNode): Promise<void>;
  /** gmcast.isolate=0, then (unless `wait` is false) waitSynced. */
  rejoin(node: GaleraNode, options?: { wait?: boolean }): Promise<void>;
  freeze(node: GaleraNode): void;
  thaw(node: GaleraNode): void;
  kill9(node: GaleraNode): Promise<void>;
  /** Orderly shutdown (SIGTERM; kill -9 after 60 s): the node leaves the cluster. */
  stop(node: GaleraNode): Promise<void>;
  /**
   * Starts a down node and waits until it is Synced. After a kill -9, with `ist` (default),
   * first runs mariadbd --wsrep-recover and starts with --wsrep-start-position, so it catches up
   * by IST; with `ist: false` it starts plainly, and a crashed node gets a full SST.
   */
  start(node: GaleraNode, options?: { ist?: boolean }): Promise<void>;
  /** stop (if up) + start. */
  restart(node: GaleraNode, options?: { ist?: boolean }): Promise<void>;
  /** Stops every node, one after the other: the last one stopped is safe_to_bootstrap. */
  stopAll(): Promise<void>;
  /**
   * Bootstraps from the node whose grastate.dat says safe_to_bootstrap: 1 (unless some node
   * still runs), then starts the rest at once; they catch up by IST.
   */
  startAll(): Promise<void>;
  /** Stops every node (frozen ones are thawed first) and removes the files. Idempotent. */
  destroy(): Promise<void>;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

const HOST = '127.0.0.1';
/**
 * Run as root, the nodes run as `mysql`, not `--user=root`: the joiner's rsync SST daemon,
 * started as root, drops to `nobody` and cannot write the datadir ("cannot stat destination").
 */
const RUN_AS = process.getuid?.() === 0 ? 'mysql' : undefined;
const APP_USER = 'app';
const APP_PASSWORD = 'app';

interface NodeState {
  node: GaleraNode;
  proc: ServerProcess;
  dir: string;
  isolated: boolean;
}

/** Starts a Galera cluster of `nodes` nodes; registers its teardown on `t` first. */
export async function startGalera(t: Teardown, options: GaleraOptions = {}): Promise<Galera> {
  const began = Date.now();
  const count = options.nodes ?? 3;
  const database = options.database ?? 'test';
  const guard = new GuardedDir('fresh-pool-galera-');
  const states: NodeState[] = [];
  let destroyed = false;
  const destroy = async () => {
    if (destroyed) return;
    destroyed = true;
    // One after the other: nodes leaving together wait out each other's timeouts (6-7 s).
    for (const s of states) await s.proc.stop(15_000);
    guard.close();
  };
  t.teardown(destroy);

  const template = await ensureTemplate();
  if (RUN_AS) chmodSync(guard.path, 0o711);
  const ports = await freePorts(4 * count);
  for (let i = 0; i < count; i++) {
    const name = `node${i + 1}`;
    const dir = join(guard.path, name);
    cpSync(template, join(dir, 'data'), { recursive: true });
    if (RUN_AS) execFileSync('chown', ['-R', `${RUN_AS}:`, dir]);
    const [port, gcommPort, istPort, sstPort] = ports.slice(4 * i, 4 * i + 4) as [number, number, number, number];
    const proc = new ServerProcess(name, guard, join(dir, 'error.log'));
    const adminUrl = `mysql://root@${HOST}:${port}/${database}`;
    const s: NodeState = {
      proc,
      dir,
      isolated: false,
      node: {
        name,
        host: HOST,
        port,
        gcommPort,
        istPort,
        sstPort,
        url: `mysql://${APP_USER}:${APP_PASSWORD}@${HOST}:${port}/${database}`,
        adminUrl,
        query: (sql, values) => boundedQuery(adminUrl, sql, values),
        get state() {
          return proc.state;
        },
        get isolated() {
          return s.isolated;
        },
        get pid() {
          return proc.pid;
        },
      },
    };
    states.push(s);
  }
  const clusterAddress = `gcomm://${states.map((s) => `${HOST}:${s.node.gcommPort}`).join(',')}`;
  const timings: Record<string, number> = {};

  /** Root, without a default database: the harness's own statements (also before the database exists). */
  const admin = <T = unknown>(node: GaleraNode, sql: string) => boundedQuery<T>(`mysql://root@${HOST}:${node.port}/`, sql);

  const stateOf = (node: GaleraNode): NodeState => {
    const s = states.find((x) => x.node === node);
    if (!s) throw new Error(`not a node of this cluster: ${node.name}`);
    return s;
  };

  const args = (s: NodeState): string[] => [
    '--no-defaults',
    ...(RUN_AS ? [`--user=${RUN_AS}`] : []),
    `--datadir=${join(s.dir, 'data')}`,
    `--port=${s.node.port}`,
    `--bind-address=${HOST}`,
    `--socket=${join(s.dir, 'mariadbd.sock')}`,
    `--pid-file=${join(s.dir, 'mariadbd.pid')}`,
    `--log-error=${s.proc.errorLog}`,
    '--skip-performance-schema',
    '--innodb-buffer-pool-size=16M',
    '--innodb-log-file-size=8M',
    '--max-connections=300',
    '--wsrep-on=ON',
    `--wsrep-provider=${GALERA_PROVIDER}`,
    // Unique per cluster: a node of another test's cluster that ends up on a reused port is refused.
    `--wsrep-cluster-name=${basename(guard.path)}`,
    `--wsrep-cluster-address=${clusterAddress}`,
    `--wsrep-node-name=${s.node.name}`,
    `--wsrep-node-address=${HOST}:${s.node.gcommPort}`,
    `--wsrep-node-incoming-address=${HOST}:${s.node.port}`,
    // Each node its own IST port (the default, gcomm port + 1, is another node's here) and SST
    // port (the default, 4444, is shared by every joiner and every concurrent test).
    `--wsrep-provider-options=gmcast.listen_addr=tcp://${HOST}:${s.node.gcommPort};ist.recv_addr=${HOST}:${s.node.istPort};gcache.size=32M${options.providerOptions ? `;${options.providerOptions}` : ''}`,
    '--wsrep-sst-method=rsync',
    `--wsrep-sst-receive-address=${HOST}:${s.node.sstPort}`,
    '--binlog-format=ROW',
    '--innodb-autoinc-lock-mode=2',
    ...(options.extraArgs ?? []),
  ];

  const status = async (node: GaleraNode): Promise<WsrepStatus> => {
    const rows = await admin<Array<{ Variable_name: string; Value: string }>>(
      node,
      "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_local_state', 'wsrep_local_state_comment', " +
        "'wsrep_cluster_status', 'wsrep_cluster_size', 'wsrep_local_index', 'wsrep_cluster_conf_id', 'wsrep_connected')",
    );
    const v = Object.fromEntries(rows.map((r) => [r.Variable_name.toLowerCase(), r.Value]));
    return {
      ready: v.wsrep_ready === 'ON',
      localState: Number(v.wsrep_local_state),
      localStateComment: v.wsrep_local_state_comment ?? '',
      clusterStatus: v.wsrep_cluster_status ?? '',
      clusterSize: Number(v.wsrep_cluster_size),
      localIndex: Number(v.wsrep_local_index),
      confId: Number(v.wsrep_cluster_conf_id),
      connected: v.wsrep_connected === 'ON',
    };
  };

  const waitStatus = (node: GaleraNode, check: (s: WsrepStatus) => boolean, what: string, timeoutMs = 90_000) =>
    poll(`${node.name}: ${what}`, timeoutMs, async () => {
      const s = await status(node);
      return check(s) ? s : undefined;
    });

  const members = () => states.filter((s) => s.proc.state === 'running' && !s.isolated);

  const waitSynced = async (node: GaleraNode, opts: { size?: number; timeoutMs?: number } = {}) => {
    const s = stateOf(node);
    if (s.proc.state !== 'running') throw new Error(`${node.name} is ${s.proc.state}`);
    const size = opts.size ?? members().length;
    const timeoutMs = opts.timeoutMs ?? 90_000;
    let last: WsrepStatus | undefined;
    try {
      return await poll(`${node.name} Synced in a Primary component of ${size}`, timeoutMs, async () => {
        last = await status(node);
        if (!(last.ready && last.localState === 4 && last.clusterStatus === 'Primary' && last.clusterSize === size)) return undefined;
        for (const peer of members()) {
          if (peer === s) continue;
          const p = await status(peer.node);
          if (p.clusterStatus === 'Primary' && p.confId !== last.confId) return undefined;
        }
        return last;
      });
    } catch (err) {
      throw new Error(`${(err as Error).message}; last status ${JSON.stringify(last)}\n${s.proc.logTail(15)}`);
    }
  };

  /** mariadbd --wsrep-recover: the last committed position of a crashed node, from its error log. */
  const recoverPosition = async (s: NodeState): Promise<string> => {
    await run('mariadbd', [...args(s), '--wsrep-recover'], { timeout: 120_000 });
    const found = [...readFileSync(s.proc.errorLog, 'utf8').matchAll(/WSREP: Recovered position: (\S+:-?\d+)/g)];
    const position = found.at(-1)?.[1];
    if (!position) throw new Error(`${s.node.name}: --wsrep-recover found no position:\n${s.proc.logTail(15)}`);
    return position;
  };

  const startNode = async (s: NodeState, opts: { bootstrap?: boolean; ist?: boolean; size?: number } = {}) => {
    const extra: string[] = [];
    if (opts.bootstrap) extra.push('--wsrep-new-cluster');
    else if (s.proc.lastStop === 'killed' && opts.ist !== false) extra.push(`--wsrep-start-position=${await recoverPosition(s)}`);
    s.isolated = false;
    s.proc.spawn([...args(s), ...extra]);
    // A joiner opens its SQL port only after the state transfer.
    await s.proc.waitAccepting(`mysql://root@${HOST}:${s.node.port}/`, 120_000);
    await waitSynced(s.node, { size: opts.size ?? members().length, timeoutMs: 120_000 });
  };

  const [first, ...joiners] = states as [NodeState, ...NodeState[]];
  const createUsers = async () => {
    for (const sql of [
      `CREATE USER '${APP_USER}'@'%' IDENTIFIED BY '${APP_PASSWORD}'`,
      `CREATE DATABASE \`${database}\``,
      `GRANT ALL ON \`${database}\`.* TO '${APP_USER}'@'%'`,
    ]) {
      await admin(first.node, sql);
    }
  };
  const join1 = async (s: NodeState, size?: number) => {
    const at = Date.now();
    await startNode(s, { size });
    timings[`join ${s.node.name}`] = Date.now() - at;
  };
  if (options.seed !== false) {
    // Every node as if it had been running in this cluster until a moment ago: the same state
    // (grastate.dat: cluster UUID, seqno 0) and the same Primary component (gvwstate.dat, which
    // a node keeps while it runs). Started together, they restore that component by themselves
    // (pc.recovery) with nobody behind, so nobody needs a state transfer.
    const cluster = randomUUID();
    const uuids = states.map(() => randomUUID());
    const view = `#vwbeg\nview_id: 3 ${uuids[0]} 1\nbootstrap: 0\n${uuids.map((u) => `member: ${u} 0\n`).join('')}#vwend\n`;
    for (const [i, s] of states.entries()) {
      const files = {
        'grastate.dat': `# GALERA saved state\nversion: 2.1\nuuid:    ${cluster}\nseqno:   0\nsafe_to_bootstrap: 0\n`,
        'gvwstate.dat': `my_uuid: ${uuids[i]}\n${view}`,
      };
      for (const [name, text] of Object.entries(files)) {
        const file = join(s.dir, 'data', name);
        writeFileSync(file, text);
        if (RUN_AS) execFileSync('chown', [`${RUN_AS}:`, file]);
      }
    }
    for (const s of states) s.proc.spawn(args(s));
    await Promise.all(states.map((s) => s.proc.waitAccepting(`mysql://root@${HOST}:${s.node.port}/`, 120_000)));
    await waitSynced(first.node, { size: count });
    await createUsers();
  } else {
    // node1 bootstraps, the others join with a full rsync SST each.
    await startNode(first, { bootstrap: true, size: 1 });
    timings.bootstrap = Date.now() - began;
    await createUsers();
    if (options.joinConcurrently) {
      // Sizes are unknowable while several join: wait for the whole cluster at the end.
      await Promise.all(joiners.map((s) => join1(s, count)));
    } else {
      for (const [i, s] of joiners.entries()) await join1(s, i + 2);
    }
  }
  for (const s of states) await waitSynced(s.node, { size: count });
  timings.start = Date.now() - began;

  return {
    nodes: states.map((s) => s.node),
    user: APP_USER,
    password: APP_PASSWORD,
    database,
    timings,
    status,
    waitStatus,
    waitSynced,
    async isolate(node) {
      await admin(node, "SET GLOBAL wsrep_provider_options = 'gmcast.isolate=1'");
      stateOf(node).isolated = true;
    },
    async rejoin(node, opts = {}) {
      await admin(node, "SET GLOBAL wsrep_provider_options = 'gmcast.isolate=0'");
      stateOf(node).isolated = false;
      if (opts.wait !== false) await waitSynced(node);
    },
    freeze: (node) => stateOf(node).proc.freeze(),
    thaw: (node) => stateOf(node).proc.thaw(),
    kill9: (node) => stateOf(node).proc.kill9(),
    stop: (node) => stateOf(node).proc.stop(),
    async start(node, opts = {}) {
      const at = Date.now();
      await startNode(stateOf(node), { ist: opts.ist });
      timings[`start ${node.name}`] = Date.now() - at;
    },
    async restart(node, opts = {}) {
      const s = stateOf(node);
      const at = Date.now();
      await s.proc.stop();
      await startNode(s, { ist: opts.ist });
      timings[`restart ${node.name}`] = Date.now() - at;
    },
    async stopAll() {
      const at = Date.now();
      for (const s of states) await s.proc.stop();
      timings.stopAll = Date.now() - at;
    },
    async startAll() {
      const at = Date.now();
      const down = states.filter((s) => s.proc.state === 'down');
      const safe = down.find((s) => /^safe_to_bootstrap:\s*1\s*$/m.test(readGrastate(s)));
      const running = states.length - down.length;
      if (running === 0) {
        if (!safe) throw new Error(`no node is safe_to_bootstrap: ${down.map((s) => `${s.node.name}: ${readGrastate(s)}`).join('; ')}`);
        await startNode(safe, { bootstrap: true, size: 1 });
      }
      // The rest together: each catches up from the running ones by IST.
      const rest = down.filter((s) => s.proc.state === 'down');
      await Promise.all(rest.map((s) => startNode(s, { size: states.length })));
      timings.startAll = Date.now() - at;
    },
    destroy,
  };
}

function readGrastate(s: NodeState): string {
  try {
    return readFileSync(join(s.dir, 'data', 'grastate.dat'), 'utf8');
  } catch {
    return '(no grastate.dat)';
  }
}
