/**
 * POST /graphql: the admin guard of the contract (401 UNAUTHENTICATED / 403 FORBIDDEN) in front of
 * Apollo Server, with Apollo's CSRF prevention on and introspection only for admins (the guard
 * runs before Apollo sees anything, and before the body is read: a caller without a valid admin
 * token costs no reading or parsing of up to a MiB of JSON).
 */
import type { Middleware } from 'koa';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled } from '@apollo/server/plugin/disabled';
import { koaMiddleware } from '@as-integrations/koa';
import type { Services } from '../domain/services.js';
import type { User } from '../domain/model.js';
import { ADMIN_SCOPE } from '../domain/scopes.js';
import type { AdminContext } from './context.js';
import { createLoaders } from './loaders.js';
import { formatAdminError } from './errors.js';
import { buildAdminSchema } from './schema.js';
import { queryLimits } from './limits.js';
import { MAX_NESTING, nestsTooDeep } from './nesting.js';
import { jsonBody } from '../http/json-body.js';
import { dpopChallenge, parseTokenAuthorization, tokenBindingRefusal, type ResourceRequest } from '../oauth/credentials.js';

export const GRAPHQL_BODY_LIMIT = 1024 * 1024;

/**
 * The admin behind a Bearer token: an app password of an admin, or a live access token of any
 * provider whose subject is one and whose scope holds `tessera:admin` (contract v2).
 * `missingScope` marks an access token of a known user without that scope.
 */
export async function authenticateAdmin(
  services: Services, authorization: string, request?: Omit<ResourceRequest, 'presented'>,
): Promise<{ user: User | null; known: boolean; missingScope?: true; dpopRefusal?: string }> {
  const presented = parseTokenAuthorization(authorization, 'printable');
  if (presented.kind !== 'token') return { user: null, known: false };
  const { token } = presented;
  // App passwords are Bearer credentials; a DPoP-bound credential is always an access token.
  const viaAppPassword = presented.scheme === 'Bearer' ? await services.appPasswords.verify(token) : null;
  if (viaAppPassword) return { user: viaAppPassword.user, known: true };
  // Verification checks the user, client and credential are live, the user usable.
  const accessToken = await services.tokens.verifyAccessToken(token);
  if (!accessToken) return { user: null, known: false };
  // RFC 9449 §7: a bound token only with a proof by its key (without request details, only Bearer of unbound tokens passes).
  const dpopRefusal = await tokenBindingRefusal(services.dpop, accessToken, { presented, headers: null, method: 'POST', url: '', ...request });
  if (dpopRefusal) return { user: null, known: false, dpopRefusal };
  const scopes = accessToken.claims.scope.split(' ');
  return scopes.includes(ADMIN_SCOPE) ? { user: accessToken.user, known: true } : { user: accessToken.user, known: true, missingScope: true };
}

function graphqlError(message: string, code: string) {
  return { errors: [{ message, extensions: { code } }] };
}

export async function createAdminMiddleware(services: Services): Promise<{ middleware: Middleware; stop: () => Promise<void> }> {
  const schema = await buildAdminSchema();
  const apollo = new ApolloServer<AdminContext>({
    schema,
    csrfPrevention: true,
    // main.ts owns SIGTERM/SIGINT (drain HTTP, then stop Apollo, flush the store); Apollo's own
    // handlers raced it and left apollo.stop() pending, so the process never exited.
    stopOnTerminationSignals: false,
    introspection: true,
    includeStacktraceInErrorResponses: false,
    validationRules: [queryLimits()],
    formatError: formatAdminError(services.logger),
    // The guard answers Cache-Control: no-store itself. Apollo's cache-control plugin would wrap
    // every field's resolver to gather hints nothing here gives (a page of 20 users: ~200 fields).
    plugins: [ApolloServerPluginCacheControlDisabled()],
    // Apollo pretty-prints responses by default (indented JSON): compact costs less and sends less.
    stringifyResult: (result) => JSON.stringify(result),
  });
  await apollo.start();
  const apolloMiddleware = koaMiddleware(apollo, {
    context: async ({ ctx }) => ({
      services,
      admin: ctx.state.admin as User,
      requestId: ctx.state.requestId as string,
      loaders: createLoaders(services),
    }),
  });

  const guard: Middleware = async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    const { user, missingScope, dpopRefusal } = await authenticateAdmin(services, ctx.get('authorization'), {
      headers: ctx.req, method: ctx.method, url: `${services.config.publicUrl}${ctx.path}`,
    });
    if (!user) {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', dpopRefusal ? dpopChallenge('invalid_token', dpopRefusal) : 'Bearer realm="tessera"');
      ctx.body = graphqlError(dpopRefusal ?? 'A valid admin token is required (Authorization: Bearer <token>)', 'UNAUTHENTICATED');
      return;
    }
    if (!user.isAdmin) {
      ctx.status = 403;
      ctx.body = graphqlError(`User '${user.username}' is not an admin`, 'FORBIDDEN');
      return;
    }
    if (missingScope) {
      // A valid token without the privilege: RFC 6750 §3.1 insufficient_scope, 403.
      ctx.status = 403;
      ctx.set('WWW-Authenticate', `Bearer realm="tessera", error="insufficient_scope", scope="${ADMIN_SCOPE}"`);
      ctx.body = graphqlError(`An access token needs the scope ${ADMIN_SCOPE} for the admin API`, 'FORBIDDEN');
      return;
    }
    ctx.state.admin = user;
    await next();
  };

  // Before Apollo parses: a document nested deeper than MAX_NESTING never reaches the recursive parser.
  const nesting: Middleware = async (ctx, next) => {
    const posted = (ctx.request as { body?: unknown }).body;
    const query = ctx.method === 'GET' ? ctx.query.query : (posted as { query?: unknown } | null | undefined)?.query;
    if (typeof query === 'string' && nestsTooDeep(query)) {
      ctx.status = 400;
      ctx.body = graphqlError(`The document nests deeper than ${MAX_NESTING} levels of braces, parentheses and brackets`, 'QUERY_TOO_DEEP');
      return;
    }
    await next();
  };

  const body = jsonBody(GRAPHQL_BODY_LIMIT);
  return {
    middleware: async (ctx, next) => guard(ctx, () => body(ctx, () => nesting(ctx, () => apolloMiddleware(ctx, next)))),
    stop: () => apollo.stop(),
  };
}
