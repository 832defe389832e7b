/**
 * The OAuth endpoints the contract fixes. Each endpoint is its own module; this file only says
 * where each one answers (with and without the trailing slash).
 */
import type Router from '@koa/router';
import type { Services } from '../domain/services.js';
import { both } from '../http/routing.js';
import { tokenEndpoint } from './token.js';
import { deviceAuthorizationEndpoint } from './device-authorization.js';
import { userinfoEndpoint } from './userinfo.js';
import { introspectionEndpoint } from './introspection.js';
import { revocationEndpoint } from './revocation.js';
import { registerVerificationRoutes } from '../verification/routes.js';

export function registerOAuthRoutes(router: Router, services: Services): void {
  both(router, ['POST'], '/application/o/token/', tokenEndpoint(services));
  both(router, ['POST'], '/application/o/device/', deviceAuthorizationEndpoint(services));
  both(router, ['GET', 'POST'], '/application/o/userinfo/', userinfoEndpoint(services));
  both(router, ['POST'], '/application/o/introspect/', introspectionEndpoint(services));
  both(router, ['POST'], '/application/o/revoke/', revocationEndpoint(services));
  registerVerificationRoutes(router, services);
}
