/**
 * The names this module emits. The `db.client.connection.*` metrics and their attributes are
 * OpenTelemetry's semantic conventions for database client connection pools (incubating, as of
 * `@opentelemetry/semantic-conventions` 1.45), written out here rather than imported: that
 * package's incubating entry is not meant to be a runtime dependency, and a copy pins the
 * names this library promises.
 */

/** Semantic-convention metric names, with their units (UCUM) and instrument kinds. */
export const SEMCONV_METRICS = {
  /** UpDownCounter, `{connection}`, by `db.client.connection.state`. */
  count: 'db.client.connection.count',
  /** UpDownCounter, `{connection}`. */
  idleMax: 'db.client.connection.idle.max',
  /** UpDownCounter, `{connection}`. */
  idleMin: 'db.client.connection.idle.min',
  /** UpDownCounter, `{connection}`; replaces the deprecated `db.client.connection.max`. */
  limit: 'db.client.connection.limit',
  /** UpDownCounter, `{request}`. */
  pendingRequests: 'db.client.connection.pending_requests',
  /** Counter, `{timeout}`. */
  timeouts: 'db.client.connection.timeouts',
  /** Histogram, `s`. */
  createTime: 'db.client.connection.create_time',
  /** Histogram, `s`. */
  waitTime: 'db.client.connection.wait_time',
  /** Histogram, `s`. */
  useTime: 'db.client.connection.use_time',
} as const;

/** Semantic-convention attribute: the pool's name (the pool's `name` option). */
export const ATTR_POOL_NAME = 'db.client.connection.pool.name';
/** Semantic-convention attribute: a connection's state, `idle` or `used`. */
export const ATTR_STATE = 'db.client.connection.state';

/** This library's own attributes: fixed names, whatever the metric `prefix`. */
export const ATTR = {
  /** A node pool's cluster (the cluster's `name`). */
  clusterName: 'mysql_fresh_pool.cluster.name',
  /** A node pool's node (the node's `name`). */
  nodeName: 'mysql_fresh_pool.node.name',
  /** Why a connection was closed (`maxAge`, `pingFailed`, `closedByServer`, ...). */
  evictionReason: 'mysql_fresh_pool.eviction.reason',
  /** The server's connection id (`CONNECTION_ID()`). */
  connectionId: 'mysql_fresh_pool.connection.id',
  /** How a borrow got its connection: `checked` or `waited` (see `AcquirePath`). */
  acquireVia: 'mysql_fresh_pool.acquire.via',
  /** ms a borrow waited, checks included. */
  waitMs: 'mysql_fresh_pool.wait_ms',
  /** Whether a ping was answered within `pingTimeout`. */
  pingOk: 'mysql_fresh_pool.ping.ok',
  /** What a ping was for: `borrow` or `statement`. */
  pingCause: 'mysql_fresh_pool.ping.cause',
  /** Why a ping failed: `pingFailed` or `pingTimeout`. */
  pingReason: 'mysql_fresh_pool.ping.reason',
  /** ms a ping took. */
  pingMs: 'mysql_fresh_pool.ping_ms',
  /** ms a connection had been idle when pinged. */
  idleMs: 'mysql_fresh_pool.idle_ms',
  /** Why a connection was dropped for a caller. */
  replaceReason: 'mysql_fresh_pool.replace.reason',
  /** Where it was dropped: `borrow` or `statement`. */
  replacePhase: 'mysql_fresh_pool.replace.phase',
  /** The connection that took its place before a statement. */
  replaceNewConnectionId: 'mysql_fresh_pool.replace.new_connection.id',
} as const;

/** The span events `registerPoolTracing` adds. */
export const SPAN_EVENTS = {
  /** A borrow that did not get an idle connection at once: it waited, or checked one first. */
  acquire: 'mysql_fresh_pool.acquire',
  /** A validation ping, for a borrow or before a statement. */
  ping: 'mysql_fresh_pool.ping',
  /** A connection found unfit and dropped for a borrow, or replaced before a statement. */
  replace: 'mysql_fresh_pool.replace',
} as const;
