/**
 * The instrumentation points. They go through @opentelemetry/api only: until src/telemetry/otel.ts
 * registers the SDK (OTEL_EXPORTER_OTLP_ENDPOINT set), the global tracer is the API's no-op and a
 * span costs one small object, with no export, no context storage and no attribute copies.
 *
 * Attributes are ids, names and outcomes, never secrets or tokens: callers pass only what is safe.
 */
import { SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';

const tracer = trace.getTracer('tessera');

/** Set once the SDK is registered, so hot paths skip even building attribute objects when off. */
let enabled = false;

export function markTracingEnabled(): void {
  enabled = true;
}

export function tracingEnabled(): boolean {
  return enabled;
}

/** Runs `fn` inside a child span of the active one; an exception marks the span as an error. */
export async function inSpan<T>(name: string, attributes: Attributes | undefined, fn: (span: Span) => Promise<T>): Promise<T> {
  if (!enabled) return fn(NOOP_SPAN);
  return tracer.startActiveSpan(name, attributes ? { attributes } : {}, async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.name : 'error' });
      throw error;
    } finally {
      span.end();
    }
  });
}

/** Sets attributes on the request's span (and no-ops when tracing is off or no span is active). */
export function annotateRequest(attributes: Attributes): void {
  if (!enabled) return;
  const span = trace.getActiveSpan();
  if (span) span.setAttributes(attributes);
}

export { tracer };

const NOOP_SPAN: Span = trace.wrapSpanContext({ traceId: '00000000000000000000000000000000', spanId: '0000000000000000', traceFlags: 0 });
