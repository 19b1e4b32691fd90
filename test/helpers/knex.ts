/** Knex on a fresh pool for one test: the pool's log captured, both closed at the test's teardown. */
import type { Test } from 'tap';
import knex, { type Knex } from 'knex';
import { createPool, type FreshPoolConfig } from '../../lib/index.js';
import { freshPoolClient, type FreshPoolClientOptions } from '../../lib/knex/index.js';
import { captureLog } from './log.js';

export function freshKnex(t: Test, url: string, extra: Partial<FreshPoolConfig> = {}, options?: FreshPoolClientOptions) {
  const log = captureLog();
  const pool = createPool({ connection: url, max: 2, logger: log.logger, ...extra });
  const db: Knex = knex({ client: freshPoolClient(pool, options) });
  t.teardown(async () => {
    await db.destroy();
    await pool.end();
  });
  return { pool, db, log };
}

/** The server's id of the connection a query (or a transaction) ran on. */
export async function knexConnectionId(db: Knex | Knex.Transaction): Promise<number> {
  const [rows] = (await db.raw('SELECT CONNECTION_ID() AS id')) as [Array<{ id: number }>, unknown];
  return Number(rows[0]!.id);
}
