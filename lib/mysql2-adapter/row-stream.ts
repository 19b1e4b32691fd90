/**
 * A streamed query: the rows of a query read as an object-mode `Readable`, as mysql2's
 * `Query.stream()` gives them. It cannot go through the lent connection's tracked methods (it
 * needs mysql2's callback connection), so it takes its turn in the command order itself.
 */
import { Readable } from 'node:stream';
import type { FieldPacket, QueryOptions } from 'mysql2/promise';
import { ConnectionReleasedError } from '../errors.js';
import { attempt } from './callbacks.js';
import type { Command, CommandQueue } from './command-queue.js';
import type { StreamOptions } from './query.js';

// The parts of mysql2's callback connection and of its `Query` that a streamed query needs.
interface CoreQuery {
  on(event: 'fields', listener: (fields: FieldPacket[] | undefined) => void): this;
  on(event: 'result', listener: (row: unknown, index: number) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'end', listener: () => void): this;
}

interface CoreConnection {
  query(sql: string | QueryOptions, values: unknown): CoreQuery;
  pause(): void;
  resume(): void;
  on(event: 'error', listener: (err: Error) => void): this;
  off(event: 'error', listener: (err: Error) => void): this;
}

/**
 * Called once a streamed query is over on the connection, as mysql2's `Query` emits `'end'`:
 * every row received (read or not), or failed (`err`), or never sent.
 */
export type StreamOver = (err: Error | undefined) => void;

/**
 * Sends a streamed query in its turn (`command`, reserved in `queue`; undefined when the
 * connection was given back, and the stream fails with `ConnectionReleasedError`). `open`
 * gives mysql2's callback connection once it is checked, as any statement is (a dead
 * connection is replaced, or a lost transaction rejects). `onOver` is called exactly once,
 * never synchronously.
 */
export function streamInTurn(
  queue: CommandQueue,
  command: Command | undefined,
  open: () => Promise<unknown>,
  sql: string | QueryOptions,
  values: unknown,
  options: StreamOptions | undefined,
  onOver: StreamOver = () => {},
): Readable {
  // Set while the query runs: reading resumes a connection paused for a full buffer, and so
  // does leaving early, so the rest of the rows can be dropped.
  let running: CoreConnection | undefined;
  const out = new Readable({
    objectMode: true,
    highWaterMark: options?.highWaterMark ?? 16,
    read: () => running?.resume(),
    destroy: (err, callback) => {
      running?.resume();
      callback(err);
    },
  });
  if (command === undefined) {
    const err = new ConnectionReleasedError();
    out.destroy(err);
    // The caller subscribes to the query's events after stream() returns.
    process.nextTick(onOver, err);
    return out;
  }
  queue.fill(
    command,
    (done) => {
      attempt(open).then(
        (core) => {
          running = core as CoreConnection;
          pipeRows(running, sql, values, out, (err) => {
            running = undefined;
            done();
            onOver(err);
          });
        },
        (err: unknown) => {
          out.destroy(err as Error);
          done();
          onOver(err as Error);
        },
      );
    },
    (err) => {
      out.destroy(err);
      // Aborted at once when the connection was destroyed before stream() was called.
      process.nextTick(onOver, err);
    },
  );
  return out;
}

// Feeds the rows of a mysql2 `Query` sent without a callback into `out`, as mysql2's
// `Query.stream()` does, and calls `done` once the query is over on the connection, with the
// query's error if it failed. Rows that come after `out` was destroyed (its reader left early)
// are read and dropped, so the connection is free for the next command rather than paused
// for good.
function pipeRows(core: CoreConnection, sql: string | QueryOptions, values: unknown, out: Readable, done: (err: Error | undefined) => void): void {
  let over = false;
  let failure: Error | undefined;
  const finish = () => {
    if (over) return;
    over = true;
    core.off('error', onLost);
    done(failure);
  };
  // mysql2 tells only the connection when it is lost under a query without a callback; a
  // connection already closed refuses the query the same way, synchronously.
  const onLost = (err: Error) => {
    failure ??= err;
    out.destroy(err);
    finish();
  };
  core.on('error', onLost);
  const query = core.query(sql, values);
  query.on('fields', (fields) => {
    if (!out.destroyed) out.emit('fields', fields);
  });
  query.on('result', (row, index) => {
    if (out.destroyed) return;
    if (!out.push(row)) core.pause();
    out.emit('result', row, index);
  });
  query.on('error', (err) => {
    failure ??= err;
    out.destroy(err);
  });
  query.on('end', () => {
    finish();
    if (!out.destroyed) out.push(null);
  });
}
