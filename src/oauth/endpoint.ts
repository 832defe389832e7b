/**
 * What every OAuth endpoint shares: Cache-Control: no-store, the strict form body (or none), and
 * typed parameters. Endpoints receive parsed values; they never parse headers or bodies themselves.
 */
import type { Context, Middleware } from 'koa';
import { readFormBody, type FormParams } from '../http/body.js';

export interface OAuthRequest {
  /** The form body's parameters (empty when there was no body). */
  body: FormParams;
  requestId: string;
}

export type OAuthHandler = (ctx: Context, request: OAuthRequest) => Promise<void>;

/** Runs before the body is read, and throws to refuse the request (a rate limit): a refused request costs no parsing. */
export type OAuthAdmission = (ctx: Context) => Promise<void>;

export function oauthEndpoint(handler: OAuthHandler, admit?: OAuthAdmission): Middleware {
  return async (ctx) => {
    const res = ctx.res;
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Pragma', 'no-cache');
    if (admit) await admit(ctx);
    const body = ctx.req.method === 'POST' ? await readFormBody(ctx) : new Map<string, string>();
    await handler(ctx, { body, requestId: ctx.state.requestId as string });
  };
}
