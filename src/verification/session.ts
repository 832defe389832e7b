/**
 * The /device session: one cookie, signed with the app's keys (TESSERA_SECRET_KEY), HttpOnly,
 * SameSite=Lax, and Secure (with the __Host- prefix) when TESSERA_PUBLIC_URL is https. Before
 * sign-in it carries only a CSRF token (so the sign-in form is protected too); once signed in, only
 * the random secret of a session stored server-side (domain/device-sessions.ts), which holds the
 * user and a new CSRF token. Sign-out deletes the stored session, so a copied cookie dies with it.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';
import { newCsrfToken, SESSION_LIFETIME_MS, type DeviceSessionStore } from '../domain/device-sessions.js';

export interface DeviceSession {
  csrf: string;
  userId: string | null;
  /** Epoch ms. */
  expiresAt: number;
  /** Signed in: the stored session's secret (the cookie's whole content). */
  secret?: string;
}

export interface SessionOptions {
  /** TESSERA_PUBLIC_URL is https: the browser reaches us over TLS even if a proxy talks http to us. */
  secure: boolean;
  sessions: DeviceSessionStore;
}

/** The cookie's content: a CSRF token before sign-in, a stored session's secret after. */
type CookieValue = { csrf: string; expiresAt: number } | { session: string };

function cookieName(options: SessionOptions): string {
  return options.secure ? '__Host-tessera_device' : 'tessera_device';
}

/** A session before sign-in (nothing stored). */
export function newSession(now = Date.now()): DeviceSession {
  return { csrf: newCsrfToken(), userId: null, expiresAt: now + SESSION_LIFETIME_MS };
}

function readCookie(ctx: Context, options: SessionOptions): Partial<Record<string, unknown>> | null {
  let raw: string | undefined;
  // A bad signature makes the cookies library expire the .sig cookie: with Secure, behind https.
  if (options.secure) ctx.cookies.secure = true;
  try {
    raw = ctx.cookies.get(cookieName(options), { signed: true });
  } catch {
    return null;
  }
  if (!raw || raw.length > 1024) return null;
  try {
    const value = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as unknown;
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export async function readSession(ctx: Context, options: SessionOptions, now = Date.now()): Promise<DeviceSession | null> {
  const value = readCookie(ctx, options);
  if (!value) return null;
  if (typeof value.session === 'string') {
    const record = await options.sessions.find(value.session, now);
    return record ? { csrf: record.csrf, userId: record.userId, expiresAt: record.expiresAt.getTime(), secret: value.session } : null;
  }
  // A cookie naming a user itself (the format before sessions were stored) is not believed.
  if (typeof value.csrf !== 'string' || value.csrf.length < 32 || value.userId !== undefined) return null;
  if (typeof value.expiresAt !== 'number' || value.expiresAt <= now) return null;
  return { csrf: value.csrf, userId: null, expiresAt: value.expiresAt };
}

export function writeSession(ctx: Context, session: DeviceSession, options: SessionOptions): void {
  const content: CookieValue = session.secret ? { session: session.secret } : { csrf: session.csrf, expiresAt: session.expiresAt };
  const value = Buffer.from(JSON.stringify(content), 'utf8').toString('base64url');
  // Behind a TLS-terminating proxy the socket is plain http; the public URL says what the browser sees.
  if (options.secure) ctx.cookies.secure = true;
  ctx.cookies.set(cookieName(options), value, {
    signed: true,
    httpOnly: true,
    sameSite: 'lax',
    secure: options.secure,
    path: '/',
    maxAge: Math.max(0, session.expiresAt - Date.now()),
    overwrite: true,
  });
}

/** Signs the user in: a new stored session (a new secret and CSRF token), ending the one before. */
export async function signIn(ctx: Context, previous: DeviceSession, userId: string, options: SessionOptions): Promise<void> {
  if (previous.secret) await options.sessions.end(previous.secret);
  const { secret, record } = await options.sessions.start(userId);
  writeSession(ctx, { csrf: record.csrf, userId, expiresAt: record.expiresAt.getTime(), secret }, options);
}

/** Ends the stored session for every server process, and leaves a fresh anonymous one. */
export async function signOut(ctx: Context, session: DeviceSession, options: SessionOptions): Promise<void> {
  if (session.secret) await options.sessions.end(session.secret);
  writeSession(ctx, newSession(), options);
}

export function csrfMatches(session: DeviceSession | null, presented: string | undefined): boolean {
  if (!session || !presented) return false;
  const a = Buffer.from(session.csrf);
  const b = Buffer.from(presented);
  return a.length === b.length && timingSafeEqual(a, b);
}
