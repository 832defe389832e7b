/**
 * testTokenExchange: the admin's dry run of a token exchange, in the style of testPolicy. It goes
 * through the grant's own steps (domain/token-exchange.ts: the one verifier, rule 4, may_act,
 * act; the scope and audience checks; every bound policy) and says which rule, which identity,
 * which claims and which policy allowed or refused, and why. It issues nothing, saves no account
 * and records no event.
 */
import { Arg, Ctx, Field, ID, ObjectType, Query, Resolver } from 'type-graphql';
import type { AdminContext } from './context.js';
import { DateTimeScalar, JSONScalar } from './scalars.js';
import type { Services } from '../domain/services.js';
import { NotFoundError } from '../domain/errors.js';
import { AudienceRefused, requestedAudience } from '../domain/audiences.js';
import { grantableScopes, permittedScopes } from '../domain/scopes.js';
import { verifyExchange } from '../domain/token-exchange.js';
import type { PolicyOutcome } from '../domain/policies/service.js';
import { OAuthError } from '../oauth/errors.js';
import { TOKEN_EXCHANGE_GRANT_TYPE, exchangeScopes } from '../oauth/grants/token-exchange.js';

@ObjectType('PolicyOutcome', { description: "One bound policy's verdict in a dry run." })
export class PolicyOutcomeObject {
  @Field(() => String) policy!: string;
  @Field(() => String, { description: 'PROVIDER or CLIENT.' }) target!: string;
  @Field(() => Boolean) passed!: boolean;
  @Field(() => String, { nullable: true }) reason!: string | null;
}

@ObjectType('TokenExchangeTestResult', { description: 'What a token exchange would give; nothing was issued or stored.' })
export class TokenExchangeTestResultObject {
  @Field(() => Boolean, { description: 'The exchange would succeed.' }) allowed!: boolean;
  @Field(() => String, { nullable: true, description: 'The OAuth error the client would get.' }) error!: string | null;
  @Field(() => String, { nullable: true, description: 'Why (the private reason the event log would hold).' }) reason!: string | null;
  @Field(() => String, { nullable: true, description: 'The step that decided: request, subject_token, actor_token, delegation, scope, audience, policy.' }) stage!: string | null;
  @Field(() => String, { nullable: true, description: 'How the subject was identified: federated_source, or federated_provider (a token of this server).' }) rule!: string | null;
  @Field(() => JSONScalar, { nullable: true, description: 'The user the token would be for: id, username, type, and whether it exists yet.' }) identity!: unknown;
  @Field(() => JSONScalar, { nullable: true }) subjectClaims!: unknown;
  @Field(() => JSONScalar, { nullable: true }) actorClaims!: unknown;
  @Field(() => JSONScalar, { nullable: true, description: "The new token's act claim." }) act!: unknown;
  @Field(() => String, { nullable: true, description: "How the actor was allowed: may_act, or policy." }) delegation!: string | null;
  @Field(() => String, { nullable: true }) scope!: string | null;
  @Field(() => [String], { nullable: true }) audience!: string[] | null;
  @Field(() => DateTimeScalar, { nullable: true, description: 'The token would expire no later than this (the subject or actor token\'s exp).' }) notAfter!: Date | null;
  @Field(() => [PolicyOutcomeObject]) policies!: PolicyOutcome[];
}

export interface TokenExchangeTestInput {
  providerId: string;
  clientId: string;
  subjectToken: string;
  subjectTokenType: string;
  actorToken?: string | null;
  actorTokenType?: string | null;
  scope?: string | null;
  audience?: string[] | null;
}

type Result = TokenExchangeTestResultObject;

function empty(): Result {
  return {
    allowed: false, error: null, reason: null, stage: null, rule: null, identity: null, subjectClaims: null, actorClaims: null,
    act: null, delegation: null, scope: null, audience: null, notAfter: null, policies: [],
  };
}

export async function testTokenExchange(services: Services, input: TokenExchangeTestInput): Promise<Result> {
  const provider = await services.providers.get(input.providerId);
  if (!provider) throw new NotFoundError('provider', input.providerId);
  const client = await services.clients.findByClientId(input.clientId);
  if (!client || client.providerId !== provider.id) throw new NotFoundError('client', input.clientId);
  const result = empty();
  const refuse = (stage: string, error: string, reason: string): Result => Object.assign(result, { stage, error, reason });
  if (!client.grantTypes.includes('TOKEN_EXCHANGE')) return refuse('request', 'unauthorized_client', 'the client does not have the TOKEN_EXCHANGE grant');
  try {
    result.audience = requestedAudience([], input.audience ?? [], client.allowedAudiences ?? []);
  } catch (error) {
    if (error instanceof AudienceRefused) return refuse('audience', 'invalid_target', error.detail);
    throw error;
  }
  const verified = await verifyExchange(services, {
    provider, client, requestId: 'dry-run', subjectToken: input.subjectToken, subjectTokenType: input.subjectTokenType,
    actorToken: input.actorToken ?? undefined, actorTokenType: input.actorTokenType ?? undefined,
  });
  if (verified.kind === 'refused') return refuse(verified.stage, verified.error, verified.detail);
  const { identity } = verified;
  const stored = await services.users.get(identity.user.id);
  Object.assign(result, {
    rule: identity.rule, subjectClaims: verified.subjectClaims, actorClaims: verified.actorClaims, act: verified.act,
    delegation: verified.delegation, notAfter: verified.notAfter,
    identity: { id: identity.user.id, username: identity.user.username, type: identity.user.type, exists: stored !== null },
  });
  let scopes: string[];
  try {
    scopes = grantableScopes(identity.user, exchangeScopes(input.scope ?? undefined, permittedScopes(client.allowedScopes), verified));
  } catch (error) {
    if (error instanceof OAuthError) return refuse('scope', error.code, error.detail ?? error.description);
    throw error;
  }
  result.scope = scopes.join(' ');
  result.policies = await services.policies.explainTokenPolicies({
    provider, client, user: identity.user, grantType: TOKEN_EXCHANGE_GRANT_TYPE, scopes, jwtClaims: verified.subjectClaims,
    subjectToken: verified.subjectClaims, actorToken: verified.actorClaims, requestId: null,
  });
  const denied = result.policies.find((p) => !p.passed);
  if (denied) return refuse('policy', 'invalid_grant', `policy '${denied.policy}' denied: ${denied.reason}`);
  if (verified.delegation === 'policy' && !result.policies.some((p) => p.target === 'CLIENT')) {
    return refuse('delegation', 'invalid_grant', 'the subject token has no may_act naming the actor, and no policy is bound to the client to allow the delegation');
  }
  result.allowed = true;
  return result;
}

@Resolver()
export class TokenExchangeTestResolver {
  @Query(() => TokenExchangeTestResultObject, {
    description: 'A dry run of a token exchange (RFC 8693) by this client: which rule, identity, claims and policies decide, and why. Issues nothing and creates no account.',
  })
  testTokenExchange(
    @Ctx() { services }: AdminContext,
    @Arg('providerId', () => ID) providerId: string,
    @Arg('clientId', () => String, { description: 'The client_id of the client that would exchange.' }) clientId: string,
    @Arg('subjectToken', () => String) subjectToken: string,
    @Arg('subjectTokenType', () => String) subjectTokenType: string,
    @Arg('actorToken', () => String, { nullable: true }) actorToken?: string | null,
    @Arg('actorTokenType', () => String, { nullable: true }) actorTokenType?: string | null,
    @Arg('scope', () => String, { nullable: true }) scope?: string | null,
    @Arg('audience', () => [String], { nullable: true }) audience?: string[] | null,
  ): Promise<Result> {
    return testTokenExchange(services, { providerId, clientId, subjectToken, subjectTokenType, actorToken, actorTokenType, scope, audience });
  }
}
