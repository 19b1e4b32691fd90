/** SQL snippets several tests share. */
import type { RowDataPacket } from 'mysql2/promise';
import type { FreshPool, PoolConnection } from '../../lib/index.js';

export type IdRow = RowDataPacket & { id: number };

/** The statement that names a connection. */
export const ID_SQL = 'SELECT CONNECTION_ID() AS id';

/** The server's id for `conn` (`CONNECTION_ID()`). */
export async function connectionId(conn: PoolConnection): Promise<number> {
  const [rows] = await conn.query<IdRow[]>(ID_SQL);
  return rows[0]!.id;
}

/** Opens `n` distinct connections in `pool` (held together) and returns their ids. */
export function openConnections(pool: FreshPool, n: number): Promise<number[]> {
  return Promise.all(
    Array.from({ length: n }, () =>
      pool.withConnection(async (conn) => {
        await conn.query('SELECT SLEEP(0.05)');
        return connectionId(conn);
      }),
    ),
  );
}
