import type Router from '@koa/router';
import type { Middleware } from 'koa';

/**
 * Registers a path so that it answers with and without its trailing slash (the contract: both
 * answer): @koa/router's non-strict matching lets a path without the slash match both forms.
 */
export function both(router: Router, methods: string[], path: string, ...middleware: Middleware[]): void {
  const bare = path.endsWith('/') && path.length > 1 ? path.slice(0, -1) : path;
  router.register(bare, methods, middleware as never);
}
