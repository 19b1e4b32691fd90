/**
 * Session setup that every new connection gets before it is first lent, and again after each
 * COM_RESET_CONNECTION: `initSql` statements, then the `onConnect` hook (HikariCP's
 * connectionInitSql, Knex's afterCreate, mysql2's pool 'connection' event). The pool makes
 * connections on its own (on borrow, before a statement, after a reset), so state set by hand
 * on one connection would silently vanish on its replacement.
 */
import type { Connection } from 'mysql2/promise';
import { ConfigError, ConnectionSetupError } from './errors.js';

/** Runs on each new connection (and after each reset) before it is lent; may be async. */
export type OnConnect = (conn: Connection) => void | Promise<void>;

/** The validated setup; empty when neither option is set. */
export interface SessionSetup {
  readonly initSql: readonly string[];
  readonly onConnect: OnConnect | undefined;
}

/** Checks `initSql` (a statement or a list) and `onConnect`; throws `ConfigError` naming the field. */
export function resolveSessionSetup(initSql: unknown, onConnect: unknown): SessionSetup {
  const list = initSql === undefined ? [] : Array.isArray(initSql) ? initSql : [initSql];
  list.forEach((sql, i) => {
    if (typeof sql !== 'string' || sql.trim() === '') {
      throw new ConfigError(Array.isArray(initSql) ? `initSql[${i}]` : 'initSql', sql, 'expected a non-empty SQL statement');
    }
  });
  if (onConnect !== undefined && typeof onConnect !== 'function') throw new ConfigError('onConnect', onConnect, 'expected a function');
  return Object.freeze({ initSql: Object.freeze([...(list as string[])]), onConnect: onConnect as OnConnect | undefined });
}

/** Whether there is anything to run. */
export function hasSessionSetup(setup: SessionSetup): boolean {
  return setup.initSql.length !== 0 || setup.onConnect !== undefined;
}

/**
 * Runs the setup on `conn`. Rejects with `ConnectionSetupError` naming the step that failed;
 * the caller closes the connection.
 */
export async function runSessionSetup(conn: Connection, setup: SessionSetup): Promise<void> {
  for (const sql of setup.initSql) {
    try {
      await conn.query(sql);
    } catch (err) {
      throw new ConnectionSetupError(`initSql "${sql.length > 80 ? `${sql.slice(0, 77)}...` : sql}"`, err);
    }
  }
  if (setup.onConnect !== undefined) {
    try {
      await setup.onConnect(conn);
    } catch (err) {
      throw new ConnectionSetupError('onConnect', err);
    }
  }
}
