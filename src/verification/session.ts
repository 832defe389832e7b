/**
 * The /device session: one cookie, signed with the app's keys (TESSERA_SECRET_KEY), HttpOnly,
 * SameSite=Lax, and Secure (with the __Host- prefix) when TESSERA_PUBLIC_URL is https. It carries a
 * CSRF token from the first visit on (so the sign-in form is protected too), and the user id once
 * signed in. Signing in replaces the CSRF token.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';

export const SESSION_LIFETIME_MS = 60 * 60 * 1000;

export interface DeviceSession {
  csrf: string;
  userId: string | null;
  /** Epoch ms. */
  expiresAt: number;
}

export interface SessionOptions {
  /** TESSERA_PUBLIC_URL is https: the browser reaches us over TLS even if a proxy talks http to us. */
  secure: boolean;
}

function cookieName(options: SessionOptions): string {
  return options.secure ? '__Host-tessera_device' : 'tessera_device';
}

export function newSession(userId: string | null = null, now = Date.now()): DeviceSession {
  return { csrf: randomBytes(32).toString('base64url'), userId, expiresAt: now + SESSION_LIFETIME_MS };
}

export function readSession(ctx: Context, options: SessionOptions, now = Date.now()): DeviceSession | null {
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
    const value = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as Partial<DeviceSession>;
    if (typeof value.csrf !== 'string' || value.csrf.length < 32) return null;
    if (value.userId !== null && typeof value.userId !== 'string') return null;
    if (typeof value.expiresAt !== 'number' || value.expiresAt <= now) return null;
    return { csrf: value.csrf, userId: value.userId, expiresAt: value.expiresAt };
  } catch {
    return null;
  }
}

export function writeSession(ctx: Context, session: DeviceSession, options: SessionOptions): void {
  const value = Buffer.from(JSON.stringify(session), 'utf8').toString('base64url');
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

export function csrfMatches(session: DeviceSession | null, presented: string | undefined): boolean {
  if (!session || !presented) return false;
  const a = Buffer.from(session.csrf);
  const b = Buffer.from(presented);
  return a.length === b.length && timingSafeEqual(a, b);
}
