/**
 * What every request goes through, in one middleware (one async frame instead of four): its id
 * (X-Request-Id), the JSON error bodies, the metrics, and the access log line.
 */
import type { Context, Middleware } from 'koa';
import type { Logger } from 'pino';
import { answerError, methodNotAllowedBody } from './errors.js';
import type { HttpMetrics } from './metrics.js';
import { requestIdFor } from './request-id.js';
import { rateLimitRefusals } from '../telemetry/metrics.js';
import { tracedFrame } from '../telemetry/request-span.js';

export function requestFrame(logger: Logger, metrics: HttpMetrics): Middleware {
  // With tracing off (decided before the app is built) the frame is used as it is: no span, no context.
  return tracedFrame(untracedFrame(logger, metrics));
}

function untracedFrame(logger: Logger, metrics: HttpMetrics): Middleware {
  return async (ctx, next) => {
    const start = performance.now();
    const req = ctx.req;
    const header = req.headers['x-request-id'];
    const requestId = requestIdFor(typeof header === 'string' ? header : undefined);
    ctx.state.requestId = requestId;
    ctx.res.setHeader('X-Request-Id', requestId);
    try {
      try {
        await next();
        if (ctx.response.status === 405) methodNotAllowedBody(ctx);
      } catch (error) {
        answerError(ctx, error, logger);
      }
    } finally {
      finish(ctx, logger, metrics, req.method ?? '', requestId, start);
    }
  };
}

function finish(ctx: Context, logger: Logger, metrics: HttpMetrics, method: string, requestId: string, start: number): void {
  const ms = performance.now() - start;
  const status = ctx.response.status;
  // No matched route (404, or 405 on a known path with another method): one label, never the raw path.
  const route = (ctx as unknown as { _matchedRoute?: string })._matchedRoute;
  const label = route === undefined ? 'unmatched' : String(route);
  metrics.observe(label, method, status, ms / 1000);
  if (status === 429) rateLimitRefusals.inc({ route: label });
  // One access-log line per request, without query strings (they may hold user codes) or headers.
  if (logger.isLevelEnabled('info')) {
    logger.info({ requestId, method, path: ctx.path, status, ms: Math.round(ms * 10) / 10 }, 'request');
  }
}
