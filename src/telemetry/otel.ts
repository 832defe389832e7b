/**
 * Tracing over OTLP/HTTP with OpenTelemetry's SDK, configured by the standard OTEL_* variables
 * (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, _HEADERS, _TIMEOUT,
 * OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, ...). Without an endpoint the
 * SDK is never loaded (dynamic import) and the instrumentation points stay no-ops.
 */
import type { Logger } from 'pino';
import { markTracingEnabled } from './trace.js';
import { VERSION } from '../version.js';

export interface Tracing {
  /** Sends the spans still buffered (on shutdown). */
  flush(): Promise<void>;
}

const OFF: Tracing = { flush: async () => undefined };
let started: Promise<Tracing> | null = null;

export function tracingRequested(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  if (env.OTEL_TRACES_EXPORTER !== undefined && env.OTEL_TRACES_EXPORTER.split(',').map((s) => s.trim()).includes('none')) return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

/** Starts tracing once per process (the tracer provider is global), when the environment asks for it. */
export function startTracing(logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<Tracing> {
  if (!tracingRequested(env)) return Promise.resolve(OFF);
  return (started ??= register(logger));
}

async function register(logger: Logger): Promise<Tracing> {
  const [{ NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, resources, { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION }] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/semantic-conventions'),
  ]);
  // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (the env detector) override the defaults.
  const resource = resources.defaultResource()
    .merge(resources.resourceFromAttributes({ [ATTR_SERVICE_NAME]: 'tessera', [ATTR_SERVICE_VERSION]: VERSION }))
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  const exporter = new OTLPTraceExporter();
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(exporter)] });
  provider.register();
  markTracingEnabled();
  logger.info({ endpoint: originOf(process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_ENDPOINT) }, 'tracing to OTLP/HTTP');
  return { flush: () => provider.forceFlush() };
}

/** Only the origin: an endpoint URL may carry credentials in its user info or query. */
function originOf(url: string | undefined): string | null {
  try {
    return url ? new URL(url).origin : null;
  } catch {
    return null;
  }
}
