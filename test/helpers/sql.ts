/** SQL snippets several tests share. */
import type { RowDataPacket } from 'mysql2/promise';
import type { PoolConnection } from '../../lib/index.js';

export type IdRow = RowDataPacket & { id: number };

/** The server's id for `conn` (`CONNECTION_ID()`). */
export async function connectionId(conn: PoolConnection): Promise<number> {
  const [rows] = await conn.query<IdRow[]>('SELECT CONNECTION_ID() AS id');
  return rows[0]!.id;
}
