/**
 * Strict application/x-www-form-urlencoded parsing for the OAuth endpoints: a size limit (413),
 * the content type checked, bad UTF-8 refused, and a parameter given twice refused (RFC 6749 §3.1).
 * Values are always strings, so `client_id[$ne]=` is just an odd client_id, never a query operator.
 */
import { isUtf8 } from 'node:buffer';
import type { Context } from 'koa';
import { OAuthError } from './oauth-error.js';
import { readBodyBytes } from './read-body.js';

export const FORM_BODY_LIMIT = 64 * 1024;

export type FormParams = Map<string, string>;

/**
 * The parameters that may appear more than once (RFC 8707 §2 `resource`, RFC 8693 §2.1 `audience`);
 * every other one given twice is refused. The map holds the first value; allValues gives them all.
 */
const REPEATABLE = new Set(['resource', 'audience']);
const repeated = new WeakMap<FormParams, Map<string, string[]>>();

/** Every value of a repeatable parameter, in order (none: an empty list). */
export function allValues(params: FormParams, name: string): string[] {
  const first = params.get(name);
  if (first === undefined) return [];
  return repeated.get(params)?.get(name) ?? [first];
}

/** `+` is a space, then percent-escapes; a piece with neither is taken as it is (decodeURIComponent is the costly part). */
function decodePiece(piece: string): string {
  const spaced = piece.indexOf('+') === -1 ? piece : piece.replaceAll('+', ' ');
  return piece.indexOf('%') === -1 ? spaced : decodeURIComponent(spaced);
}

/** The one decoding all OAuth parameters go through; throws invalid_request on malformed input. */
export function parseFormEncoded(raw: string, where: string): FormParams {
  const params: FormParams = new Map();
  // Walked with indexOf rather than split: no array of pairs per request.
  let start = 0;
  while (start < raw.length) {
    let amp = raw.indexOf('&', start);
    if (amp === -1) amp = raw.length;
    if (amp > start) {
      const eq = raw.indexOf('=', start);
      const hasValue = eq !== -1 && eq < amp;
      let name: string;
      let value: string;
      try {
        name = decodePiece(raw.slice(start, hasValue ? eq : amp));
        value = hasValue ? decodePiece(raw.slice(eq + 1, amp)) : '';
      } catch {
        throw new OAuthError('invalid_request', `the ${where} is not valid form encoding (bad percent-escape or UTF-8)`);
      }
      if (params.has(name)) {
        if (!REPEATABLE.has(name)) throw new OAuthError('invalid_request', `parameter '${name}' was given more than once`);
        let lists = repeated.get(params);
        if (!lists) repeated.set(params, (lists = new Map()));
        const list = lists.get(name) ?? [params.get(name)!];
        list.push(value);
        lists.set(name, list);
      } else params.set(name, value);
    }
    start = amp + 1;
  }
  return params;
}

type ContentTypeVerdict = 'form' | 'not-form' | 'not-utf8';

/**
 * The verdict on a Content-Type header value, worked out once per distinct value (clients send the
 * same few): type-is's parse for the media type, then the charset parameter.
 */
const verdicts = new Map<string, ContentTypeVerdict>();
const MAX_VERDICTS = 64;

function contentTypeVerdict(ctx: Context, contentType: string | undefined): ContentTypeVerdict {
  const known = contentType === undefined ? undefined : verdicts.get(contentType);
  if (known !== undefined) return known;
  let verdict: ContentTypeVerdict = 'form';
  if (!ctx.is('application/x-www-form-urlencoded')) verdict = 'not-form';
  else {
    const charset = /charset=([^;]+)/i.exec(contentType ?? '')?.[1]?.trim().toLowerCase().replaceAll('"', '');
    if (charset && charset !== 'utf-8' && charset !== 'utf8') verdict = 'not-utf8';
  }
  if (contentType !== undefined && verdicts.size < MAX_VERDICTS) verdicts.set(contentType, verdict);
  return verdict;
}

export async function readFormBody(ctx: Context): Promise<FormParams> {
  const headers = ctx.req.headers;
  const contentType = headers['content-type'];
  const contentLength = headers['content-length'];
  const transferEncoding = headers['transfer-encoding'];
  const parsedLength = contentLength === undefined || contentLength === '' ? NaN : Number.parseInt(contentLength, 10);
  const length = Number.isNaN(parsedLength) ? undefined : parsedLength;
  const typed = contentType !== undefined && contentType !== '' && contentType.split(';', 1)[0] !== '';
  const hasBody = typed || (length !== undefined && length > 0) || (transferEncoding !== undefined && transferEncoding !== '');
  if (!hasBody || length === 0) return new Map();
  // type-is sees no body without Transfer-Encoding or a numeric Content-Length: then it is not a form either.
  const verdict = transferEncoding === undefined && length === undefined ? 'not-form' : contentTypeVerdict(ctx, contentType);
  if (verdict === 'not-form') throw new OAuthError('invalid_request', 'the request body must be application/x-www-form-urlencoded');
  if (verdict === 'not-utf8') throw new OAuthError('invalid_request', 'the request body must be UTF-8');
  let buffer: Buffer;
  try {
    buffer = await readBodyBytes(ctx.req, length, FORM_BODY_LIMIT);
  } catch (error) {
    if ((error as { type?: string }).type === 'entity.too.large') throw new OAuthError('invalid_request', `the request body exceeds ${FORM_BODY_LIMIT} bytes`, undefined, 413);
    throw new OAuthError('invalid_request', 'the request body could not be read', String((error as Error).message));
  }
  if (!isUtf8(buffer)) throw new OAuthError('invalid_request', 'the request body is not valid UTF-8');
  // A leading byte order mark is dropped, as TextDecoder does.
  const start = buffer.length >= 3 && buffer[0] === 0xef && buffer[1] === 0xbb && buffer[2] === 0xbf ? 3 : 0;
  return parseFormEncoded(buffer.toString('utf8', start), 'request body');
}

/** The query string under the same rules (used where a parameter may come in the query). */
export function readQuery(ctx: Context): FormParams {
  return parseFormEncoded(ctx.querystring, 'query string');
}
