/** The headers of the HTML pages outside /device (the landing page, the explorer). */
import type { Context } from 'koa';

export function pageHeaders(ctx: Context, contentSecurityPolicy: string): void {
  ctx.set('Content-Security-Policy', contentSecurityPolicy);
  ctx.set('X-Frame-Options', 'DENY');
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('Referrer-Policy', 'no-referrer');
  ctx.set('Cache-Control', 'no-store');
  ctx.type = 'text/html; charset=utf-8';
}
