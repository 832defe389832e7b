/**
 * GET/POST /device: the verification page for people (sign in → enter or confirm the code →
 * allow/deny → done), and its JSON form for programs (json-form.ts) on POST with
 * Accept: application/json. Not an OAuth endpoint, but the form body goes through the same strict
 * parser. Redirects only ever go to /device on this origin (relative), so there is nothing to
 * redirect openly.
 */
import { randomBytes } from 'node:crypto';
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { Services } from '../domain/services.js';
import type { Provider, User } from '../domain/model.js';
import { displayUserCode, MAX_USER_CODE_ENTRY } from '../domain/device-flow.js';
import { userCodeAlphabet } from '../domain/providers.js';
import type { FailedSignInLimiter, WrongUserCodeLimiter } from '../domain/rate-limits.js';
import { limitedSignIn } from './sign-in.js';
import { isPerson, isUsable } from '../domain/users.js';
import { readFormBody, type FormParams } from '../http/body.js';
import { OAuthError } from '../oauth/errors.js';
import { both } from '../http/routing.js';
import { consentPage, donePage, enterCodePage, messagePage, signInPage, type Brand } from './pages.js';
import { csrfMatches, newSession, readSession, signIn, signOut, writeSession, type DeviceSession, type SessionOptions } from './session.js';
import { handleJsonDecision } from './json-form.js';
import { lookupUserCode, recordDecision } from './decisions.js';

/** What this module uses of the services. */
type ServicesUsed = Pick<Services, 'appPasswords' | 'clients' | 'config' | 'deviceFlow' | 'deviceSessions' | 'events' | 'providers' | 'rateLimits' | 'users'>;

const MESSAGES = {
  unknown: "We don't recognise that code. Check it against your device and try again.",
  expired: 'That code has expired. Start again on your device to get a new code.',
  decided: 'That code has already been used. Start again on your device to get a new code.',
  limited: 'Too many wrong codes. Wait a minute, then try again.',
  signIn: 'Wrong username or password.',
  signInLimited: 'Too many failed sign-ins for this account. Wait a few minutes, then try again.',
  signInBusy: 'Too many sign-ins at this moment. Wait a second, then try again.',
  csrf: 'This form has expired or was not sent from this page. Please try again.',
  badForm: 'The form could not be read. Please try again.',
};

interface PageContext {
  ctx: Context;
  services: ServicesUsed;
  limiter: WrongUserCodeLimiter;
  signIns: FailedSignInLimiter;
  session: DeviceSession;
  user: User | null;
  nonce: string;
  sessionOptions: SessionOptions;
}

/** The CSP of the pages; a provider's logo adds its origin (only) to img-src. */
function contentSecurityPolicy(nonce: string, imageOrigin: string | null = null): string {
  return `default-src 'none'; style-src 'nonce-${nonce}';${imageOrigin ? ` img-src ${imageOrigin};` : ''} form-action 'self'; frame-ancestors 'none'; base-uri 'none'`;
}

/** The provider as people see it; allows its logo's origin in the page's CSP. */
function brandOf(ctx: Context, nonce: string, provider: Provider | null): Brand | null {
  if (!provider) return null;
  // logoUrl was validated as an absolute http(s) URL; its origin holds no spaces or semicolons.
  const logoUrl = provider.logoUrl ?? null;
  if (logoUrl) ctx.set('Content-Security-Policy', contentSecurityPolicy(nonce, new URL(logoUrl).origin));
  return { name: provider.displayName ?? provider.name, logoUrl };
}

function securityHeaders(ctx: Context, nonce: string): void {
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Pragma', 'no-cache');
  ctx.set('Content-Security-Policy', contentSecurityPolicy(nonce));
  ctx.set('X-Frame-Options', 'DENY');
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('Referrer-Policy', 'no-referrer');
}

function send(ctx: Context, status: number, page: string): void {
  ctx.status = status;
  ctx.type = 'text/html; charset=utf-8';
  ctx.body = page;
}

/** A code from the query string or a form: trimmed, and refused when it cannot be a code at all. */
function enteredCode(value: string | null | undefined): string | null {
  const code = value?.trim() ?? '';
  return code === '' ? null : code.slice(0, MAX_USER_CODE_ENTRY);
}

function deviceUrl(code: string | null): string {
  return code ? `/device?code=${encodeURIComponent(code)}` : '/device';
}

async function currentUser(services: ServicesUsed, session: DeviceSession | null): Promise<User | null> {
  if (!session?.userId) return null;
  const user = await services.users.get(session.userId);
  return user && isUsable(user) && isPerson(user) ? user : null;
}

/** Shows the consent page for a code, or the code page with the reason it cannot be used. */
async function showCode(p: PageContext, code: string): Promise<void> {
  const frame = { nonce: p.nonce, csrf: p.session.csrf, username: p.user!.username };
  const found = await lookupUserCode(p.services, p.limiter, code, { address: p.ctx.state.clientAddress as string, userId: p.user!.id });
  if (found.kind === 'limited') {
    p.ctx.set('Retry-After', String(found.retryAfterSeconds));
    return send(p.ctx, 429, enterCodePage({ ...frame, title: 'Too many attempts', code, error: MESSAGES.limited }));
  }
  if (found.kind !== 'pending') {
    const error = MESSAGES[found.kind];
    return send(p.ctx, 400, enterCodePage({ ...frame, title: 'Enter your code', code, error }));
  }
  const authorization = found.authorization;
  const client = await p.services.clients.getByClientId(authorization.clientId);
  const provider = await p.services.providers.get(authorization.providerId);
  if (!client || !provider) return send(p.ctx, 400, enterCodePage({ ...frame, title: 'Enter your code', code, error: MESSAGES.unknown }));
  send(p.ctx, 200, consentPage({
    ...frame,
    title: `Allow ${client.name}?`,
    brand: brandOf(p.ctx, p.nonce, provider),
    clientName: client.name,
    providerName: provider.displayName ?? provider.name,
    scopes: authorization.scopes,
    displayCode: displayUserCode(authorization.userCode, userCodeAlphabet(provider.deviceFlow)),
    userCode: authorization.userCode,
  }));
}

async function getPage(p: PageContext): Promise<void> {
  const query = new URLSearchParams(p.ctx.querystring);
  const code = enteredCode(query.get('code') ?? query.get('user_code'));
  if (!p.user) return send(p.ctx, 200, signInPage({ nonce: p.nonce, title: 'Sign in', csrf: p.session.csrf, code }));
  if (!code) return send(p.ctx, 200, enterCodePage({ nonce: p.nonce, title: 'Enter your code', csrf: p.session.csrf, username: p.user.username, code: null }));
  // RFC 8628 §3.3.1: the prefilled code is still shown for the user to compare before anything is allowed.
  return showCode(p, code);
}

async function postPage(p: PageContext, body: FormParams): Promise<void> {
  const { ctx, services } = p;
  const action = body.get('action');
  const code = enteredCode(body.get('user_code'));
  const requestId = ctx.state.requestId as string;

  if (action === 'signin') {
    const username = body.get('username')?.trim() ?? '';
    const password = body.get('password') ?? '';
    // People sign in with their login password; app passwords are for machines (and the JSON form).
    // Only people approve devices: a service account with a password is refused like a wrong one.
    const verifyPerson = async (): Promise<User | null> => {
      const verified = password ? await services.users.verifyPassword(username, password) : null;
      return verified && isPerson(verified) ? verified : null;
    };
    const outcome = username
      ? await limitedSignIn(p.signIns, { username, address: ctx.state.clientAddress as string }, verifyPerson)
      : { kind: 'failed' as const };
    if (outcome.kind === 'limited' || outcome.kind === 'busy') {
      ctx.set('Retry-After', String(outcome.retryAfterSeconds));
      const error = outcome.kind === 'limited' ? MESSAGES.signInLimited : MESSAGES.signInBusy;
      return send(ctx, 429, signInPage({ nonce: p.nonce, title: 'Sign in', csrf: p.session.csrf, code, error, formUsername: username }));
    }
    const user = outcome.kind === 'signed_in' ? outcome.user : null;
    services.events.record({
      action: user ? 'LOGIN' : 'LOGIN_FAILED', requestId, username: username.slice(0, 150) || null, context: { via: 'device page' },
    });
    if (!user) {
      return send(ctx, 400, signInPage({ nonce: p.nonce, title: 'Sign in', csrf: p.session.csrf, code, error: MESSAGES.signIn, formUsername: username }));
    }
    await signIn(ctx, p.session, user.id, p.sessionOptions);
    ctx.status = 303;
    ctx.redirect(deviceUrl(code));
    return;
  }
  if (action === 'signout') {
    await signOut(ctx, p.session, p.sessionOptions);
    ctx.status = 303;
    ctx.redirect('/device');
    return;
  }
  if (!p.user) return send(ctx, 400, signInPage({ nonce: p.nonce, title: 'Sign in', csrf: p.session.csrf, code }));
  const frame = { nonce: p.nonce, csrf: p.session.csrf, username: p.user.username };

  if (action === 'enter') {
    if (!code) return send(ctx, 400, enterCodePage({ ...frame, title: 'Enter your code', code: null, error: 'Enter the code shown on your device.' }));
    return showCode(p, code);
  }
  if (action === 'decide') {
    const decision = body.get('decision');
    if (!code || (decision !== 'allow' && decision !== 'deny')) {
      return send(ctx, 400, enterCodePage({ ...frame, title: 'Enter your code', code, error: MESSAGES.badForm }));
    }
    const found = await lookupUserCode(services, p.limiter, code, { address: ctx.state.clientAddress as string, userId: p.user.id });
    if (found.kind === 'limited') {
      ctx.set('Retry-After', String(found.retryAfterSeconds));
      return send(ctx, 429, enterCodePage({ ...frame, title: 'Too many attempts', code, error: MESSAGES.limited }));
    }
    if (found.kind !== 'pending') return send(ctx, 400, enterCodePage({ ...frame, title: 'Enter your code', code, error: MESSAGES[found.kind] }));
    const result = await recordDecision(services, { authorization: found.authorization, user: p.user, decision, requestId, via: 'page' });
    if (result.kind !== 'decided') {
      const error = result.kind === 'expired' ? MESSAGES.expired : MESSAGES.decided;
      return send(ctx, 400, enterCodePage({ ...frame, title: 'Enter your code', code, error }));
    }
    const client = await services.clients.getByClientId(result.authorization.clientId);
    const provider = await services.providers.get(result.authorization.providerId);
    return send(ctx, 200, donePage({
      ...frame, brand: brandOf(ctx, p.nonce, provider), title: decision === 'allow' ? 'Device connected' : 'Request denied',
      approved: decision === 'allow', clientName: client?.name ?? result.authorization.clientId,
    }));
  }
  return send(ctx, 400, enterCodePage({ ...frame, title: 'Enter your code', code, error: MESSAGES.badForm }));
}

export function registerVerificationRoutes(router: Router, services: ServicesUsed): void {
  const { wrongUserCodes: limiter, failedSignIns: signIns } = services.rateLimits;
  const sessionOptions: SessionOptions = { secure: services.config.publicUrl.startsWith('https:'), sessions: services.deviceSessions };

  both(router, ['GET', 'POST'], '/device', async (ctx) => {
    const nonce = randomBytes(16).toString('base64');
    securityHeaders(ctx, nonce);
    if (ctx.method === 'POST' && ctx.accepts('html', 'json') === 'json') {
      await handleJsonDecision(ctx, services, limiter, signIns);
      return;
    }

    let session = await readSession(ctx, sessionOptions);
    const user = await currentUser(services, session);
    if (ctx.method === 'GET') {
      if (!session || (session.userId && !user)) {
        session = newSession();
        writeSession(ctx, session, sessionOptions);
      }
      await getPage({ ctx, services, limiter, signIns, session, user, nonce, sessionOptions });
      return;
    }

    let body: FormParams;
    try {
      body = await readFormBody(ctx);
    } catch (error) {
      if (!(error instanceof OAuthError)) throw error;
      const fresh = session ?? newSession();
      if (!session) writeSession(ctx, fresh, sessionOptions);
      send(ctx, error.status === 413 ? 413 : 400, messagePage({ nonce, title: 'Try again', heading: 'Something went wrong', message: MESSAGES.badForm, linkToStart: true }));
      return;
    }
    if (!session || !csrfMatches(session, body.get('csrf'))) {
      // A stale or forged form changes nothing: show the form again with a valid token.
      const current = session && (!session.userId || user) ? session : newSession();
      if (current !== session) writeSession(ctx, current, sessionOptions);
      const code = enteredCode(body.get('user_code'));
      const page = user && current === session
        ? enterCodePage({ nonce, title: 'Enter your code', csrf: current.csrf, username: user.username, code, error: MESSAGES.csrf })
        : signInPage({ nonce, title: 'Sign in', csrf: current.csrf, code, error: MESSAGES.csrf });
      send(ctx, 403, page);
      return;
    }
    await postPage({ ctx, services, limiter, signIns, session, user, nonce, sessionOptions }, body);
  });
}

