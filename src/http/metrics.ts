import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

type LatencyChild = ReturnType<Histogram<'route' | 'method'>['labels']>;

/** One route and method: its latency series, and request counts by status (summed here, handed to prom-client on a scrape). */
interface Series {
  route: string;
  method: string;
  latency: LatencyChild;
  byStatus: Map<number, number>;
}

export class HttpMetrics {
  readonly registry = new Registry();
  /** Series by route pattern, then method: bounded by the routes and the methods Node's parser accepts. */
  private readonly series = new Map<string, Map<string, Series>>();

  readonly requests: Counter<'route' | 'method' | 'status'>;
  readonly latency = new Histogram({
    name: 'tessera_http_request_duration_seconds', help: 'HTTP request latency by route',
    labelNames: ['route', 'method'] as const, registers: [this.registry],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });

  constructor() {
    const series = this.series;
    this.requests = new Counter({
      name: 'tessera_http_requests_total', help: 'HTTP requests by route, method and status',
      labelNames: ['route', 'method', 'status'] as const, registers: [this.registry],
      // Counting per request is an integer add here; prom-client's label hashing runs once per scrape.
      collect() {
        this.reset();
        for (const byMethod of series.values()) {
          for (const s of byMethod.values()) {
            for (const [status, count] of s.byStatus) this.inc({ route: s.route, method: s.method, status: String(status) }, count);
          }
        }
      },
    });
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
    if (s === undefined) byMethod.set(method, (s = { route, method, latency: this.latency.labels(route, method), byStatus: new Map() }));
    s.byStatus.set(status, (s.byStatus.get(status) ?? 0) + 1);
    s.latency.observe(seconds);
  }
}
