/**
 * A private primary + N replicas (MariaDB GTID replication) on loopback for one test, with the
 * fault operations an orchestrator performs: crash, stop/start, freeze, promote, repoint,
 * read_only, replica lag. Every node is its own mariadbd with its own datadir (copied from the
 * cached template) and port; the teardown registered on `t` stops them all and removes the files,
 * and a watchdog does the same if the test process dies first.
 *
 * Applications connect as `app` (password `app`), not root: root holds READ_ONLY ADMIN, so
 * read_only=1 does not stop it, while `app` gets error 1290 writing to a read-only node.
 */
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { boundedQuery, ensureTemplate, freePorts, GuardedDir, poll, runAsRoot, ServerProcess, type ProcessState } from './mariadb-process.js';

export interface ReplicationOptions {
  /** Replicas besides the primary. Default 2. */
  replicas?: number;
  /** Database created on the primary (so it replicates), on which `app` has ALL. Default 'test'. */
  database?: string;
  /** Extra mariadbd arguments for every node. */
  extraArgs?: string[];
}

export interface ReplicationNode {
  /** 'primary', 'replica1', 'replica2', …: the role at start (roles change, names do not). */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly serverId: number;
  /** mysql://app:app@127.0.0.1:PORT/test: the application user, subject to read_only. */
  readonly url: string;
  /** mysql://root@127.0.0.1:PORT/test: the admin, not subject to read_only. */
  readonly adminUrl: string;
  /** Runs one statement as root on a fresh connection (bounded: 30 s). */
  query<T = unknown>(sql: string, values?: unknown[]): Promise<T>;
  /** 'running', 'frozen' (SIGSTOP) or 'down'. */
  readonly state: ProcessState;
  /** The server's pid while it runs. */
  readonly pid: number | undefined;
}

/** The columns of SHOW SLAVE STATUS that tests look at (the row has all of them). */
export interface SlaveStatus {
  Slave_IO_Running: string;
  Slave_SQL_Running: string;
  Seconds_Behind_Master: number | null;
  Master_Port: number;
  Using_Gtid: string;
  Gtid_IO_Pos: string;
  Last_IO_Error: string;
  Last_SQL_Error: string;
  [column: string]: unknown;
}

export interface Replication {
  /** All nodes, in start order: the primary first, then replica1…N. */
  readonly nodes: readonly ReplicationNode[];
  /** The node the harness last made primary (the first node until a promote). */
  readonly primary: ReplicationNode;
  /** The application user and its password, and the database. */
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /** Milliseconds some steps took (e.g. `start`: from nothing to all replicas replicating). */
  readonly timings: Record<string, number>;

  /** kill -9 (a crash). */
  kill9(node: ReplicationNode): Promise<void>;
  /** Orderly shutdown (SIGTERM; kill -9 after 60 s). */
  stop(node: ReplicationNode): Promise<void>;
  /**
   * Starts a stopped or killed node again on the same port and datadir; resolves once it accepts
   * connections. A replica resumes replicating by itself (no --skip-slave-start). `readOnly`
   * defaults to the node's last read_only setting, so a killed primary comes back writable.
   */
  start(node: ReplicationNode, options?: { readOnly?: boolean }): Promise<void>;
  /** SIGSTOP: the node keeps its sockets open and answers nothing. */
  freeze(node: ReplicationNode): void;
  /** SIGCONT. */
  thaw(node: ReplicationNode): void;
  /**
   * Makes `node` the primary: (unless `catchUp` is false) stops its IO thread and waits until the
   * SQL thread applied what was received, then STOP SLAVE; RESET SLAVE ALL; read_only=0.
   */
  promote(node: ReplicationNode, options?: { catchUp?: boolean }): Promise<void>;
  /**
   * STOP SLAVE; CHANGE MASTER TO `primary` …, MASTER_USE_GTID=`gtid`, MASTER_CONNECT_RETRY=1;
   * START SLAVE. `gtid` defaults to 'current_pos' for a node that has been primary (its own
   * writes are in its binlog, not in gtid_slave_pos), else 'slave_pos'. Unless `wait` is false,
   * waits until both replication threads run. Does not change read_only (see setReadOnly).
   */
  repoint(replica: ReplicationNode, primary: ReplicationNode, options?: { gtid?: 'slave_pos' | 'current_pos'; wait?: boolean }): Promise<void>;
  /**
   * Rebuilds `node` (stopped if running) as an empty read-only replica of `from`, which
   * replays its whole binlog into it: what an orchestrator does with a primary that crashed
   * under writes, whose binlog may hold transactions no replica received (an errant GTID that
   * the new primary's binlog does not have, so `repoint` would fail with 1236). Resolves once
   * it has applied all of `from`'s binlog. It gets a new `serverId`.
   */
  rebuild(node: ReplicationNode, from: ReplicationNode): Promise<void>;
  /** SET GLOBAL read_only = on (also the setting used by a later start). */
  setReadOnly(node: ReplicationNode, on: boolean): Promise<void>;
  /** STOP SLAVE SQL_THREAD: the replica receives but no longer applies (lag). */
  stopSqlThread(node: ReplicationNode): Promise<void>;
  /** START SLAVE SQL_THREAD. */
  startSqlThread(node: ReplicationNode): Promise<void>;
  /**
   * Waits (MASTER_GTID_WAIT, at most `timeoutMs`) until `node` applied the current primary's
   * @@gtid_binlog_pos; throws with its slave status if it does not. Immediate on the primary.
   */
  waitReplicated(node: ReplicationNode, options?: { timeoutMs?: number }): Promise<void>;
  /** SHOW SLAVE STATUS on `node`, or undefined if it is not a replica. */
  slaveStatus(node: ReplicationNode): Promise<SlaveStatus | undefined>;
  /** Stops every node (frozen ones are thawed first) and removes the files. Idempotent. */
  destroy(): Promise<void>;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

const HOST = '127.0.0.1';
const REPL_USER = 'repl';
const REPL_PASSWORD = 'repl';
const APP_USER = 'app';
const APP_PASSWORD = 'app';

interface NodeState {
  node: ReplicationNode;
  proc: ServerProcess;
  dir: string;
  readOnly: boolean;
  /** Has taken writes of its own as primary: rejoins with MASTER_USE_GTID=current_pos. */
  wasPrimary: boolean;
}

/** Starts a primary and `replicas` replicas replicating from it; registers their teardown on `t` first. */
export async function startReplication(t: Teardown, options: ReplicationOptions = {}): Promise<Replication> {
  const began = Date.now();
  const replicaCount = options.replicas ?? 2;
  const database = options.database ?? 'test';
  const guard = new GuardedDir('fresh-pool-repl-');
  const states: NodeState[] = [];
  let destroyed = false;
  const destroy = async () => {
    if (destroyed) return;
    destroyed = true;
    await Promise.all(states.map((s) => s.proc.stop(10_000)));
    guard.close();
  };
  t.teardown(destroy);

  const template = await ensureTemplate();
  const ports = await freePorts(replicaCount + 1);
  for (let i = 0; i <= replicaCount; i++) {
    const name = i === 0 ? 'primary' : `replica${i}`;
    const dir = join(guard.path, name);
    cpSync(template, join(dir, 'data'), { recursive: true });
    const port = ports[i]!;
    const adminUrl = `mysql://root@${HOST}:${port}/${database}`;
    const proc = new ServerProcess(name, guard, join(dir, 'error.log'));
    const node: ReplicationNode = {
      name,
      host: HOST,
      port,
      serverId: i + 1,
      url: `mysql://${APP_USER}:${APP_PASSWORD}@${HOST}:${port}/${database}`,
      adminUrl,
      query: (sql, values) => boundedQuery(adminUrl, sql, values),
      get state() {
        return proc.state;
      },
      get pid() {
        return proc.pid;
      },
    };
    states.push({ node, proc, dir, readOnly: i > 0, wasPrimary: i === 0 });
  }
  let primary = states[0]!;

  /** Root, without a default database: the harness's own statements (also before the database exists). */
  const admin = <T = unknown>(node: ReplicationNode, sql: string, values?: unknown[]) =>
    boundedQuery<T>(`mysql://root@${HOST}:${node.port}/`, sql, values);

  const stateOf = (node: ReplicationNode): NodeState => {
    const s = states.find((x) => x.node === node);
    if (!s) throw new Error(`not a node of this topology: ${node.name}`);
    return s;
  };

  const args = (s: NodeState, readOnly: boolean): string[] => [
    '--no-defaults',
    `--log-basename=${s.node.name}`,
    ...runAsRoot,
    `--datadir=${join(s.dir, 'data')}`,
    `--port=${s.node.port}`,
    `--bind-address=${HOST}`,
    `--socket=${join(s.dir, 'mariadbd.sock')}`,
    `--pid-file=${join(s.dir, 'mariadbd.pid')}`,
    `--log-error=${s.proc.errorLog}`,
    `--server-id=${s.node.serverId}`,
    '--log-bin',
    '--log-slave-updates=ON',
    '--gtid-strict-mode=ON',
    `--read-only=${readOnly ? 1 : 0}`,
    '--skip-performance-schema',
    '--innodb-buffer-pool-size=16M',
    '--innodb-log-file-size=8M',
    '--max-connections=300',
    ...(options.extraArgs ?? []),
  ];

  const startNode = async (s: NodeState, readOnly = s.readOnly) => {
    s.readOnly = readOnly;
    s.proc.spawn(args(s, readOnly));
    await s.proc.waitAccepting(`mysql://root@${HOST}:${s.node.port}/`);
  };

  const slaveStatus = async (node: ReplicationNode): Promise<SlaveStatus | undefined> => {
    const rows = await admin<SlaveStatus[]>(node, 'SHOW SLAVE STATUS');
    return rows[0];
  };

  const waitRunning = async (node: ReplicationNode, ms = 60_000) => {
    await poll(`${node.name} replicating (Slave_IO_Running and Slave_SQL_Running Yes)`, ms, async () => {
      const st = await slaveStatus(node);
      if (!st) throw new Error('not a replica');
      if (st.Slave_IO_Running === 'Yes' && st.Slave_SQL_Running === 'Yes') return true;
      if (st.Last_IO_Error || st.Last_SQL_Error) throw new Error(`IO: ${st.Last_IO_Error} / SQL: ${st.Last_SQL_Error}`);
      return undefined;
    });
  };

  const changeMaster = async (replica: NodeState, to: NodeState, gtid: 'slave_pos' | 'current_pos') => {
    await admin(replica.node, 'STOP SLAVE');
    await admin(
      replica.node,
      `CHANGE MASTER TO MASTER_HOST='${HOST}', MASTER_PORT=${to.node.port}, MASTER_USER='${REPL_USER}', ` +
        `MASTER_PASSWORD='${REPL_PASSWORD}', MASTER_USE_GTID=${gtid}, MASTER_CONNECT_RETRY=1`,
    );
    await admin(replica.node, 'START SLAVE');
  };

  const waitReplicated = async (node: ReplicationNode, opts: { timeoutMs?: number } = {}) => {
    if (node === primary.node) return;
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const [row] = await admin<Array<{ pos: string }>>(primary.node, 'SELECT @@GLOBAL.gtid_binlog_pos AS pos');
    const pos = row!.pos;
    const [waited] = await boundedQuery<Array<{ r: number }>>(
      `mysql://root@${HOST}:${node.port}/`,
      'SELECT MASTER_GTID_WAIT(?, ?) AS r',
      [pos, timeoutMs / 1000],
      timeoutMs + 10_000,
    );
    if (Number(waited?.r) !== 0) {
      const st = await slaveStatus(node).catch((err: Error) => err.message);
      throw new Error(`${node.name} did not apply ${pos} from ${primary.node.name} within ${timeoutMs} ms: ${JSON.stringify(st)}`);
    }
  };

  // Start all nodes at once, then set up the primary and point the replicas at it.
  await Promise.all(states.map((s) => startNode(s)));
  const p = primary.node;
  for (const sql of [
    `CREATE USER '${REPL_USER}'@'%' IDENTIFIED BY '${REPL_PASSWORD}'`,
    `GRANT REPLICATION SLAVE ON *.* TO '${REPL_USER}'@'%'`,
    `CREATE USER '${APP_USER}'@'%' IDENTIFIED BY '${APP_PASSWORD}'`,
    // SLAVE MONITOR and BINLOG MONITOR let the app read SHOW SLAVE STATUS and the GTID positions;
    // neither lets it write to a read-only node.
    `GRANT SLAVE MONITOR, BINLOG MONITOR ON *.* TO '${APP_USER}'@'%'`,
    `CREATE DATABASE \`${database}\``,
    `GRANT ALL ON \`${database}\`.* TO '${APP_USER}'@'%'`,
  ]) {
    await admin(p, sql);
  }
  await Promise.all(
    states.slice(1).map(async (s) => {
      await changeMaster(s, primary, 'slave_pos');
      await waitRunning(s.node);
      await waitReplicated(s.node);
    }),
  );
  const timings: Record<string, number> = { start: Date.now() - began };

  return {
    nodes: states.map((s) => s.node),
    get primary() {
      return primary.node;
    },
    user: APP_USER,
    password: APP_PASSWORD,
    database,
    timings,
    kill9: (node) => stateOf(node).proc.kill9(),
    stop: (node) => stateOf(node).proc.stop(),
    start: (node, opts = {}) => startNode(stateOf(node), opts.readOnly),
    freeze: (node) => stateOf(node).proc.freeze(),
    thaw: (node) => stateOf(node).proc.thaw(),
    async promote(node, opts = {}) {
      const s = stateOf(node);
      const st = await slaveStatus(node);
      if (st && opts.catchUp !== false && st.Slave_SQL_Running === 'Yes') {
        await admin(node, 'STOP SLAVE IO_THREAD');
        const received = (await slaveStatus(node))?.Gtid_IO_Pos ?? '';
        const [waited] = await admin<Array<{ r: number }>>(node, 'SELECT MASTER_GTID_WAIT(?, 30) AS r', [received]);
        if (Number(waited?.r) !== 0) throw new Error(`${node.name} did not apply its relay log (${received}) within 30 s`);
      }
      await admin(node, 'STOP SLAVE');
      await admin(node, 'RESET SLAVE ALL');
      await admin(node, 'SET GLOBAL read_only = 0');
      s.readOnly = false;
      s.wasPrimary = true;
      primary = s;
    },
    async repoint(replica, to, opts = {}) {
      const s = stateOf(replica);
      await changeMaster(s, stateOf(to), opts.gtid ?? (s.wasPrimary ? 'current_pos' : 'slave_pos'));
      if (opts.wait !== false) await waitRunning(replica);
    },
    async rebuild(node, from) {
      const s = stateOf(node);
      if (s.proc.state !== 'down') await s.proc.stop(10_000);
      rmSync(join(s.dir, 'data'), { recursive: true, force: true });
      cpSync(template, join(s.dir, 'data'), { recursive: true });
      // A new server_id, as a host rebuilt from scratch gets: under its old one it would skip
      // every event it wrote itself as primary (replication's loop guard), its own table
      // creations among them.
      (node as { serverId: number }).serverId = node.serverId + 100;
      s.wasPrimary = false;
      await startNode(s, true);
      await changeMaster(s, stateOf(from), 'slave_pos');
      await waitRunning(node);
      await waitReplicated(node);
    },
    async setReadOnly(node, on) {
      await admin(node, `SET GLOBAL read_only = ${on ? 1 : 0}`);
      stateOf(node).readOnly = on;
    },
    stopSqlThread: async (node) => void (await admin(node, 'STOP SLAVE SQL_THREAD')),
    startSqlThread: async (node) => void (await admin(node, 'START SLAVE SQL_THREAD')),
    waitReplicated,
    slaveStatus,
    destroy,
  };
}
