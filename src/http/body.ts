/**
 * Strict application/x-www-form-urlencoded parsing for the OAuth endpoints: a size limit (413),
 * the content type checked, bad UTF-8 refused, and a parameter given twice refused (RFC 6749 §3.1).
 * Values are always strings, so `client_id[$ne]=` is just an odd client_id, never a query operator.
 */
import type { Context } from 'koa';
import getRawBody from 'raw-body';
import { OAuthError } from '../oauth/errors.js';

export const FORM_BODY_LIMIT = 64 * 1024;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export type FormParams = Map<string, string>;

/** The one decoding all OAuth parameters go through; throws invalid_request on malformed input. */
export function parseFormEncoded(raw: string, where: string): FormParams {
  const params: FormParams = new Map();
  if (raw === '') return params;
  for (const pair of raw.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const rawName = eq === -1 ? pair : pair.slice(0, eq);
    const rawValue = eq === -1 ? '' : pair.slice(eq + 1);
    let name: string;
    let value: string;
    try {
      name = decodeURIComponent(rawName.replaceAll('+', ' '));
      value = decodeURIComponent(rawValue.replaceAll('+', ' '));
    } catch {
      throw new OAuthError('invalid_request', `the ${where} is not valid form encoding (bad percent-escape or UTF-8)`);
    }
    if (params.has(name)) throw new OAuthError('invalid_request', `parameter '${name}' was given more than once`);
    params.set(name, value);
  }
  return params;
}

export async function readFormBody(ctx: Context): Promise<FormParams> {
  const length = ctx.request.length;
  const hasBody = ctx.request.type !== '' || (length !== undefined && length > 0) || ctx.get('transfer-encoding') !== '';
  if (!hasBody || length === 0) return new Map();
  if (!ctx.is('application/x-www-form-urlencoded')) {
    throw new OAuthError('invalid_request', 'the request body must be application/x-www-form-urlencoded');
  }
  const charset = /charset=([^;]+)/i.exec(ctx.get('content-type'))?.[1]?.trim().toLowerCase().replaceAll('"', '');
  if (charset && charset !== 'utf-8' && charset !== 'utf8') {
    throw new OAuthError('invalid_request', 'the request body must be UTF-8');
  }
  let buffer: Buffer;
  try {
    buffer = await getRawBody(ctx.req, { limit: FORM_BODY_LIMIT, length: length ?? null });
  } catch (error) {
    const e = error as { type?: string; status?: number };
    if (e.type === 'entity.too.large') throw new OAuthError('invalid_request', `the request body exceeds ${FORM_BODY_LIMIT} bytes`, undefined, 413);
    throw new OAuthError('invalid_request', 'the request body could not be read', String((error as Error).message));
  }
  let text: string;
  try {
    text = utf8.decode(buffer);
  } catch {
    throw new OAuthError('invalid_request', 'the request body is not valid UTF-8');
  }
  return parseFormEncoded(text, 'request body');
}

/** The query string under the same rules (used where a parameter may come in the query). */
export function readQuery(ctx: Context): FormParams {
  return parseFormEncoded(ctx.querystring, 'query string');
}
