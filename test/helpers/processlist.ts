/** What the server's PROCESSLIST says of one user's connections: counts, and a clean-up. */
import { sleep, type TestServer } from './mariadb.js';

/** Connections `user` has open on the server now. */
export async function connectionsOf(server: TestServer, user: string): Promise<number> {
  const rows = await server.query<Array<{ n: number }>>('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ?', [user]);
  return Number(rows[0]!.n);
}

/**
 * Connections `user` has open once the server is done closing: polls until there are none,
 * for at most `ms` (the server drops a thread a moment after its client's COM_QUIT).
 */
export async function connectionsLeft(server: TestServer, user: string, ms = 2_000): Promise<number> {
  const until = Date.now() + ms;
  let n = await connectionsOf(server, user);
  while (n !== 0 && Date.now() < until) {
    await sleep(50);
    n = await connectionsOf(server, user);
  }
  return n;
}

/** Kills whatever a failed test left open for `user`, so the next test starts clean. */
export async function killAll(server: TestServer, user: string): Promise<void> {
  const rows = await server.query<Array<{ ID: number }>>('SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?', [user]);
  for (const { ID } of rows) await server.query(`KILL CONNECTION ${Number(ID)}`).catch(() => undefined);
}
