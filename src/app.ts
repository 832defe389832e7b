/** Assembles the Koa application: middleware, OAuth routes, /device, /graphql, health, metrics. */
import Koa from 'koa';
import Router from '@koa/router';
import type { Services } from './domain/services.js';
import { requestFrame } from './http/frame.js';
import { HttpMetrics } from './http/metrics.js';
import { discoveryEndpoint, jwksEndpoint } from './oauth/discovery.js';
import { createAdminMiddleware } from './admin/http.js';
import { registerOAuthRoutes } from './oauth/routes.js';
import { both, routes } from './http/routing.js';
import { landingPage } from './http/landing.js';
import { ASSET_PREFIX, explorerAsset, explorerOnGraphql, explorerPage } from './http/explorer.js';

export interface TesseraApp {
  koa: Koa;
  metrics: HttpMetrics;
  close: () => Promise<void>;
}

export async function createApp(services: Services): Promise<TesseraApp> {
  const koa = new Koa({ proxy: false });
  koa.keys = [services.config.secretKey ?? ''];
  const metrics = new HttpMetrics();
  const router = new Router();

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    try {
      await services.store.ping();
      ctx.body = { status: 'ready', store: services.store.kind };
    } catch {
      ctx.status = 503;
      ctx.body = { status: 'unavailable', store: services.store.kind };
    }
  });
  router.get('/metrics', async (ctx) => {
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });

  both(router, ['GET'], '/application/o/:slug/.well-known/openid-configuration', discoveryEndpoint(services));
  both(router, ['GET'], '/.well-known/oauth-authorization-server/application/o/:slug/', discoveryEndpoint(services));
  both(router, ['GET'], '/.well-known/openid-configuration/application/o/:slug/', discoveryEndpoint(services));
  both(router, ['GET'], '/application/o/:slug/jwks/', jwksEndpoint(services));

  registerOAuthRoutes(router, services);

  // For browsers: the landing page and the admin API's explorer (GET /graphql with Accept: text/html).
  router.get('/', landingPage(services));
  router.get('/graphiql', explorerPage);
  router.get(`${ASSET_PREFIX}:name`, explorerAsset);
  router.get('/graphql', explorerOnGraphql);

  const admin = await createAdminMiddleware(services);
  router.all('/graphql', admin.middleware);

  // Request id, error bodies, metrics and the access log in one frame around everything.
  koa.use(requestFrame({ logger: services.logger, metrics, events: services.events, trustProxy: services.config.trustProxy }));
  koa.use(routes(router));
  koa.use(router.allowedMethods());
  koa.use(async (ctx) => {
    if (ctx.status === 404 && ctx.body === undefined) {
      ctx.status = 404;
      ctx.body = { error: 'not_found', error_description: `no route for ${ctx.method} ${ctx.path}`, request_id: ctx.state.requestId };
    }
  });

  return { koa, metrics, close: admin.stop };
}
