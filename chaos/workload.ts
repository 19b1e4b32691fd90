/**
 * The calls the chaos callers make, one function per kind. Each draws its parameters from
 * the caller's own seeded stream before its first await, and records what the orchestrator
 * must later find in the database: every write whose call resolved, and what became of
 * each transfer.
 */
import { CommitOutcomeUnknownError, TransactionLostError, type PoolConnection } from '../lib/index.js';
import { ACCOUNTS } from './admin.js';
import type { Call, WorkloadEnv } from './call.js';
import { certainlyNotSent, DeliberateError } from './classify.js';
import type { JobKind } from './protocol.js';
import type { Rng } from './rng.js';
import { POOL_SETTINGS } from './settings.js';

type Job = (env: WorkloadEnv, call: Call, rng: Rng) => Promise<void>;

const READ_SQL = 'SELECT id, balance FROM accounts WHERE id = ?';
const WRITE_SQL = 'INSERT INTO writes (k, caller) VALUES (?, ?)';
const LEDGER_SQL = 'INSERT INTO transfers (id, src, dst, amount, kind) VALUES (?, ?, ?, ?, ?)';

/** Mixed callers: reads, writes, transfers and the misbehaving calls. */
export const MIXED_WEIGHTS: Readonly<Partial<Record<JobKind, number>>> = {
  read: 14,
  readExecute: 5,
  readAdapter: 8,
  slowRead: 5,
  write: 12,
  writeExecute: 5,
  writeAdapter: 7,
  transfer: 16,
  transferAdapter: 7,
  txThrow: 3,
  leftOpen: 3,
  dangling: 5,
};

/** Holder callers: a connection kept across pauses longer than connWaitAge. */
export const HOLDER_WEIGHTS: Readonly<Partial<Record<JobKind, number>>> = { hold: 3, holdTx: 1 };

const account = (rng: Rng) => rng.int(1, ACCOUNTS);

// An autocommit write: resolved means it must be in the table; rejected before it was sent
// means it must not.
async function write(env: WorkloadEnv, key: number, send: () => PromiseLike<unknown>): Promise<void> {
  try {
    await send();
  } catch (err) {
    if (certainlyNotSent(err)) env.outcomes.writeNotSent(key);
    throw err;
  }
  env.outcomes.writeResolved(key);
}

/** A pause longer than connWaitAge, so the next statement checks the connection first. */
function holdPauseMs(rng: Rng): number {
  return POOL_SETTINGS.connWaitAge + rng.int(20, 1_300);
}

/** Two distinct accounts, an amount, and the lock order (lower id first: no deadlocks). */
function transferParams(rng: Rng) {
  const src = account(rng);
  let dst = account(rng);
  if (dst === src) dst = (src % ACCOUNTS) + 1;
  return { src, dst, amount: rng.int(1, 50), lo: Math.min(src, dst), hi: Math.max(src, dst) };
}

/** The one method a transfer needs: a lent connection and the adapter's both have it. */
interface Queryable {
  query(sql: string, values: Array<string | number>): PromiseLike<unknown>;
}

async function moveMoney(conn: Queryable, call: Call, id: number, p: ReturnType<typeof transferParams>): Promise<void> {
  await call.q(conn.query('SELECT id FROM accounts WHERE id IN (?, ?) ORDER BY id FOR UPDATE', [p.lo, p.hi]));
  await call.q(conn.query('UPDATE accounts SET balance = balance - ? WHERE id = ?', [p.amount, p.src]));
  await call.q(conn.query('UPDATE accounts SET balance = balance + ? WHERE id = ?', [p.amount, p.dst]));
  await call.q(conn.query(LEDGER_SQL, [id, p.src, p.dst, p.amount, 'transfer']));
}

/** Every job, by kind. */
export const JOBS: Readonly<Record<JobKind, Job>> = {
  async read(env, call, rng) {
    await call.q(env.pool.query(READ_SQL, [account(rng)]));
  },

  async readExecute(env, call, rng) {
    await call.q(env.pool.execute(READ_SQL, [account(rng)]));
  },

  // Kysely drives the adapter with callbacks, Drizzle with promises: both.
  async readAdapter(env, call, rng) {
    const id = account(rng);
    const viaCallback = rng.chance(0.5);
    const conn = await env.adapter.getConnection();
    try {
      if (viaCallback) {
        await call.q(new Promise((resolve, reject) => conn.query(READ_SQL, [id], (err, rows) => (err ? reject(err) : resolve(rows)))));
      } else {
        await call.q(conn.query(READ_SQL, [id]));
      }
      await call.q(conn.query('SELECT COUNT(*) AS n FROM writes WHERE caller = ?', [env.caller]));
    } finally {
      conn.release();
    }
  },

  // Longer statements, so more of them are in flight when a fault lands.
  async slowRead(env, call, rng) {
    await call.q(env.pool.query('SELECT SLEEP(?) AS s', [rng.int(20, 200) / 1_000]));
  },

  async write(env, call) {
    const key = env.nextKey();
    await write(env, key, () => call.q(env.pool.query(WRITE_SQL, [key, env.caller])));
  },

  async writeExecute(env, call) {
    const key = env.nextKey();
    await write(env, key, () => call.q(env.pool.execute(WRITE_SQL, [key, env.caller])));
  },

  async writeAdapter(env, call, rng) {
    const key = env.nextKey();
    if (rng.chance(0.5)) {
      await write(env, key, () => call.q(env.adapter.query(WRITE_SQL, [key, env.caller])));
      return;
    }
    await write(env, key, async () => {
      const conn = await env.adapter.getConnection();
      try {
        await call.q(conn.query(WRITE_SQL, [key, env.caller]));
      } finally {
        conn.release();
      }
    });
  },

  async transfer(env, call, rng) {
    const p = transferParams(rng);
    const id = env.nextTransferId();
    let fnDone = false;
    try {
      await env.pool.withTransaction(async (conn) => {
        await moveMoney(conn, call, id, p);
        fnDone = true;
      });
    } catch (err) {
      // Only a COMMIT that was sent and lost leaves the outcome open.
      const unknown = err instanceof CommitOutcomeUnknownError || (fnDone && !(err instanceof TransactionLostError));
      env.outcomes.transfer(id, unknown ? 'unknown' : 'rolledBack');
      throw err;
    }
    env.outcomes.transfer(id, 'committed');
  },

  // Drizzle's way: getConnection(), BEGIN / COMMIT as statements, release().
  async transferAdapter(env, call, rng) {
    const p = transferParams(rng);
    const id = env.nextTransferId();
    const conn = await env.adapter.getConnection();
    let commitSent = false;
    try {
      await call.q(conn.beginTransaction());
      await moveMoney(conn, call, id, p);
      commitSent = true;
      await call.q(conn.commit());
    } catch (err) {
      if (!commitSent) await conn.rollback().catch(() => undefined);
      env.outcomes.transfer(id, commitSent && !(err instanceof TransactionLostError) ? 'unknown' : 'rolledBack');
      throw err;
    } finally {
      conn.release();
    }
    env.outcomes.transfer(id, 'committed');
  },

  // A transaction that throws: its +1 and its ledger row must never be seen.
  async txThrow(env, call, rng) {
    const id = env.nextTransferId();
    const acc = account(rng);
    env.outcomes.transfer(id, 'rolledBack');
    await env.pool.withTransaction(async (conn) => {
      await call.q(conn.query('UPDATE accounts SET balance = balance + 1 WHERE id = ?', [acc]));
      await call.q(conn.query(LEDGER_SQL, [id, acc, acc, 1, 'poison']));
      throw new DeliberateError('transaction thrown on purpose');
    });
  },

  // A transaction opened by hand and never finished: the pool must roll it back on return.
  async leftOpen(env, call, rng) {
    const id = env.nextTransferId();
    const acc = account(rng);
    const throws = rng.chance(0.5);
    env.outcomes.transfer(id, 'rolledBack');
    await env.pool.withConnection(async (conn) => {
      await call.q(conn.query('START TRANSACTION'));
      await call.q(conn.query('UPDATE accounts SET balance = balance + 1 WHERE id = ?', [acc]));
      await call.q(conn.query(LEDGER_SQL, [id, acc, acc, 1, 'poison']));
      if (throws) throw new DeliberateError('left a transaction open and threw');
    });
  },

  // A statement still running when the function returns (a forgotten await).
  async dangling(env, call, rng) {
    const first = rng.chance(0.5);
    const key = rng.chance(0.5) ? env.nextKey() : undefined;
    const sleepS = rng.int(10, 150) / 1_000;
    await env.pool.withConnection(async (conn) => {
      if (first) await call.q(conn.query('SELECT 1'));
      const statement = key === undefined ? conn.query('SELECT SLEEP(?)', [sleepS]) : conn.query(WRITE_SQL, [key, env.caller]);
      env.dangle(statement, key);
    });
  },

  async hold(env, call, rng) {
    const viaLease = rng.chance(0.4);
    const pausesMs = Array.from({ length: rng.int(1, 2) }, () => holdPauseMs(rng));
    const key = rng.chance(0.5) ? env.nextKey() : undefined;
    const work = async (conn: PoolConnection) => {
      await call.q(conn.query('SELECT CONNECTION_ID() AS id'));
      for (const ms of pausesMs) {
        await call.pause(ms);
        await call.q(conn.query('SELECT n FROM holds WHERE id = ?', [env.caller]));
      }
      if (key !== undefined) await write(env, key, () => call.q(conn.query(WRITE_SQL, [key, env.caller])));
    };
    if (!viaLease) {
      await env.pool.withConnection(work);
      return;
    }
    const lease = await env.pool.lease();
    try {
      await work(lease.conn);
    } finally {
      lease.release();
    }
  },

  // A transaction kept open across a pause: a connection lost meanwhile is TransactionLostError.
  async holdTx(env, call, rng) {
    const pauseMs = holdPauseMs(rng);
    await env.pool.withTransaction(async (conn) => {
      await call.q(conn.query('UPDATE holds SET n = n + 1 WHERE id = ?', [env.caller]));
      await call.pause(pauseMs);
      await call.q(conn.query('UPDATE holds SET n = n + 1 WHERE id = ?', [env.caller]));
    });
  },
};
