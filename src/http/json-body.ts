/** JSON bodies for /graphql: a size limit (413) and a clear 400 for malformed JSON or bad UTF-8. */
import type { Middleware } from 'koa';
import { readBodyBytes } from './read-body.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function jsonBody(limit: number): Middleware {
  return async (ctx, next) => {
    if (ctx.method !== 'POST') return next();
    if (!ctx.is('application/json', 'application/graphql-response+json', '+json')) {
      // Not JSON: leave the body unread and let Apollo refuse it (CSRF prevention for the simple
      // content types, a 400 for the rest) instead of its integration's 500 for "no body parser".
      (ctx.request as unknown as { body: unknown }).body = {};
      return next();
    }
    let text: string;
    try {
      text = utf8.decode(await readBodyBytes(ctx.req, ctx.request.length, limit));
    } catch (error) {
      const tooLarge = (error as { type?: string }).type === 'entity.too.large';
      ctx.status = tooLarge ? 413 : 400;
      ctx.body = { errors: [{ message: tooLarge ? `the request body exceeds ${limit} bytes` : 'the request body is not valid UTF-8', extensions: { code: 'BAD_REQUEST' } }] };
      return;
    }
    let parsed: unknown;
    try {
      parsed = text === '' ? {} : JSON.parse(text);
    } catch {
      ctx.status = 400;
      ctx.body = { errors: [{ message: 'the request body is not valid JSON', extensions: { code: 'BAD_REQUEST' } }] };
      return;
    }
    // `null` or a bare value would reach Apollo's integration as "no body parser": a 500.
    if (parsed === null || typeof parsed !== 'object') {
      ctx.status = 400;
      ctx.body = { errors: [{ message: 'the request body must be a JSON object', extensions: { code: 'BAD_REQUEST' } }] };
      return;
    }
    (ctx.request as unknown as { body: unknown }).body = parsed;
    await next();
  };
}
