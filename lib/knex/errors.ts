/**
 * The errors the Knex client raises itself. They reuse the library's classes and codes, so
 * code that matches on `code` treats them as it treats the pool's own.
 */
import { PoolClosedError, UnsupportedOperationError } from '../errors.js';

/**
 * A query or transaction was started on a Knex instance after its `destroy()`. `code` is
 * `ERR_FRESH_POOL_CLOSED`, as for a borrow after `pool.end()`: this Knex lends no more
 * connections, although the pool underneath may still be open to other code (with
 * `endPoolOnDestroy: false`). `knex.initialize()` opens the Knex instance again.
 */
export class KnexDestroyedError extends PoolClosedError {
  constructor() {
    super();
    this.message = 'This Knex instance was destroyed: knex.destroy() was called, it lends no more connections (knex.initialize() reopens it)';
  }
}

/**
 * A Knex client method this library does not provide, as `UnsupportedOperationError`
 * (`ERR_FRESH_POOL_UNSUPPORTED`, `.operation`), its message naming the Knex client rather than
 * the mysql2 adapter.
 */
export function knexUnsupported(operation: string, hint: string): UnsupportedOperationError {
  const err = new UnsupportedOperationError(operation, hint);
  err.message = `${operation}() is not supported by the Knex client of mysql-fresh-pool: ${hint}`;
  return err;
}
