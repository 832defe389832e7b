import type Router from '@koa/router';
import type { Layer } from '@koa/router';
import type { Context, Middleware } from 'koa';

/** Paths without parameters that both() registered, per router: candidates for the exact-path table. */
const staticPaths = new WeakMap<Router, Set<string>>();

/**
 * Registers a path so that it answers with and without its trailing slash (the contract: both
 * answer): @koa/router's non-strict matching lets a path without the slash match both forms.
 */
export function both(router: Router, methods: string[], path: string, ...middleware: Middleware[]): void {
  const bare = path.endsWith('/') && path.length > 1 ? path.slice(0, -1) : path;
  router.register(bare, methods, middleware as never);
  if (/^[A-Za-z0-9/_.~-]+$/.test(bare)) {
    let paths = staticPaths.get(router);
    if (!paths) staticPaths.set(router, (paths = new Set()));
    paths.add(bare);
  }
}

interface ExactRoute {
  layer: Layer;
  /** What router.match() gives as the layers matching the path (for allowedMethods downstream). */
  matched: Layer[];
  handler: Middleware;
}

/** The context fields @koa/router sets on a match; set alike on the exact-path route. */
interface RouterFields {
  router: Router;
  matched: Layer[];
  routeMatched: boolean;
  captures: string[];
  params: Record<string, string>;
  routerPath: string;
  routerName: string | undefined;
  _matchedRoute: string;
  _matchedRouteName?: string;
  newRouterPath?: string;
}

/**
 * For every static path both() registered, in both slash forms, and every method: the one route
 * the router would run, when the router itself says that exactly one layer (this one, with one
 * middleware and no captures) matches that path and method. Anything else stays with the router.
 */
function exactRoutes(router: Router): Map<string, Map<string, ExactRoute>> {
  const table = new Map<string, Map<string, ExactRoute>>();
  if (router.opts.routerPath || router.opts.exclusive) return table;
  for (const bare of staticPaths.get(router) ?? []) {
    for (const form of bare === '/' ? [bare] : [bare, `${bare}/`]) {
      const methods = new Set(router.stack.filter((layer) => layer.path === bare).flatMap((layer) => layer.methods));
      for (const method of methods) {
        const match = router.match(form, method);
        const layer = match.pathAndMethod[0];
        if (!match.route || match.pathAndMethod.length !== 1 || !layer || layer.path !== bare || layer.stack.length !== 1) continue;
        if (layer.paramNames.length > 0 || layer.captures(form).length > 0) continue;
        let byMethod = table.get(form);
        if (!byMethod) table.set(form, (byMethod = new Map()));
        byMethod.set(method, { layer, matched: match.path, handler: layer.stack[0] as Middleware });
      }
    }
  }
  return table;
}

/**
 * The router's middleware with an exact-path table in front: a request for a static path (the OAuth
 * endpoints) goes straight to its handler with the same context fields the router would set,
 * instead of the router testing every route's regexp and composing a chain per request.
 */
export function routes(router: Router): Middleware {
  const dispatch = router.routes() as Middleware;
  let table: Map<string, Map<string, ExactRoute>> | null = null;
  return (ctx, next) => {
    // Built on the first request, when every route is registered.
    table ??= exactRoutes(router);
    const route = table.get(ctx.path)?.get(ctx.req.method ?? '');
    const fields = ctx as unknown as RouterFields;
    if (route === undefined || fields.newRouterPath !== undefined) return dispatch(ctx, next);
    const { layer } = route;
    fields.matched = route.matched.slice();
    fields.router = router;
    fields.routeMatched = true;
    fields.captures = [];
    fields.params = (ctx.request as unknown as { params: Record<string, string> }).params = {};
    fields.routerPath = layer.path as string;
    fields.routerName = layer.name || undefined;
    fields._matchedRoute = layer.path as string;
    if (layer.name) fields._matchedRouteName = layer.name;
    return route.handler(ctx, next);
  };
}

/** The matched route's pattern (@koa/router's documented ctx.routerPath), or undefined when none matched (404, 405). */
export function routeOf(ctx: Context): string | undefined {
  return (ctx as unknown as { routerPath?: string }).routerPath;
}
