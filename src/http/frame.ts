/**
 * What every request goes through, in one middleware (one async frame instead of four): its id
 * (X-Request-Id, always the server's own), its client address, the JSON error bodies, the metrics,
 * and the access log line.
 */
import type { Context, Middleware } from 'koa';
import type { Logger } from 'pino';
import { answerError, methodNotAllowedBody } from './errors.js';
import type { HttpMetrics } from './metrics.js';
import { clientRequestIdOf, newRequestId } from './request-id.js';
import { clientAddressResolver } from './client-address.js';
import type { EventLog } from '../domain/events.js';
import { rateLimitRefusals } from '../telemetry/metrics.js';
import { tracedFrame } from '../telemetry/request-span.js';
import { routeOf } from './routing.js';

export interface FrameOptions {
  logger: Logger;
  metrics: HttpMetrics;
  events: Pick<EventLog, 'beginRequest' | 'endRequest'>;
  trustProxy: readonly string[];
}

export function requestFrame(options: FrameOptions): Middleware {
  // With tracing off (decided before the app is built) the frame is used as it is: no span, no context.
  return tracedFrame(untracedFrame(options));
}

function untracedFrame({ logger, metrics, events, trustProxy }: FrameOptions): Middleware {
  const clientAddressOf = clientAddressResolver(trustProxy);
  return async (ctx, next) => {
    const start = performance.now();
    const req = ctx.req;
    const requestId = newRequestId();
    const clientAddress = clientAddressOf(req.socket.remoteAddress, req.headers['x-forwarded-for']);
    ctx.state.requestId = requestId;
    ctx.state.clientAddress = clientAddress;
    ctx.res.setHeader('X-Request-Id', requestId);
    const clientRequestId = clientRequestIdOf(req.headers['x-request-id']);
    events.beginRequest(requestId, { clientAddress, clientRequestId });
    try {
      try {
        await next();
        if (ctx.response.status === 405) methodNotAllowedBody(ctx);
      } catch (error) {
        answerError(ctx, error, logger);
      }
    } finally {
      events.endRequest(requestId);
      finish(ctx, logger, metrics, req.method ?? '', requestId, clientRequestId, start);
    }
  };
}

function finish(ctx: Context, logger: Logger, metrics: HttpMetrics, method: string, requestId: string, clientRequestId: string | null, start: number): void {
  const ms = performance.now() - start;
  const status = ctx.response.status;
  // No matched route (404, or 405 on a known path with another method): one label, never the raw path.
  const route = routeOf(ctx);
  const label = route ?? 'unmatched';
  metrics.observe(label, method, status, ms / 1000);
  if (status === 429) rateLimitRefusals.inc({ route: label });
  // One access-log line per request, without query strings (they may hold user codes) or headers.
  if (logger.isLevelEnabled('info')) {
    const line = { requestId, method, path: ctx.path, status, ms: Math.round(ms * 10) / 10 };
    logger.info(clientRequestId === null ? line : { ...line, clientRequestId }, 'request');
  }
}
