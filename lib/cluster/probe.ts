/**
 * One check of one node over the monitor's own connection: `read_only`, `wsrep_on`, then the
 * Galera status or the replica status. Talks to the server; decides nothing (see topology.ts).
 */
import type { DriverConnection } from '../driver.js';
import type { GaleraStatus, NodeObservation, ReplicaStatus } from './topology.js';

type Row = Record<string, unknown>;

const ER_UNKNOWN_SYSTEM_VARIABLE = 1193;
const ER_PARSE_ERROR = 1064;
const ER_SPECIFIC_ACCESS_DENIED = 1227;

/** Asks `conn` what the node is now. Rejects with the driver's error when a statement fails. */
export async function probe(conn: DriverConnection): Promise<NodeObservation> {
  const askedAt = Date.now();
  let readOnly: boolean;
  let wsrepOn = false;
  try {
    const [rows] = (await conn.query('SELECT @@global.read_only AS readOnly, @@global.wsrep_on AS wsrepOn')) as unknown as [Row[]];
    readOnly = truthy(rows[0]?.readOnly);
    wsrepOn = truthy(rows[0]?.wsrepOn);
  } catch (err) {
    // MySQL without Galera has no wsrep_on.
    if ((err as { errno?: number }).errno !== ER_UNKNOWN_SYSTEM_VARIABLE) throw err;
    const [rows] = (await conn.query('SELECT @@global.read_only AS readOnly')) as unknown as [Row[]];
    readOnly = truthy(rows[0]?.readOnly);
  }
  const galera = wsrepOn ? await galeraStatus(conn) : undefined;
  let replica: ReplicaStatus | undefined;
  let replicaStatusDenied = false;
  if (galera === undefined) {
    try {
      replica = await replicaStatus(conn);
    } catch (err) {
      // Without REPLICATION CLIENT (SLAVE MONITOR) the roles still show; the lag does not.
      if ((err as { errno?: number }).errno !== ER_SPECIFIC_ACCESS_DENIED) throw err;
      replicaStatusDenied = true;
    }
  }
  return { reachable: true, readOnly, galera, replica, error: undefined, replicaStatusDenied, askedAt, at: Date.now() };
}

async function galeraStatus(conn: DriverConnection): Promise<GaleraStatus> {
  const [rows] = (await conn.query(
    "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_local_state', 'wsrep_cluster_status', 'wsrep_local_index', 'wsrep_cluster_size', 'wsrep_cluster_conf_id', 'wsrep_last_committed')",
  )) as unknown as [Row[]];
  const status = new Map(rows.map((r) => [String(r.Variable_name).toLowerCase(), String(r.Value)]));
  return {
    ready: status.get('wsrep_ready') === 'ON',
    localState: Number(status.get('wsrep_local_state') ?? -1),
    clusterStatus: status.get('wsrep_cluster_status') ?? 'unknown',
    localIndex: Number(status.get('wsrep_local_index') ?? Number.MAX_SAFE_INTEGER),
    clusterSize: Number(status.get('wsrep_cluster_size') ?? 0),
    confId: status.has('wsrep_cluster_conf_id') ? Number(status.get('wsrep_cluster_conf_id')) : undefined,
    lastCommitted: status.has('wsrep_last_committed') ? Number(status.get('wsrep_last_committed')) : undefined,
  };
}

async function replicaStatus(conn: DriverConnection): Promise<ReplicaStatus | undefined> {
  let rows: Row[];
  try {
    [rows] = (await conn.query('SHOW SLAVE STATUS')) as unknown as [Row[]];
  } catch (err) {
    // MySQL 8.4 knows only SHOW REPLICA STATUS (and names its columns Replica_/Source).
    if ((err as { errno?: number }).errno !== ER_PARSE_ERROR) throw err;
    [rows] = (await conn.query('SHOW REPLICA STATUS')) as unknown as [Row[]];
  }
  const row = rows[0];
  if (row === undefined) return undefined;
  const lag = row.Seconds_Behind_Master ?? row.Seconds_Behind_Source;
  return {
    ioRunning: String(row.Slave_IO_Running ?? row.Replica_IO_Running) === 'Yes',
    sqlRunning: String(row.Slave_SQL_Running ?? row.Replica_SQL_Running) === 'Yes',
    lagSeconds: lag === null || lag === undefined ? null : Number(lag),
  };
}

function truthy(value: unknown): boolean {
  return value === 1 || value === '1' || value === 'ON' || value === true || value === BigInt(1);
}

/** What a failed check says: the node is unreachable, and why. */
export function unreachable(error: Error): NodeObservation {
  return { reachable: false, readOnly: true, galera: undefined, replica: undefined, error };
}
