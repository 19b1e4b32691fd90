/**
 * What only the pool knows, added to the caller's trace: a borrow that waited, a ping before
 * use, a dead connection dropped or replaced. Statement spans themselves come from
 * `@opentelemetry/instrumentation-mysql2`, which sees the pool's statements as any mysql2
 * connection's.
 *
 * The pool emits these events from inside the borrow or the statement, so the async context is
 * the caller's and `trace.getActiveSpan()` is the caller's span. Events from the pool's own
 * timers (keep-alive pings) run in no caller's context and are left out.
 */
import { trace, type Attributes, type Span } from '@opentelemetry/api';
import type { AcquireEvent, PingEvent, ReplaceEvent } from '../events.js';
import { ATTR, SPAN_EVENTS } from './names.js';
import { poolSources, type TelemetryTarget } from './targets.js';

/**
 * Adds span events to the active span (the caller's span around `withConnection`, or whatever
 * span is active when a statement runs) for what the pool does on the caller's behalf:
 * - `mysql_fresh_pool.acquire`: a borrow that did not get an idle connection at once, with
 *   `mysql_fresh_pool.acquire.via` (`waited`: none was idle or fit, it waited for one given back
 *   or newly made; `checked`: an idle one was checked first) and `mysql_fresh_pool.wait_ms`;
 * - `mysql_fresh_pool.ping`: a validation ping, for the borrow or before a statement, with
 *   `mysql_fresh_pool.ping.ok`, `.ping.cause` (`borrow`, `statement`), `.ping.reason` (on a
 *   failure: `pingFailed`, `pingTimeout`), `mysql_fresh_pool.ping_ms` and
 *   `mysql_fresh_pool.idle_ms` (how long the connection had sat idle);
 * - `mysql_fresh_pool.replace`: a connection found unfit and dropped, with
 *   `mysql_fresh_pool.replace.reason`, `.replace.phase` (`borrow`: the borrow went on to another
 *   connection; `statement`: a new connection took its place before the statement was sent) and
 *   `.replace.new_connection.id` (`statement` only).
 *
 * Each carries `db.client.connection.pool.name`, `mysql_fresh_pool.connection.id` (the
 * server's `CONNECTION_ID()`; for `replace`, the dropped connection), and for a node pool
 * `mysql_fresh_pool.cluster.name` and `mysql_fresh_pool.node.name`. A borrow lent an idle
 * connection at once adds nothing. Nothing is added when no span is active or it is not
 * recording.
 *
 * Returns a function that removes the listeners. Throws `InvalidArgumentError` (field `pools`)
 * for something that is neither a pool nor a cluster, or when two pools share a name.
 */
export function registerPoolTracing(pools: TelemetryTarget | readonly TelemetryTarget[]): () => void {
  const watched = poolSources(pools).map(({ pool, attributes: base }) => {
    const listeners = {
      acquire: (e: AcquireEvent) => {
        if (e.via === 'idle') return;
        recordingSpan()?.addEvent(SPAN_EVENTS.acquire, { ...base, [ATTR.connectionId]: e.connId, [ATTR.acquireVia]: e.via, [ATTR.waitMs]: e.waitMs });
      },
      ping: (e: PingEvent) => {
        if (e.cause === 'keepAlive') return;
        const span = recordingSpan();
        if (span === undefined) return;
        const attributes: Attributes = {
          ...base,
          [ATTR.connectionId]: e.connId,
          [ATTR.pingOk]: e.ok,
          [ATTR.pingCause]: e.cause,
          [ATTR.pingMs]: e.pingMs,
          [ATTR.idleMs]: e.idleMs,
        };
        if (e.reason !== undefined) attributes[ATTR.pingReason] = e.reason;
        span.addEvent(SPAN_EVENTS.ping, attributes);
      },
      replace: (e: ReplaceEvent) => {
        const span = recordingSpan();
        if (span === undefined) return;
        const attributes: Attributes = { ...base, [ATTR.connectionId]: e.connId, [ATTR.replaceReason]: e.reason, [ATTR.replacePhase]: e.phase };
        if (e.newConnId !== undefined) attributes[ATTR.replaceNewConnectionId] = e.newConnId;
        span.addEvent(SPAN_EVENTS.replace, attributes);
      },
    };
    pool.on('acquire', listeners.acquire).on('ping', listeners.ping).on('replace', listeners.replace);
    return { pool, listeners };
  });

  let registered = true;
  return () => {
    if (!registered) return;
    registered = false;
    for (const { pool, listeners } of watched) {
      pool.off('acquire', listeners.acquire).off('ping', listeners.ping).off('replace', listeners.replace);
    }
  };
}

// The attributes are built only for a span that records.
function recordingSpan(): Span | undefined {
  const span = trace.getActiveSpan();
  return span !== undefined && span.isRecording() ? span : undefined;
}
