/**
 * The four pools the benchmark compares, behind one small interface:
 * this library, mysql2's own pool (the speed to match), generic-pool with no validation (what
 * our base costs by itself) and generic-pool pinging on every borrow (what careful users write
 * by hand today).
 */
import genericPool from 'generic-pool';
import mysql from 'mysql2/promise';
import type { Connection } from 'mysql2/promise';
import { pino } from 'pino';
import { createPool as createFreshPool } from '../lib/index.js';

export interface Contender {
  readonly name: string;
  /** Borrow, run `sql`, give back. Rejects with whatever the user would see. */
  query(sql: string): Promise<void>;
  /** Borrow and give back, no statement: the pool's own overhead. */
  borrow(): Promise<void>;
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

export const CONTENDER_NAMES = ['fresh-pool', 'mysql2-pool', 'generic-pool', 'generic-pool+ping'] as const;

export function createContender(name: (typeof CONTENDER_NAMES)[number], options: ContenderOptions): Contender {
  switch (name) {
    case 'fresh-pool':
      return freshPool(options);
    case 'mysql2-pool':
      return mysql2Pool(options);
    case 'generic-pool':
      return genericPoolOf(options, false);
    case 'generic-pool+ping':
      return genericPoolOf(options, true);
  }
}

function freshPool({ url, size, connWaitAge }: ContenderOptions): Contender {
  const pool = createFreshPool({
    connection: url,
    max: size,
    acquireTimeout: 30_000,
    logger: pino({ level: 'silent' }),
    ...(connWaitAge === undefined ? {} : { connWaitAge }),
  });
  const noop = () => undefined;
  return {
    name: 'fresh-pool',
    query: async (sql) => {
      await pool.withConnection((conn) => conn.query(sql));
    },
    borrow: () => pool.withConnection(noop),
    pings: () => pool.stats().pings,
    end: () => pool.end(),
  };
}

function mysql2Pool({ url, size }: ContenderOptions): Contender {
  const pool = mysql.createPool({ uri: url, connectionLimit: size, maxIdle: size });
  return {
    name: 'mysql2-pool',
    query: async (sql) => {
      const conn = await pool.getConnection();
      try {
        await conn.query(sql);
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

function genericPoolOf({ url, size }: ContenderOptions, pingOnBorrow: boolean): Contender {
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
    name: pingOnBorrow ? 'generic-pool+ping' : 'generic-pool',
    // As generic-pool's own `use()` does: a connection whose statement failed is destroyed.
    query: async (sql) => {
      const conn = await pool.acquire();
      try {
        await conn.query(sql);
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
