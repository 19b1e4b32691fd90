/**
 * Knex's mysql2 dialect client, which Knex ships as untyped CommonJS under `lib/`: only the
 * members the Knex client of this library overrides or calls. Used to compile lib/knex; no
 * exported type refers to it, so the published declarations do not need it.
 */
declare module 'knex/lib/dialects/mysql2/index.js' {
  import type { Readable } from 'node:stream';
  import type { Knex } from 'knex';

  class Client_MySQL2 {
    constructor(config: Knex.Config);
    /** The configuration given to `knex()`, shallow-copied. */
    config: Knex.Config;
    /** Knex's copy of `config.connection`; `database()` reads `database` from it. */
    connectionSettings: { database?: string };
    /** The server version (`major.minor.patch`), null for "assume the latest"; read once by `checkVersion`. */
    version?: string | null;
    /** Set by `checkVersion` once the server's version was read or resolved from `config.version`. */
    _versionCheckPromise?: Promise<unknown>;
    /** Whether `.timeout(ms, { cancel: true })` is allowed (a prototype property). */
    canCancelQuery: boolean;
    logger: { warn(message: string): void };
    /** Reads `SELECT version()` on the connection (or resolves `config.version`), once per client; Knex 3.3 and later. */
    checkVersion?(connection: unknown): Promise<unknown>;
    acquireConnection(): Promise<unknown>;
    releaseConnection(connection: unknown): Promise<void>;
    acquireRawConnection(): Promise<unknown>;
    destroyRawConnection(connection: unknown): Promise<void>;
    initializePool(config?: unknown): void;
    cancelQuery(connectionToKill: unknown): Promise<unknown>;
    /** Streams a compiled query's rows into `stream`; resolves on its 'end', rejects on 'error'. */
    _stream(connection: unknown, obj: unknown, stream: Readable, options: unknown): Promise<unknown>;
    destroy(callback?: (err?: unknown) => void): Promise<void>;
    database(): string | undefined;
  }

  export = Client_MySQL2;
}
