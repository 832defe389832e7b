/**
 * Turns errors into the contract's JSON bodies: {"error", "error_description", "request_id"}.
 * OAuthError keeps its code and status; anything unexpected is logged with its stack and answered
 * as a plain server_error, with no internals in the body.
 */
import type { Context } from 'koa';
import type { Logger } from 'pino';
import { OAuthError } from './oauth-error.js';
import { StoreUnavailableError } from '../store/errors.js';

/** Answers a thrown error on `ctx` (status, headers, JSON body). */
export function answerError(ctx: Context, error: unknown, logger: Logger): void {
  const requestId = ctx.state.requestId as string | undefined;
  if (error instanceof OAuthError) {
    // The private detail goes to the log under the request id, never into the body.
    if (error.detail) logger.info({ requestId, error: error.code, detail: error.detail, path: ctx.path }, 'oauth error');
    ctx.status = error.status;
    for (const name in error.headers) ctx.set(name, error.headers[name]!);
    ctx.body = { error: error.code, error_description: error.description, request_id: requestId };
    return;
  }
  const httpError = error as { status?: number; expose?: boolean; message?: string };
  if (typeof httpError.status === 'number' && httpError.status >= 400 && httpError.status < 500) {
    ctx.status = httpError.status;
    ctx.body = {
      error: 'invalid_request',
      error_description: httpError.expose ? httpError.message : 'the request could not be processed',
      request_id: requestId,
    };
    return;
  }
  const unavailable = error instanceof StoreUnavailableError;
  logger.error({ err: error, requestId, path: ctx.path }, 'request failed');
  ctx.status = unavailable ? 503 : 500;
  ctx.body = {
    error: unavailable ? 'temporarily_unavailable' : 'server_error',
    error_description: unavailable ? 'the store is not answering; try again shortly' : 'an unexpected error occurred',
    request_id: requestId,
  };
}

/** The JSON body of a 405 (the router answers a known path with another method after the 404 fallback ran). */
export function methodNotAllowedBody(ctx: Context): void {
  ctx.body = { error: 'invalid_request', error_description: `${ctx.method} is not allowed on ${ctx.path}`, request_id: ctx.state.requestId as string | undefined };
}
