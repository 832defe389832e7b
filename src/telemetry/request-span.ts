/**
 * One server span per request, named by endpoint and grant once they are known
 * (`POST /application/o/token/ client_credentials`).
 */
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import type { Middleware } from 'koa';
import { tracer, tracingEnabled } from './trace.js';
import { routeOf } from '../http/routing.js';

/** `frame` itself when tracing is off; otherwise `frame` run inside the request's span. */
export function tracedFrame(frame: Middleware): Middleware {
  if (!tracingEnabled()) return frame;
  return async (ctx, next) => {
    const method = ctx.req.method ?? '';
    const span = tracer.startSpan(method, {
      kind: SpanKind.SERVER,
      // The path without its query string (which may hold a user code); no headers.
      attributes: { 'http.request.method': method, 'url.path': ctx.path },
    });
    try {
      await context.with(trace.setSpan(context.active(), span), () => frame(ctx, next));
    } finally {
      const route = routeOf(ctx);
      const grant = ctx.state.grantType as string | undefined;
      const status = ctx.response.status;
      span.updateName(`${method} ${route ?? 'unmatched'}${grant ? ` ${grant}` : ''}`);
      if (typeof ctx.state.requestId === 'string') span.setAttribute('tessera.request_id', ctx.state.requestId);
      if (route !== undefined) span.setAttribute('http.route', route);
      if (grant) span.setAttribute('oauth.grant_type', grant);
      span.setAttribute('http.response.status_code', status);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    }
  };
}
