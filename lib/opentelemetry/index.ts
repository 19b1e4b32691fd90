/**
 * OpenTelemetry for pools and clusters: metrics under the semantic conventions for database
 * connection pools, and span events for what the pool does on a caller's behalf. A separate
 * entry point (`mysql-fresh-pool/opentelemetry`): the library itself never imports
 * `@opentelemetry/api`, an optional peer dependency.
 *
 * Statement spans come from `@opentelemetry/instrumentation-mysql2`, registered by the
 * application before mysql2 is first loaded; nothing here is needed for them.
 */
export { METRICS_DEFAULTS, registerPoolMetrics, type PoolMetricsOptions } from './metrics.js';
export { registerPoolTracing } from './traces.js';
export { ATTR, ATTR_POOL_NAME, ATTR_STATE, SEMCONV_METRICS, SPAN_EVENTS } from './names.js';
export type { TelemetryTarget } from './targets.js';
