/**
 * Evaluating expression policies and mappings on the token path, and trying an expression on a sample.
 *
 * The hot path reads bindings and mappings through short TTL caches (admin changes on this process
 * clear them at once; other processes see a change within CACHE_TTL_MS), so a token request for a
 * provider and client without policies costs no store read once the cache is warm.
 */
import type { Logger } from 'pino';
import type { Client, ExpressionPolicy, FederatedSource, PolicyTargetType, Provider, ScopeMapping, SourcePropertyMapping, User } from '../model.js';
import { ValidationError } from '../errors.js';
import { TtlCache } from '../cache.js';
import type { EventLog } from '../events.js';
import { ExpressionError, ExpressionEvaluationError, type EvaluationStats, type ExpressionKind, type PolicyEngine } from './engine.js';
import { compileForSave, type PolicyCollections } from './management.js';
import { policyDenials } from '../../telemetry/metrics.js';
import { inSpan } from '../../telemetry/trace.js';

export const CACHE_TTL_MS = 5_000;

export interface TokenPolicyInput {
  provider: Provider;
  client: Client;
  user: User | null;
  grantType: string;
  scopes: readonly string[];
  codeVerifier?: string | null;
  jwtClaims?: Record<string, unknown> | null;
  /** Token exchange (RFC 8693): the verified claims of the subject and actor tokens. */
  subjectToken?: Record<string, unknown> | null;
  actorToken?: Record<string, unknown> | null;
  requestId: string | null;
}

/** Allowed: `clientPolicies` counts the policies bound to the client that passed (a token exchange's delegation needs one). */
export type PolicyDecision = { allowed: true; clientPolicies: number } | { allowed: false; policyName: string; reason: string };

/** One bound policy's verdict, for the admin's dry runs. */
export interface PolicyOutcome {
  policy: string;
  target: PolicyTargetType;
  passed: boolean;
  /** Why it did not pass; null when it did. */
  reason: string | null;
}

export interface ExpressionTestResult {
  /** For policies: true only when the expression returned true. */
  passed: boolean;
  result: unknown;
  error: string | null;
  steps: number;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What `request.user` shows an expression: no password hash, nothing secret. */
function userView(user: User | null): Record<string, unknown> | null {
  if (!user) return null;
  return {
    id: user.id, username: user.username, name: user.name, email: user.email, type: user.type,
    is_active: user.isActive, attributes: user.attributes,
  };
}

function clientView(client: Pick<Client, 'clientId' | 'name'>): Record<string, unknown> {
  return { client_id: client.clientId, name: client.name };
}

export class PolicyEvaluation {
  private readonly boundPolicies = new TtlCache<ExpressionPolicy[]>(CACHE_TTL_MS, 10_000);
  private readonly scopeMappingsByProvider = new TtlCache<ScopeMapping[]>(CACHE_TTL_MS, 10_000);
  private readonly sourceMappingsBySource = new TtlCache<{ mappings: SourcePropertyMapping[]; source: Record<string, unknown> | null }>(CACHE_TTL_MS, 10_000);

  constructor(
    private readonly collections: Pick<PolicyCollections, 'expressionPolicies' | 'policyBindings' | 'sourcePropertyMappings' | 'scopeMappings' | 'federatedSources'>,
    private readonly engine: PolicyEngine,
    private readonly events: EventLog,
    private readonly logger: Logger,
  ) {}

  // ---- trying expressions ----

  /**
   * Evaluates an expression against a sample: `variables` holds the expression's variables
   * (`request` for policies and scope mappings, `claims` and `source` for source mappings).
   * A compile error throws ValidationError; an evaluation error is reported in the result.
   */
  testExpression(kind: ExpressionKind, expression: string, variables: unknown): ExpressionTestResult {
    const compiled = compileForSave(this.engine, kind, expression);
    if (variables !== null && variables !== undefined && !isPlainObject(variables)) throw new ValidationError('context', 'must be a JSON object of variables');
    const stats: EvaluationStats = { steps: 0, units: 0 };
    try {
      const result = this.engine.evaluate(compiled, (variables ?? {}) as Record<string, unknown>, stats);
      if (kind === 'policy') {
        return { passed: result === true, result, error: typeof result === 'boolean' ? null : 'a policy must return a bool', steps: stats.steps };
      }
      return { passed: isPlainObject(result), result, error: isPlainObject(result) ? null : 'a mapping must return a map', steps: stats.steps };
    } catch (error) {
      if (error instanceof ExpressionEvaluationError) return { passed: false, result: null, error: error.message, steps: stats.steps };
      throw error;
    }
  }

  // ---- evaluation on the token path ----

  /** Every policy bound to the provider and to the client must return true; the first that does not denies. */
  evaluateTokenPolicies(input: TokenPolicyInput): Promise<PolicyDecision> {
    return inSpan('policy evaluate', { 'oauth.grant_type': input.grantType }, () => this.evaluateBoundPolicies(input));
  }

  private async evaluateBoundPolicies(input: TokenPolicyInput): Promise<PolicyDecision> {
    const bound = await this.boundTokenPolicies(input);
    if (bound.length === 0) return { allowed: true, clientPolicies: 0 };
    const variables = tokenPolicyVariables(input);
    for (const { policy, target } of bound) {
      const reason = this.runPolicy(policy, variables);
      if (reason === null) continue;
      this.events.record({
        action: 'POLICY_DENIED',
        requestId: input.requestId,
        clientId: input.client.clientId,
        username: input.user?.username ?? null,
        context: { policy: policy.name, policyId: policy.id, reason, grantType: input.grantType },
      });
      policyDenials.inc({ target_type: target });
      return { allowed: false, policyName: policy.name, reason };
    }
    return { allowed: true, clientPolicies: bound.filter((b) => b.target === 'CLIENT').length };
  }

  /** Every bound policy's verdict, recording nothing: what evaluateTokenPolicies would decide, for dry runs. */
  async explainTokenPolicies(input: TokenPolicyInput): Promise<PolicyOutcome[]> {
    const bound = await this.boundTokenPolicies(input);
    const variables = tokenPolicyVariables(input);
    return bound.map(({ policy, target }) => {
      const reason = this.runPolicy(policy, variables);
      return { policy: policy.name, target, passed: reason === null, reason };
    });
  }

  private async boundTokenPolicies(input: TokenPolicyInput): Promise<{ policy: ExpressionPolicy; target: PolicyTargetType }[]> {
    const [providerPolicies, clientPolicies] = await Promise.all([
      this.policiesBoundTo('PROVIDER', input.provider.id),
      this.policiesBoundTo('CLIENT', input.client.id),
    ]);
    return [
      ...providerPolicies.map((policy) => ({ policy, target: 'PROVIDER' as const })),
      ...clientPolicies.map((policy) => ({ policy, target: 'CLIENT' as const })),
    ];
  }

  /**
   * The generated service account's attributes from an input JWT's claims: every mapping of the
   * source, by name, later ones overriding earlier keys. A failing mapping adds nothing and is logged.
   */
  async applySourcePropertyMappings(sourceId: string, claims: Record<string, unknown>, requestId: string | null = null): Promise<Record<string, unknown>> {
    const { mappings, source } = await this.sourceMappingsBySource.getOrLoad(sourceId, async () => {
      const list = await this.collections.sourcePropertyMappings.find({ federatedSourceId: sourceId }, { sort: { name: 1 } });
      const record = list.length > 0 ? await this.collections.federatedSources.findOne({ id: sourceId }) : null;
      return { mappings: list, source: record ? sourceView(record) : null };
    });
    if (mappings.length === 0) return {};
    const variables = { claims, source };
    const attributes: Record<string, unknown> = {};
    for (const mapping of mappings) {
      const result = this.runMapping('sourceMapping', mapping, variables, requestId);
      if (result) Object.assign(attributes, result);
    }
    return attributes;
  }

  /** Claims of the scope mappings of the granted scopes, for the access token, id_token and userinfo. */
  async scopeMappingClaims(input: {
    provider: Provider; user: User | null; client: Pick<Client, 'clientId' | 'name'>; scopes: readonly string[]; requestId?: string | null;
  }): Promise<Record<string, unknown>> {
    const mappings = await this.scopeMappingsByProvider.getOrLoad(input.provider.id, () => this.collections.scopeMappings.find({ providerId: input.provider.id }, { sort: { scope: 1, name: 1 } }));
    const granted = mappings.filter((m) => input.scopes.includes(m.scope));
    if (granted.length === 0) return {};
    const variables = {
      request: {
        user: userView(input.user),
        client: clientView(input.client),
        provider: { name: input.provider.name, slug: input.provider.slug },
        context: { oauth_scopes: [...input.scopes] },
      },
    };
    const claims: Record<string, unknown> = {};
    for (const mapping of granted) {
      const result = this.runMapping('scopeMapping', mapping, variables, input.requestId ?? null);
      if (result) Object.assign(claims, result);
    }
    return claims;
  }

  /** Drops every cached binding and mapping list (admin changes on this process). */
  invalidate(): void {
    this.boundPolicies.clear();
    this.scopeMappingsByProvider.clear();
    this.sourceMappingsBySource.clear();
  }

  /** Null when the policy passes, else why not. Errors fail closed. */
  private runPolicy(policy: ExpressionPolicy, variables: Record<string, unknown>): string | null {
    try {
      const result = this.engine.evaluate(this.engine.compile('policy', policy.expression), variables);
      if (result === true) return null;
      return result === false ? 'the policy returned false' : 'the policy did not return a bool';
    } catch (error) {
      if (error instanceof ExpressionError || error instanceof ExpressionEvaluationError) return error.message;
      throw error;
    }
  }

  private runMapping(
    kind: 'scopeMapping' | 'sourceMapping', mapping: ScopeMapping | SourcePropertyMapping, variables: Record<string, unknown>, requestId: string | null,
  ): Record<string, unknown> | null {
    let reason: string;
    try {
      const result = this.engine.evaluate(this.engine.compile(kind, mapping.expression), variables);
      if (isPlainObject(result)) return result;
      reason = 'the mapping did not return a map';
    } catch (error) {
      if (!(error instanceof ExpressionError || error instanceof ExpressionEvaluationError)) throw error;
      reason = error.message;
    }
    this.logger.warn({ mappingId: mapping.id, mapping: mapping.name, reason, requestId }, 'a mapping failed and added nothing');
    this.events.record({ action: 'MAPPING_FAILED', requestId, context: { kind, mapping: mapping.name, mappingId: mapping.id, reason } });
    return null;
  }

  private policiesBoundTo(targetType: PolicyTargetType, targetId: string): Promise<ExpressionPolicy[]> {
    return this.boundPolicies.getOrLoad(`${targetType}:${targetId}`, async () => {
      const bindings = await this.collections.policyBindings.find({ targetType, targetId }, { sort: { order: 1, createdAt: 1 } });
      if (bindings.length === 0) return [];
      const policies = await this.collections.expressionPolicies.find({ id: { $in: bindings.map((b) => b.policyId) } });
      const byId = new Map(policies.map((p) => [p.id, p]));
      return bindings.map((b) => byId.get(b.policyId)).filter((p): p is ExpressionPolicy => p !== undefined);
    });
  }
}

/** What `request` shows a token policy. */
function tokenPolicyVariables(input: TokenPolicyInput): Record<string, unknown> {
  return {
    request: {
      user: userView(input.user),
      client: clientView(input.client),
      provider: { name: input.provider.name, slug: input.provider.slug },
      context: {
        oauth_scopes: [...input.scopes],
        oauth_grant_type: input.grantType,
        oauth_code_verifier: input.codeVerifier ?? null,
        oauth_jwt: input.jwtClaims ?? null,
        subject_token: input.subjectToken ?? null,
        actor_token: input.actorToken ?? null,
      },
    },
  };
}

function sourceView(source: FederatedSource): Record<string, unknown> {
  return { id: source.id, name: source.name, slug: source.slug, issuer: source.issuer };
}
