/**
 * OpenTelemetry tracing for one test file, set up as this module is evaluated: spans go to an
 * in-memory exporter, and `@opentelemetry/instrumentation-mysql2` is enabled. Import it before
 * any module that loads mysql2 (the library, the server helpers): the instrumentation patches
 * mysql2's `lib/connection.js` as mysql2 require()s it, so it must be in place first, as an
 * application's telemetry setup must be.
 */
import { createRequire } from 'node:module';
import { trace, type SpanContext } from '@opentelemetry/api';
import { MySQL2Instrumentation } from '@opentelemetry/instrumentation-mysql2';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

const require = createRequire(import.meta.url);
const mysql2Loaded = (): boolean => Object.keys(require.cache).some((path) => /[\\/]mysql2[\\/]lib[\\/]connection\.js$/.test(path));

/** Whether mysql2's connection module was already loaded when this setup ran (it must not have been). */
export const mysql2LoadedBeforeSetup = mysql2Loaded();

/** Every span ended, kept in memory. */
export const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
// The global tracer provider, and the AsyncLocalStorage context manager the spans' parents need.
provider.register();
/** Enabled on construction; reads the global tracer provider. */
export const instrumentation = new MySQL2Instrumentation();

/** The tests' own tracer, for the caller's spans around the pool's work. */
export const tracer = trace.getTracer('mysql-fresh-pool-test');

/** The scope name instrumentation-mysql2's spans carry. */
export const MYSQL2_SCOPE = '@opentelemetry/instrumentation-mysql2';

/** The spans whose parent is `parent`, in start order. */
export function childrenOf(parent: SpanContext): ReadableSpan[] {
  return exporter
    .getFinishedSpans()
    .filter((s) => s.parentSpanContext?.spanId === parent.spanId && s.parentSpanContext.traceId === parent.traceId)
    .sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]);
}

/** Runs `fn` inside a new active span named `name`, ended when `fn` settles; returns `fn`'s result and the span's context. */
export async function inSpan<T>(name: string, fn: () => Promise<T>): Promise<{ value: T; context: SpanContext }> {
  return tracer.startActiveSpan(name, async (span) => {
    try {
      return { value: await fn(), context: span.spanContext() };
    } finally {
      span.end();
    }
  });
}
