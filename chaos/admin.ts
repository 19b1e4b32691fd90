/**
 * The orchestrator's own connections to the server, straight to its port (never through the
 * relay) and as root: the schema, the pool's dedicated user, the PROCESSLIST, KILL and the
 * server-wide settings. A connection lost to a fault (a restart) is reopened on next use.
 */
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';

/** The database the chaos workload runs in. */
export const CHAOS_DB = 'chaos';
/** Accounts of the bank; each starts with `START_BALANCE`. */
export const ACCOUNTS = 20;
export const START_BALANCE = 1_000;
/** Rows of the `holds` table, one per holder caller at most. */
export const HOLD_ROWS = 64;

/** The pool's own credentials, so its connections are told apart from the admin's. */
export interface PoolUser {
  user: string;
  password: string;
  /** False when the server would not create a user: the pool then uses the admin's. */
  dedicated: boolean;
}

/** One admin connection, reopened after it is lost. */
export class Admin {
  readonly #url: string;
  #conn: Promise<Connection> | undefined;

  /** @param url the server's admin URL (root); its database part is ignored */
  constructor(url: string) {
    const parsed = new URL(url);
    parsed.pathname = '/';
    this.#url = parsed.toString();
  }

  /**
   * Runs one statement. A lost connection is dropped and the statement tried once more on a
   * new one (what the admin runs is safe to repeat: reads, KILL, SET GLOBAL).
   */
  async query<T = RowDataPacket[]>(sql: string, values?: unknown[]): Promise<T> {
    try {
      return await this.#once<T>(sql, values);
    } catch (err) {
      if (!isLost(err)) throw err;
      return this.#once<T>(sql, values);
    }
  }

  async #once<T>(sql: string, values?: unknown[]): Promise<T> {
    this.#conn ??= mysql.createConnection({ uri: this.#url, connectTimeout: 2_000 }).then((conn) => {
      // A close while idle (a restart) must not crash the orchestrator; the next query notices.
      conn.on('error', () => undefined);
      return conn;
    });
    const pending = this.#conn;
    try {
      const conn = await pending;
      const [rows] = await conn.query(sql, values);
      return rows as T;
    } catch (err) {
      if (this.#conn === pending && isLost(err)) this.#drop();
      throw err;
    }
  }

  /** Closes the connection, if any. */
  async close(): Promise<void> {
    const pending = this.#conn;
    this.#conn = undefined;
    const conn = await pending?.catch(() => undefined);
    await conn?.end().catch(() => conn.destroy());
  }

  #drop(): void {
    const pending = this.#conn;
    this.#conn = undefined;
    void pending?.then((c) => c.destroy(), () => undefined);
  }
}

function isLost(err: unknown): boolean {
  const e = err as { fatal?: boolean; code?: string };
  return e?.fatal === true || e?.code === 'ECONNREFUSED' || e?.code === 'ECONNRESET' || e?.code === 'ETIMEDOUT' || e?.code === 'PROTOCOL_CONNECTION_LOST';
}

/**
 * Creates the chaos database afresh (accounts, the ledger of transfers, the write log, the
 * holds) and the pool's user `chaos` with rights on it only.
 */
export async function setUpSchema(admin: Admin, adminUrl: string): Promise<PoolUser> {
  await admin.query(`DROP DATABASE IF EXISTS ${CHAOS_DB}`);
  await admin.query(`CREATE DATABASE ${CHAOS_DB}`);
  await admin.query(`CREATE TABLE ${CHAOS_DB}.accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB`);
  await admin.query(`INSERT INTO ${CHAOS_DB}.accounts (id, balance) VALUES ${Array.from({ length: ACCOUNTS }, (_, i) => `(${i + 1}, ${START_BALANCE})`).join(', ')}`);
  // Every transfer writes its row in its own transaction: the ledger says which ones committed.
  await admin.query(
    `CREATE TABLE ${CHAOS_DB}.transfers (id INT PRIMARY KEY, src INT NOT NULL, dst INT NOT NULL, amount INT NOT NULL, kind VARCHAR(16) NOT NULL) ENGINE=InnoDB`,
  );
  await admin.query(`CREATE TABLE ${CHAOS_DB}.writes (k INT PRIMARY KEY, caller INT NOT NULL) ENGINE=InnoDB`);
  await admin.query(`CREATE TABLE ${CHAOS_DB}.holds (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB`);
  await admin.query(`INSERT INTO ${CHAOS_DB}.holds (id, n) VALUES ${Array.from({ length: HOLD_ROWS }, (_, i) => `(${i}, 0)`).join(', ')}`);
  const password = 'chaos-pw';
  try {
    // 127.0.0.1 and localhost as well as %: a server that resolves names would otherwise match
    // an anonymous ''@localhost before 'chaos'@'%'.
    for (const host of ['%', '127.0.0.1', 'localhost']) {
      await admin.query(`DROP USER IF EXISTS 'chaos'@'${host}'`);
      await admin.query(`CREATE USER 'chaos'@'${host}' IDENTIFIED BY '${password}'`);
      await admin.query(`GRANT ALL PRIVILEGES ON ${CHAOS_DB}.* TO 'chaos'@'${host}'`);
    }
    return { user: 'chaos', password, dedicated: true };
  } catch {
    // An external server may refuse CREATE USER: fall back to the admin's own credentials.
    const parsed = new URL(adminUrl);
    return { user: decodeURIComponent(parsed.username || 'root'), password: decodeURIComponent(parsed.password), dedicated: false };
  }
}

/** One of the pool's connections as the server lists it. */
export interface ProcessRow {
  id: number;
  command: string;
}

/** The pool's connections on the server: its user's (in the chaos database, without a dedicated user). */
export async function poolConnections(admin: Admin, user: PoolUser): Promise<ProcessRow[]> {
  const rows = await admin.query<Array<RowDataPacket & { ID: number; COMMAND: string; DB: string | null }>>(
    'SELECT ID, COMMAND, DB FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID() ORDER BY ID',
    [user.user],
  );
  // With the admin's own credentials, only connections in the chaos database are the pool's:
  // the admin's have none.
  return rows.filter((r) => user.dedicated || r.DB === CHAOS_DB).map((r) => ({ id: Number(r.ID), command: r.COMMAND }));
}

/** The bank's total and the number of accounts, read in one consistent snapshot. */
export async function bankTotal(admin: Admin): Promise<{ total: number; accounts: number }> {
  const rows = await admin.query<Array<RowDataPacket & { total: string | number; n: number }>>(
    `SELECT COALESCE(SUM(balance), 0) AS total, COUNT(*) AS n FROM ${CHAOS_DB}.accounts`,
  );
  return { total: Number(rows[0]!.total), accounts: Number(rows[0]!.n) };
}

/** What the database holds at the end of the run. */
export interface FinalState {
  writeKeys: Set<number>;
  transfers: Array<{ id: number; src: number; dst: number; amount: number; kind: string }>;
  balances: Map<number, number>;
}

/** Reads the write log, the ledger and the balances (after the pool has ended). */
export async function finalState(admin: Admin): Promise<FinalState> {
  const writes = await admin.query<Array<RowDataPacket & { k: number }>>(`SELECT k FROM ${CHAOS_DB}.writes`);
  const transfers = await admin.query<Array<RowDataPacket & { id: number; src: number; dst: number; amount: number; kind: string }>>(
    `SELECT id, src, dst, amount, kind FROM ${CHAOS_DB}.transfers`,
  );
  const accounts = await admin.query<Array<RowDataPacket & { id: number; balance: string | number }>>(`SELECT id, balance FROM ${CHAOS_DB}.accounts`);
  return {
    writeKeys: new Set(writes.map((r) => Number(r.k))),
    transfers: transfers.map((r) => ({ id: Number(r.id), src: Number(r.src), dst: Number(r.dst), amount: Number(r.amount), kind: String(r.kind) })),
    balances: new Map(accounts.map((r) => [Number(r.id), Number(r.balance)])),
  };
}
