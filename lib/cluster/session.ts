/**
 * Read-your-writes: a session remembers the GTIDs of its own writes (reported by MariaDB in
 * the OK packet when the cluster tracks `last_gtid`: no extra round trip) and reads only where
 * they have been applied. On a replica, one `MASTER_GTID_WAIT` (bounded) before the read; not
 * caught up in time, the read goes to the writer. On Galera, the read runs with
 * `wsrep_sync_wait = 1` (a causal read). Reads before the session's first write cost nothing.
 */
import type { FieldPacket, QueryOptions, QueryResult } from 'mysql2/promise';
import { InvalidArgumentError } from '../errors.js';
import type { PoolLog } from '../log.js';
import type { Lease, PoolConnection } from '../pool/index.js';
import { transactionOn, type TransactionOptions } from '../transaction.js';
import type { Need } from './router.js';
import type { NodeState } from './topology.js';

/** A borrow the cluster routed, with the node it went to. */
export interface RoutedLease {
  readonly lease: Lease;
  readonly node: NodeState;
}

/** What a session needs of its cluster. */
export interface SessionRouter {
  borrow(need: Need): Promise<RoutedLease>;
  readonly log: PoolLog;
  /** ms the library's own statements (resetting `wsrep_sync_wait`) may take: `pingTimeout`. */
  readonly statementTimeoutMs: number;
}

const GTID_LIST = /^\d+-\d+-\d+(,\d+-\d+-\d+)*$/;

/**
 * The token of a session that wrote but learned no GTID (a Galera node without a binary log
 * reports none): a later session given it reads causally on Galera.
 */
export const CAUSAL_TOKEN = 'causal';

/** GTIDs by replication domain, the highest sequence number of each. */
export class GtidSet {
  readonly #byDomain = new Map<string, { server: string; seq: bigint }>();

  /**
   * Parses a token (`0-1-42,1-2-7`, or `causal`: writes with no GTID known); throws
   * `InvalidArgumentError` naming `field` when malformed.
   */
  static parse(token: string | undefined, field: string): GtidSet {
    const set = new GtidSet();
    if (token === undefined || token === '' || token === CAUSAL_TOKEN) return set;
    if (typeof token !== 'string' || !GTID_LIST.test(token)) throw new InvalidArgumentError(field, token, 'expected a GTID list such as 0-1-42');
    set.add(token);
    return set;
  }

  /** Adds GTIDs; keeps the later one of each domain (domains compared as numbers: `00` is `0`). */
  add(gtids: string): void {
    for (const gtid of gtids.split(',')) {
      const parts = gtid.trim().split('-');
      if (parts.length !== 3 || !parts.every((p) => /^\d+$/.test(p))) continue;
      const domain = BigInt(parts[0]!).toString();
      const server = BigInt(parts[1]!).toString();
      const n = BigInt(parts[2]!);
      const known = this.#byDomain.get(domain);
      if (known === undefined || n > known.seq) this.#byDomain.set(domain, { server, seq: n });
    }
  }

  /** The list for `MASTER_GTID_WAIT` and for tokens; undefined when empty. */
  toString(): string {
    return [...this.#byDomain].map(([domain, { server, seq }]) => `${domain}-${server}-${seq}`).join(',');
  }

  get empty(): boolean {
    return this.#byDomain.size === 0;
  }
}

/**
 * A unit of work whose reads see its own writes, even on replicas. Get one per request with
 * `cluster.session()`; pass `token()` to a later request (`cluster.session({ after })`) so its
 * reads see this one's writes too. Same borrowing API as the cluster.
 */
export class ClusterSession {
  readonly #router: SessionRouter;
  readonly #waitSeconds: number;
  readonly #written: GtidSet;
  // This session has sent a write borrow. On Galera a causal read needs no GTID, and a node
  // without binary logging reports none: what matters is that something may have been written.
  #wrote = false;

  /** Prefer `cluster.session()`. `waitMs` bounds the wait on a replica. */
  constructor(router: SessionRouter, after: GtidSet, waitMs: number, afterWrites = false) {
    this.#router = router;
    this.#written = after;
    this.#waitSeconds = waitMs / 1000;
    this.#wrote = afterWrites;
  }

  /**
   * The GTIDs this session's reads wait for (its writes and `after`), or undefined before any
   * write: hand it to `cluster.session({ after: token })` in the next request.
   */
  token(): string | undefined {
    if (!this.#written.empty) return this.#written.toString();
    return this.#wrote ? CAUSAL_TOKEN : undefined;
  }

  /**
   * As `cluster.withConnection`: a write borrow records the GTIDs it committed; a `readOnly`
   * borrow goes to a node that has applied them.
   */
  async withConnection<T>(fn: (conn: PoolConnection) => T | Promise<T>, options?: { readOnly?: boolean }): Promise<T> {
    if (typeof fn !== 'function') throw new InvalidArgumentError('fn', fn, 'expected a function');
    const readOnly = options?.readOnly;
    if (readOnly !== undefined && typeof readOnly !== 'boolean') throw new InvalidArgumentError('readOnly', readOnly, 'expected a boolean');
    return readOnly === true ? this.#read(fn) : this.#write(fn);
  }

  /** As `cluster.withTransaction`; a `readOnly` one reads this session's writes. */
  withTransaction<T>(fn: (conn: PoolConnection) => T | Promise<T>, options?: TransactionOptions): Promise<T> {
    return transactionOn(fn, options, this.#router.log, (run, readOnly) => this.withConnection(run, { readOnly }));
  }

  /** One query on the writer, or with `{ readOnly: true }` where this session's writes are applied. */
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: unknown, options?: { readOnly?: boolean }): Promise<[T, FieldPacket[]]> {
    return this.withConnection((conn) => conn.query<T>(sql as string, values as never), options);
  }

  /** One prepared statement, routed as `query`. */
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: unknown, options?: { readOnly?: boolean }): Promise<[T, FieldPacket[]]> {
    return this.withConnection((conn) => conn.execute<T>(sql as string, values as never), options);
  }

  async #write<T>(fn: (conn: PoolConnection) => T | Promise<T>): Promise<T> {
    const { lease } = await this.#router.borrow('writer');
    const before = lease.conn.lastGtid;
    try {
      return await fn(lease.conn);
    } finally {
      // Whether fn succeeded or not: what it committed is on the writer either way.
      this.#wrote = true;
      const after = lease.conn.lastGtid;
      if (after !== undefined && after !== before) this.#written.add(after);
      lease.release();
    }
  }

  async #read<T>(fn: (conn: PoolConnection) => T | Promise<T>): Promise<T> {
    const { lease, node } = await this.#router.borrow('reader');
    // Every Galera node may lag in applying, the writer too (with galeraWriters 'all').
    if (node.kind === 'galera') return this.#wrote || !this.#written.empty ? causalRead(lease, fn, this.#router.statementTimeoutMs) : runThenRelease(lease, fn);
    if (node.role === 'writer' || this.#written.empty) return runThenRelease(lease, fn);
    let caughtUp = false;
    try {
      // Bounded on the client too: a replica frozen mid-wait must not hold the read forever.
      const [rows] = (await lease.conn.query(
        { sql: 'SELECT MASTER_GTID_WAIT(?, ?) AS waited', timeout: this.#waitSeconds * 1000 + this.#router.statementTimeoutMs },
        [this.#written.toString(), this.#waitSeconds],
      )) as unknown as [Array<{ waited: unknown }>];
      // 0: applied; -1: timed out; NULL: an error. Only 0 will do.
      const waited = rows[0]?.waited;
      caughtUp = waited === 0 || waited === '0' || waited === BigInt(0);
    } catch {
      // The wait failed (the replica went away): nothing of the caller's has run; the writer has it all.
    }
    if (caughtUp) return runThenRelease(lease, fn);
    lease.release();
    return this.#write(fn);
  }
}

async function runThenRelease<T>(lease: Lease, fn: (conn: PoolConnection) => T | Promise<T>): Promise<T> {
  try {
    return await fn(lease.conn);
  } finally {
    lease.release();
  }
}

// Galera: the node waits until it has applied every write certified before the read. The
// session's own setting is put back after (it may come from the server or initSql), within
// `timeoutMs`: a connection that cannot be put back is closed, never lent with it.
async function causalRead<T>(lease: Lease, fn: (conn: PoolConnection) => T | Promise<T>, timeoutMs: number): Promise<T> {
  const conn = lease.conn;
  let set = false;
  try {
    await conn.query({ sql: 'SET @fresh_pool_sync_wait = @@session.wsrep_sync_wait, SESSION wsrep_sync_wait = 1', timeout: timeoutMs });
    set = true;
    return await fn(conn);
  } finally {
    if (set) await conn.query({ sql: 'SET SESSION wsrep_sync_wait = @fresh_pool_sync_wait', timeout: timeoutMs }).catch(() => conn.destroy());
    lease.release();
  }
}
