/**
 * Guards for the places that rely on a dependency's undocumented members (docs/ARCHITECTURE.md,
 * "Dependency internals"), pinned to exact versions in package.json: if an upgrade changes one,
 * these fail and say which, before the fast path silently diverges from the library.
 * - http/routing.ts sets @koa/router's context fields itself on exact paths (matched, captures,
 *   params, routerPath, routerName, _matchedRoute, _matchedRouteName, routeMatched, router);
 *   it reads router.opts.routerPath/exclusive, router.stack, match().pathAndMethod and Layer's
 *   path, stack, paramNames, methods, captures().
 * The metrics' route label is @koa/router's documented ctx.routerPath (routeOf), which the table
 * sets too: checked below with the other fields.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { createRequire } from 'node:module';
import Koa from 'koa';
import Router from '@koa/router';
import { both, routes } from '../../src/http/routing.js';

const require = createRequire(import.meta.url);
const ROUTER_FIELDS = ['matched', 'captures', 'params', 'routerPath', 'routerName', '_matchedRoute', '_matchedRouteName', 'routeMatched', 'router'] as const;

test('the pinned versions are the ones installed (an upgrade re-runs these guards on purpose)', () => {
  const pkg = require('../../../package.json') as { dependencies: Record<string, string> };
  for (const name of ['koa', '@koa/router']) {
    const installed = (JSON.parse(readFileSync(new URL(`../../../node_modules/${name}/package.json`, import.meta.url), 'utf8')) as { version: string }).version;
    assert.equal(pkg.dependencies[name], installed, `${name}: package.json pins ${pkg.dependencies[name]}, ${installed} is installed`);
  }
});

async function fieldsSeen(middleware: (router: Router) => Koa.Middleware, path: string): Promise<Record<string, unknown>> {
  const router = new Router();
  let seen: Record<string, unknown> = {};
  both(router, ['GET'], '/application/o/token/', async (ctx) => {
    const state = ctx as unknown as Record<string, unknown>;
    seen = Object.fromEntries(ROUTER_FIELDS.map((f) => [f, f === 'router' ? state[f] === router : f === 'matched' ? (state[f] as unknown[]).length : state[f]]));
    ctx.body = 'ok';
  });
  router.get('/named/:id', async (ctx) => { ctx.body = ctx.params.id; });
  const app = new Koa();
  app.use(middleware(router));
  const server = http.createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`);
    assert.equal(response.status, 200);
    return seen;
  } finally {
    server.close();
  }
}

test("@koa/router sets the context fields routing.ts sets on its exact paths, with the same values", async () => {
  for (const path of ['/application/o/token/', '/application/o/token']) {
    const byRouter = await fieldsSeen((router) => router.routes() as Koa.Middleware, path);
    const byTable = await fieldsSeen(routes, path);
    assert.equal(byRouter._matchedRoute, '/application/o/token', "the router's _matchedRoute (read by frame.ts)");
    assert.deepEqual(byTable, byRouter, `the exact-path table and the router disagree on ${path}`);
  }
});

test('@koa/router still has the members routing.ts reads', () => {
  const router = new Router();
  both(router, ['GET', 'POST'], '/x/', async () => undefined);
  assert.equal(typeof router.opts, 'object', 'router.opts (routerPath, exclusive read from it)');
  assert.ok(Array.isArray(router.stack), 'router.stack');
  const match = router.match('/x', 'GET');
  assert.equal(typeof match.route, 'boolean', 'match().route');
  assert.ok(Array.isArray(match.path) && Array.isArray(match.pathAndMethod), 'match().path, match().pathAndMethod');
  const layer = match.pathAndMethod[0]!;
  assert.equal(layer.path, '/x');
  assert.ok(Array.isArray(layer.stack) && layer.stack.length === 1, 'layer.stack');
  assert.deepEqual(layer.paramNames, []);
  assert.ok(layer.methods.includes('GET') && layer.methods.includes('POST'), 'layer.methods');
  assert.deepEqual(layer.captures('/x'), []);
});
