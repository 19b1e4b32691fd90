/**
 * An OpenTelemetry meter provider whose metrics are read on demand: the SDK's in-memory
 * exporter behind a periodic reader that never fires by itself (each `collect()` flushes it).
 * Cumulative temporality, so every collection reports totals since the start.
 */
import type { Attributes } from '@opentelemetry/api';
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type DataPoint,
  type Histogram,
  type MetricData,
} from '@opentelemetry/sdk-metrics';

export interface MetricsHarness {
  readonly provider: MeterProvider;
  /** The metrics as of now: one collection, every instrument's points. */
  collect(): Promise<MetricData[]>;
  shutdown(): Promise<void>;
}

export function metricsHarness(): MetricsHarness {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  // An hour: it only ever exports when collect() flushes it.
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000, exportTimeoutMillis: 30_000 });
  const provider = new MeterProvider({ readers: [reader] });
  return {
    provider,
    async collect() {
      exporter.reset();
      await reader.forceFlush();
      // Nothing to report: the reader exports nothing at all.
      const exported = exporter.getMetrics();
      if (exported.length > 1) throw new Error(`expected at most one export, got ${exported.length}`);
      return exported[0]?.scopeMetrics.flatMap((s) => s.metrics) ?? [];
    },
    shutdown: () => provider.shutdown(),
  };
}

/** The metric named `name` in a collection, or undefined. */
export function metricNamed(metrics: MetricData[], name: string): MetricData | undefined {
  const found = metrics.filter((m) => m.descriptor.name === name);
  if (found.length > 1) throw new Error(`${found.length} metrics named ${name}`);
  return found[0];
}

/** The points of `name` whose attributes are exactly `attributes`. */
export function pointsOf(metrics: MetricData[], name: string, attributes: Attributes): DataPoint<unknown>[] {
  const metric = metricNamed(metrics, name);
  const want = JSON.stringify(sorted(attributes));
  return ((metric?.dataPoints ?? []) as DataPoint<unknown>[]).filter((p) => JSON.stringify(sorted(p.attributes)) === want);
}

/** The value of the single point of a sum or gauge `name` with exactly `attributes`; undefined when there is none. */
export function valueOf(metrics: MetricData[], name: string, attributes: Attributes): number | undefined {
  const points = pointsOf(metrics, name, attributes);
  if (points.length > 1) throw new Error(`${points.length} points of ${name} with ${JSON.stringify(attributes)}`);
  return points[0]?.value as number | undefined;
}

/** The single histogram point of `name` with exactly `attributes`; undefined when there is none. */
export function histogramOf(metrics: MetricData[], name: string, attributes: Attributes): Histogram | undefined {
  const metric = metricNamed(metrics, name);
  if (metric !== undefined && metric.dataPointType !== DataPointType.HISTOGRAM) throw new Error(`${name} is not a histogram`);
  const points = pointsOf(metrics, name, attributes);
  if (points.length > 1) throw new Error(`${points.length} points of ${name}`);
  return points[0]?.value as Histogram | undefined;
}

function sorted(attributes: Attributes): Array<[string, unknown]> {
  return Object.entries(attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
