/**
 * What the benchmark compares, behind one small interface. Every contender runs the same
 * SQL through mysql2's promise `query()`:
 *
 * - `fresh-pool`: this library with its defaults (`withConnection`).
 * - `fresh-pool trace:false`: the same with mysql2's `trace: false` in its connection options,
 *   to set the layer's own cost against `mysql2-pool trace:false`.
 * - `mysql2-pool`: mysql2's own pool as shipped (`getConnection` / `release`).
 * - `mysql2-pool trace:false`: the same with `trace: false` (no stack captured per statement).
 * - `raw mysql2`: no pool at all, one mysql2 connection per caller, kept open: the limit any
 *   pool approaches. At concurrency 64 it has 64 connections where the pools have 8.
 * - `generic-pool`: generic-pool over mysql2 connections, no validation (our base, alone).
 * - `generic-pool+ping`: the same pinging on every borrow (what careful users write by hand).
 *
 * Only `trace: false` differs between a contender and its pair; everything else is left at
 * each library's defaults.
 *
 * The cluster section has contenders of its own:
 * - `fresh-cluster` (routing cost): `createCluster` whose one node is the benchmark's server,
 *   with the same settings as `fresh-pool`, set against `fresh-pool` on the same server;
 * - failover contenders (`createFailoverContender`): this library's cluster and mysql2's
 *   PoolCluster over a primary with two replicas, writing to the primary and reading from the
 *   replicas as a typical user of each would.
 */
import genericPool from 'generic-pool';
import mysql from 'mysql2/promise';
import type { Connection } from 'mysql2/promise';
import { pino } from 'pino';
import { createCluster, createPool as createFreshPool } from '../lib/index.js';

/** The part of a connection a workload uses: mysql2's promise `query()`. */
export interface Queryable {
  query(sql: string, values?: unknown[]): Promise<unknown>;
}

export interface Contender {
  readonly name: ContenderName;
  /**
   * Borrows a connection (caller `worker`'s own one for raw connections), runs `fn` on it and
   * gives it back. Rejects with whatever the user would see.
   */
  use(worker: number, fn: (conn: Queryable) => Promise<unknown>): Promise<void>;
  /** Borrow and give back, no statement: the pool's own overhead. Absent for raw connections. */
  borrow?(): Promise<void>;
  /** Validation pings sent so far. */
  pings(): number;
  end(): Promise<void>;
}

export interface ContenderOptions {
  url: string;
  size: number;
  /** Passed to this library only: its idle threshold, ms. */
  connWaitAge?: number;
}

export const CONTENDER_NAMES = [
  'fresh-pool',
  'fresh-pool trace:false',
  'mysql2-pool',
  'mysql2-pool trace:false',
  'raw mysql2',
  'generic-pool',
  'generic-pool+ping',
] as const;
/** The cluster section's routing-cost contender, set against `fresh-pool`: not in the throughput workloads. */
export const CLUSTER_CONTENDER = 'fresh-cluster';
export type ContenderName = (typeof CONTENDER_NAMES)[number] | typeof CLUSTER_CONTENDER;

/** What each contender is, for the report's legend. */
export const CONTENDER_NOTES: Record<ContenderName, string> = {
  'fresh-pool': 'this library, defaults (withConnection)',
  'fresh-pool trace:false': "this library, mysql2 connection option trace: false",
  'mysql2-pool': "mysql2's pool as shipped (getConnection/release)",
  'mysql2-pool trace:false': "mysql2's pool, connection option trace: false",
  'raw mysql2': 'no pool: one mysql2 connection per caller, kept open (the limit)',
  'generic-pool': 'generic-pool over mysql2 connections, no validation',
  'generic-pool+ping': 'generic-pool, ping on every borrow',
  'fresh-cluster': 'this library, createCluster with one node (the same server), defaults (withConnection)',
};

export function createContender(name: ContenderName, options: ContenderOptions): Contender {
  switch (name) {
    case 'fresh-pool':
      return freshPool(name, options, false);
    case 'fresh-pool trace:false':
      return freshPool(name, options, true);
    case 'mysql2-pool':
      return mysql2Pool(name, options, false);
    case 'mysql2-pool trace:false':
      return mysql2Pool(name, options, true);
    case 'raw mysql2':
      return rawConnections(name, options);
    case 'generic-pool':
      return genericPoolOf(name, options, false);
    case 'generic-pool+ping':
      return genericPoolOf(name, options, true);
    case 'fresh-cluster':
      return freshCluster(name, options);
  }
}

const silent = () => pino({ level: 'silent' });

function freshPool(name: ContenderName, { url, size, connWaitAge }: ContenderOptions, noTrace: boolean): Contender {
  const pool = createFreshPool({
    connection: noTrace ? { uri: url, trace: false } : url,
    max: size,
    acquireTimeout: 30_000,
    logger: silent(),
    ...(connWaitAge === undefined ? {} : { connWaitAge }),
  });
  const noop = () => undefined;
  return {
    name,
    use: async (_worker, fn) => {
      await pool.withConnection(fn);
    },
    borrow: () => pool.withConnection(noop),
    pings: () => pool.stats().pings,
    end: () => pool.end(),
  };
}

/**
 * A cluster of one node, the benchmark's server, with `fresh-pool`'s settings: what routing
 * (the monitor's topology, the pick of a node, the wait for an eligible one) costs on top of
 * the node's own pool. Borrows take the default route (the writer).
 */
function freshCluster(name: ContenderName, { url, size, connWaitAge }: ContenderOptions): Contender {
  const cluster = createCluster({
    nodes: [url],
    max: size,
    acquireTimeout: 30_000,
    logger: silent(),
    ...(connWaitAge === undefined ? {} : { connWaitAge }),
  });
  const noop = () => undefined;
  return {
    name,
    use: async (_worker, fn) => {
      await cluster.withConnection(fn);
    },
    borrow: () => cluster.withConnection(noop),
    pings: () => cluster.stats().nodes.reduce((sum, n) => sum + n.pool.pings, 0),
    end: () => cluster.end(),
  };
}

function mysql2Pool(name: ContenderName, { url, size }: ContenderOptions, noTrace: boolean): Contender {
  const pool = mysql.createPool({ uri: url, connectionLimit: size, ...(noTrace ? { trace: false } : {}) });
  return {
    name,
    use: async (_worker, fn) => {
      const conn = await pool.getConnection();
      try {
        await fn(conn);
      } finally {
        conn.release();
      }
    },
    borrow: async () => {
      const conn = await pool.getConnection();
      conn.release();
    },
    pings: () => 0,
    end: () => pool.end(),
  };
}

/** One connection per caller, opened on its first use and kept: no pool, no borrow. */
function rawConnections(name: ContenderName, { url }: ContenderOptions): Contender {
  const conns: Array<Promise<Connection>> = [];
  return {
    name,
    use: async (worker, fn) => {
      const conn = await (conns[worker] ??= mysql.createConnection(url));
      await fn(conn);
    },
    pings: () => 0,
    end: async () => {
      await Promise.all(conns.map((c) => c.then((conn) => conn.end()).catch(() => undefined)));
    },
  };
}

function genericPoolOf(name: ContenderName, { url, size }: ContenderOptions, pingOnBorrow: boolean): Contender {
  let pings = 0;
  const pool = genericPool.createPool<Connection>(
    {
      create: () => mysql.createConnection(url),
      destroy: (conn) => conn.end().catch(() => undefined),
      validate: async (conn) => {
        pings++;
        try {
          await conn.ping();
          return true;
        } catch {
          return false;
        }
      },
    },
    { max: size, testOnBorrow: pingOnBorrow, acquireTimeoutMillis: 30_000 },
  );
  return {
    name,
    // As generic-pool's own `use()` does: a connection whose statement failed is destroyed.
    use: async (_worker, fn) => {
      const conn = await pool.acquire();
      try {
        await fn(conn);
      } catch (err) {
        await pool.destroy(conn);
        throw err;
      }
      await pool.release(conn);
    },
    borrow: async () => {
      const conn = await pool.acquire();
      await pool.release(conn);
    },
    pings: () => pings,
    end: async () => {
      await pool.drain();
      await pool.clear();
    },
  };
}

// ---------------------------------------------------------------------------------------
// Failover contenders: a primary with replicas behind one object, as a user would set it up.

export const FAILOVER_CONTENDER_NAMES = ['fresh-cluster', 'mysql2 PoolCluster'] as const;
export type FailoverContenderName = (typeof FAILOVER_CONTENDER_NAMES)[number];

export const FAILOVER_NOTES: Record<FailoverContenderName, string> = {
  'fresh-cluster': 'createCluster over the three nodes (a name and a URL each); writes by default, reads with { readOnly: true }; monitorInterval 200 ms, max as below, other options default',
  'mysql2 PoolCluster': "mysql2's createPoolCluster as shipped, nodes PRIMARY, REPLICA1, REPLICA2 (connectionLimit as below); writes through of('PRIMARY'), reads through of('REPLICA*')",
};

export interface FailoverNode {
  /** 'primary', 'replica1', …: the role at start. */
  name: string;
  /** The application user's URL (subject to read_only). */
  url: string;
}

export interface FailoverContender {
  readonly name: FailoverContenderName;
  /** Resolves once the contender can take calls (the cluster knows its writer); immediate for mysql2. */
  ready(): Promise<void>;
  /** One statement where this contender sends writes. Rejects with whatever the user would see. */
  write(sql: string, values?: unknown[]): Promise<unknown>;
  /** One statement where this contender sends reads. */
  read(sql: string, values?: unknown[]): Promise<unknown>;
  end(): Promise<void>;
}

export interface FailoverContenderOptions {
  /** Connections per node. */
  size: number;
  /** This library only: ms between two checks of a node. */
  monitorInterval: number;
}

export function createFailoverContender(name: FailoverContenderName, nodes: readonly FailoverNode[], options: FailoverContenderOptions): FailoverContender {
  switch (name) {
    case 'fresh-cluster': {
      const cluster = createCluster({
        nodes: nodes.map((n) => ({ name: n.name, uri: n.url })),
        max: options.size,
        monitorInterval: options.monitorInterval,
        logger: silent(),
      });
      const readOnly = { readOnly: true } as const;
      return {
        name,
        ready: () => cluster.ready(),
        write: (sql, values) => cluster.query(sql, values),
        read: (sql, values) => cluster.query(sql, values, readOnly),
        end: () => cluster.end(),
      };
    }
    case 'mysql2 PoolCluster': {
      const cluster = mysql.createPoolCluster();
      for (const n of nodes) cluster.add(n.name.toUpperCase(), { uri: n.url, connectionLimit: options.size });
      const writer = cluster.of('PRIMARY');
      const readers = cluster.of('REPLICA*');
      return {
        name,
        ready: async () => undefined,
        write: (sql, values) => writer.query(sql, values),
        read: (sql, values) => readers.query(sql, values),
        end: () => cluster.end(),
      };
    }
  }
}
