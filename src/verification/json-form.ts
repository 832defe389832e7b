/**
 * The JSON form of POST /device, for programs and tests (contract): `Accept: application/json`,
 * the end user's credentials in HTTP Basic (username:password or username:app_password), and form
 * fields user_code and decision. Bodies are exactly the contract's; the request id is in X-Request-Id.
 */
import type { Context } from 'koa';
import type { Services } from '../domain/services.js';
import type { User } from '../domain/model.js';
import type { FailedSignInLimiter, WrongUserCodeLimiter } from '../domain/rate-limits.js';
import { readFormBody, type FormParams } from '../http/body.js';
import { OAuthError } from '../oauth/errors.js';
import { isPerson, isUsername } from '../domain/users.js';
import { lookupUserCode, recordDecision } from './decisions.js';
import { limitedSignIn } from './sign-in.js';

/** What this module uses of the services. */
type ServicesUsed = Pick<Services, 'appPasswords' | 'deviceFlow' | 'events' | 'users'>;

function answer(ctx: Context, status: number, body: Record<string, string>): void {
  ctx.status = status;
  ctx.body = body;
}

/** username:password from a Basic header, or null when the header is absent or malformed. */
export function parseUserBasic(header: string): { username: string; password: string } | null {
  const match = /^Basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(header.trim());
  if (!match || match[1]!.length > 8192 || match[1]!.length % 4 === 1) return null;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(match[1]!, 'base64'));
  } catch {
    return null;
  }
  const colon = text.indexOf(':');
  if (colon <= 0) return null;
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

function formDecoded(value: string): string {
  try {
    return decodeURIComponent(value.replaceAll('+', ' '));
  } catch {
    return value;
  }
}

export interface Credentials {
  username: string;
  password: string;
}

/**
 * The spellings of Basic credentials the server tries: as sent (RFC 7617) and, where that
 * differs, URL-decoded as clients that treat them like client credentials (RFC 6749 Appendix B)
 * send them. Only spellings that can name a user are kept: `%61lice` is tried as `alice`, never
 * as itself.
 */
export function credentialCandidates(sent: Credentials): Credentials[] {
  const decoded = { username: formDecoded(sent.username), password: formDecoded(sent.password) };
  const all = decoded.username === sent.username && decoded.password === sent.password ? [sent] : [sent, decoded];
  return all.filter((c) => isUsername(c.username) && c.password !== '');
}

/** The username a sign-in counts against: the one its spellings resolve to, or as sent when none can name a user. */
export function signInName(sent: Credentials, candidates: readonly Credentials[]): string {
  return candidates[0]?.username ?? sent.username;
}

/**
 * A person's credentials (only people approve devices: a service account's are refused like wrong
 * ones, and counted as a failed sign-in): an app password of that user (cheap hash lookup) or the
 * user's login password (argon2id).
 */
export async function authenticateUser(services: ServicesUsed, candidates: readonly Credentials[]): Promise<User | null> {
  const user = await authenticateAnyUser(services, candidates);
  return user && isPerson(user) ? user : null;
}

async function authenticateAnyUser(services: ServicesUsed, candidates: readonly Credentials[]): Promise<User | null> {
  for (const c of candidates) {
    const viaAppPassword = await services.appPasswords.verify(c.password, c.username);
    if (viaAppPassword) return viaAppPassword.user;
  }
  for (const c of candidates) {
    const user = await services.users.verifyPassword(c.username, c.password);
    if (user) return user;
  }
  return null;
}

export async function handleJsonDecision(ctx: Context, services: ServicesUsed, limiter: WrongUserCodeLimiter, signIns: FailedSignInLimiter): Promise<void> {
  const address = ctx.state.clientAddress as string;
  const requestId = ctx.state.requestId as string;
  const early = await limiter.check({ address });
  if (early.limited) {
    ctx.set('Retry-After', String(early.retryAfterSeconds));
    return answer(ctx, 429, { error: 'slow_down' });
  }

  let body: FormParams;
  try {
    body = await readFormBody(ctx);
  } catch (error) {
    if (error instanceof OAuthError) return answer(ctx, error.status === 413 ? 413 : 400, { error: 'invalid_request' });
    throw error;
  }

  const credentials = parseUserBasic(ctx.get('authorization'));
  let user: User | null = null;
  if (credentials) {
    const candidates = credentialCandidates(credentials);
    const username = signInName(credentials, candidates);
    const outcome = await limitedSignIn(signIns, { username, address, guesses: Math.max(1, candidates.length) }, () => authenticateUser(services, candidates));
    if (outcome.kind === 'limited' || outcome.kind === 'busy') {
      ctx.set('Retry-After', String(outcome.retryAfterSeconds));
      return answer(ctx, 429, { error: 'slow_down' });
    }
    if (outcome.kind === 'failed') {
      services.events.record({ action: 'LOGIN_FAILED', requestId, username: username.slice(0, 150), context: { via: 'device JSON form' } });
    } else {
      user = outcome.user;
    }
  }
  if (!user) {
    ctx.set('WWW-Authenticate', 'Basic realm="tessera", charset="UTF-8"');
    return answer(ctx, 401, { error: 'invalid_credentials' });
  }

  const userCode = body.get('user_code');
  const decision = body.get('decision');
  if (!userCode || (decision !== 'allow' && decision !== 'deny')) return answer(ctx, 400, { error: 'invalid_request' });

  const found = await lookupUserCode(services, limiter, userCode, { address, userId: user.id });
  switch (found.kind) {
    case 'limited':
      ctx.set('Retry-After', String(found.retryAfterSeconds));
      return answer(ctx, 429, { error: 'slow_down' });
    case 'unknown':
    case 'decided':
      return answer(ctx, 400, { error: 'invalid_user_code' });
    case 'expired':
      return answer(ctx, 400, { error: 'expired_user_code' });
    case 'pending':
      break;
  }
  const result = await recordDecision(services, { authorization: found.authorization, user, decision, requestId, via: 'json' });
  if (result.kind === 'expired') return answer(ctx, 400, { error: 'expired_user_code' });
  if (result.kind === 'already_decided') return answer(ctx, 400, { error: 'invalid_user_code' });
  answer(ctx, 200, {
    status: result.authorization.status === 'approved' ? 'approved' : 'denied',
    client_id: result.authorization.clientId,
    scope: result.authorization.scopes.join(' '),
  });
}
