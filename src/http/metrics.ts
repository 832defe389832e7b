import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { OPERATIONAL_METRICS } from '../telemetry/metrics.js';

export class HttpMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'tessera_http_requests_total', help: 'HTTP requests by route, method and status',
    labelNames: ['route', 'method', 'status'] as const, registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'tessera_http_request_duration_seconds', help: 'HTTP request latency by route',
    labelNames: ['route', 'method'] as const, registers: [this.registry],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'tessera_' });
    // Token, device-flow, policy, JWKS, store and rate-limit metrics (process-wide, see there).
    for (const metric of OPERATIONAL_METRICS) this.registry.registerMetric(metric);
  }

  /**
   * One finished request, labelled by its matched route pattern (never the raw path, which would
   * explode cardinality; 'unmatched' for 404s and 405s).
   */
  observe(route: string, method: string, status: number, seconds: number): void {
    this.requests.inc({ route, method, status: String(status) });
    this.latency.observe({ route, method }, seconds);
  }
}
