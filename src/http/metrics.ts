import { Counter, Histogram, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue, type MetricValueWithName } from 'prom-client';

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** One route and method: request counts by status and the latency histogram, summed here per request. */
interface Series {
  labels: { route: string; method: string };
  byStatus: Map<number, number>;
  /** Requests per latency bucket (not cumulative); the last slot is above the largest bound. */
  buckets: number[];
  sum: number;
  count: number;
}

type SeriesSource = () => Iterable<Series>;

/**
 * prom-client's counter and histogram hash their label object on every call (about 1 µs a request
 * for the two); here a request is an integer add in its series, and prom-client's metric objects
 * (names, help, types, exposition format) read the sums when scraped.
 */
const COUNTER = { name: 'tessera_http_requests_total', help: 'HTTP requests by route, method and status', type: 'counter', aggregator: 'sum' } as const;
const HISTOGRAM = { name: 'tessera_http_request_duration_seconds', help: 'HTTP request latency by route', type: 'histogram', aggregator: 'sum' } as const;

class RequestCounter extends Counter<'route' | 'method' | 'status'> {
  // Set after super(), whose constructor already calls reset().
  private source: SeriesSource | undefined;

  constructor(source: SeriesSource, registry: Registry) {
    super({ name: COUNTER.name, help: COUNTER.help, labelNames: ['route', 'method', 'status'] as const, registers: [registry] });
    this.source = source;
  }

  override async get(): Promise<MetricObjectWithValues<MetricValue<'route' | 'method' | 'status'>>> {
    const values: MetricValue<'route' | 'method' | 'status'>[] = [];
    for (const s of this.source?.() ?? []) {
      for (const [status, count] of s.byStatus) values.push({ labels: { ...s.labels, status: String(status) }, value: count });
    }
    return { ...COUNTER, values } as unknown as MetricObjectWithValues<MetricValue<'route' | 'method' | 'status'>>;
  }

  override reset(): void {
    if (!this.source) return super.reset();
    for (const s of this.source()) s.byStatus.clear();
  }
}

class LatencyHistogram extends Histogram<'route' | 'method'> {
  private source: SeriesSource | undefined;

  constructor(source: SeriesSource, registry: Registry) {
    super({ name: HISTOGRAM.name, help: HISTOGRAM.help, labelNames: ['route', 'method'] as const, registers: [registry], buckets: LATENCY_BUCKETS });
    this.source = source;
  }

  /** The registry's text exposition reads this; the shape is prom-client's own (bucket labels `le`, the series' labels shared). */
  async getForPromString(): Promise<MetricObjectWithValues<MetricValueWithName<'route' | 'method'>>> {
    const values: (MetricValueWithName<'route' | 'method'> & { sharedLabels: Series['labels']; exemplar: null })[] = [];
    const bucketName = `${HISTOGRAM.name}_bucket`;
    for (const s of this.source?.() ?? []) {
      if (s.count === 0) continue;
      let cumulative = 0;
      LATENCY_BUCKETS.forEach((le, i) => {
        cumulative += s.buckets[i]!;
        values.push({ labels: { le } as never, sharedLabels: s.labels, value: cumulative, metricName: bucketName, exemplar: null });
      });
      values.push(
        { labels: { le: '+Inf' } as never, sharedLabels: s.labels, value: s.count, metricName: bucketName, exemplar: null },
        { labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${HISTOGRAM.name}_sum`, exemplar: null },
        { labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${HISTOGRAM.name}_count`, exemplar: null },
      );
    }
    return { ...HISTOGRAM, values } as unknown as MetricObjectWithValues<MetricValueWithName<'route' | 'method'>>;
  }

  override async get(): Promise<MetricObjectWithValues<MetricValueWithName<'route' | 'method'>>> {
    const data = await this.getForPromString();
    data.values = data.values.map((v) => {
      const { sharedLabels, ...value } = v as typeof v & { sharedLabels: Series['labels'] };
      return { ...value, labels: { ...value.labels, ...sharedLabels } };
    });
    return data;
  }

  override reset(): void {
    if (!this.source) return super.reset();
    for (const s of this.source()) {
      s.buckets.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}

export class HttpMetrics {
  readonly registry = new Registry();
  /** Series by route pattern, then method: bounded by the routes and the methods Node's parser accepts. */
  private readonly series = new Map<string, Map<string, Series>>();
  private readonly all = (): Iterable<Series> => [...this.series.values()].flatMap((byMethod) => [...byMethod.values()]);
  readonly requests = new RequestCounter(this.all, this.registry);
  readonly latency = new LatencyHistogram(this.all, this.registry);

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'tessera_' });
  }

  /**
   * One finished request, labelled by its matched route pattern (never the raw path, which would
   * explode cardinality; 'unmatched' for 404s and 405s).
   */
  observe(route: string, method: string, status: number, seconds: number): void {
    let byMethod = this.series.get(route);
    if (byMethod === undefined) this.series.set(route, (byMethod = new Map()));
    let s = byMethod.get(method);
    if (s === undefined) {
      s = { labels: { route, method }, byStatus: new Map(), buckets: new Array<number>(LATENCY_BUCKETS.length + 1).fill(0), sum: 0, count: 0 };
      byMethod.set(method, s);
    }
    s.byStatus.set(status, (s.byStatus.get(status) ?? 0) + 1);
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]!) i++;
    s.buckets[i]!++;
    s.sum += seconds;
    s.count++;
  }
}
