/**
 * The pool's logger: the user's (pino, `console`, or anything with pino's four level
 * methods) or a default pino, bound once, when the pool is built, to the pool's name, so
 * every line the pool writes carries `pool`. Nothing is allocated per borrow: a line costs
 * only when it is written.
 */
import { Console } from 'node:console';
import { pino } from 'pino';

/**
 * A logger the pool accepts as `logger`: a pino logger, `console`, or any object with
 * `debug`, `info`, `warn` and `error` taking pino's call shape, fields first and a fixed
 * message second (`log.warn({ connId, reason }, 'connection evicted')`). Errors travel as
 * `err` fields holding the `Error` itself (pino's `err` serializer prints its type, message,
 * code and stack).
 *
 * With `child` (pino, bunyan) the pool logs through `child({ pool: name })`, made once. A
 * `console` gets the message first and the fields after it (`console.warn(msg, fields)`),
 * every level included (`debug` lines go to `console.debug`). Any other object gets the
 * fields with `pool` added, in pino's call shape.
 */
export interface FreshPoolLogger {
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
  /** A logger that adds `bindings` to every line (pino's `child`). Optional. */
  child?(bindings: { pool: string }): FreshPoolLogger;
}

/** What the pool's parts log through: the four levels, every line already carrying `pool`. */
export interface PoolLog {
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/**
 * The pool's log: `logger` bound to the pool's `name`, or, when no logger was given, pino at
 * level `info`, named `mysql-fresh-pool`, writing to stdout.
 */
export function poolLog(logger: FreshPoolLogger | undefined, name: string): PoolLog {
  if (logger === undefined) return pino({ name: 'mysql-fresh-pool', level: 'info' }).child({ pool: name });
  if (logger === console || logger instanceof Console) return consoleLog(logger as unknown as Console, name);
  if (typeof logger.child === 'function') {
    const child = logger.child({ pool: name }) as unknown;
    if (hasLevels(child)) return child;
  }
  return withPoolField(logger, name);
}

/** Whether `value` has the four level methods. */
export function hasLevels(value: unknown): value is PoolLog {
  return value !== null && typeof value === 'object' && LOG_LEVELS.every((m) => typeof (value as Record<string, unknown>)[m] === 'function');
}

function consoleLog(c: Console, name: string): PoolLog {
  return {
    debug: (fields, msg) => c.debug(msg, { pool: name, ...fields }),
    info: (fields, msg) => c.info(msg, { pool: name, ...fields }),
    warn: (fields, msg) => c.warn(msg, { pool: name, ...fields }),
    error: (fields, msg) => c.error(msg, { pool: name, ...fields }),
  };
}

function withPoolField(logger: FreshPoolLogger, name: string): PoolLog {
  return {
    debug: (fields, msg) => logger.debug({ pool: name, ...fields }, msg),
    info: (fields, msg) => logger.info({ pool: name, ...fields }, msg),
    warn: (fields, msg) => logger.warn({ pool: name, ...fields }, msg),
    error: (fields, msg) => logger.error({ pool: name, ...fields }, msg),
  };
}
