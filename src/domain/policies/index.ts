/**
 * Policies and mappings (issue 6): CEL expressions that decide whether a token is issued and what
 * it says. The grants call these three hooks; management lives in PolicyService (services.policies).
 */
import type { Services } from '../services.js';
import type { Client, Provider, User } from '../model.js';
import type { PolicyDecision } from './service.js';

export { PolicyService, CACHE_TTL_MS, type PolicyDecision, type ExpressionTestResult } from './service.js';
export {
  PolicyEngine, ExpressionError, ExpressionEvaluationError, EvaluationLimitError,
  MAX_EXPRESSION_BYTES, MAX_STEPS, MAX_VALUE_UNITS, MAX_EVALUATION_MS, type ExpressionKind,
} from './engine.js';

/**
 * All policies bound to the provider and to the client must pass. A denial records POLICY_DENIED
 * naming the policy; the caller answers access_denied (device flow) or invalid_grant (others).
 */
export function evaluateTokenPolicies(
  services: Pick<Services, 'policies'>,
  input: {
    provider: Provider;
    client: Client;
    user: User | null;
    grantType: string;
    scopes: readonly string[];
    codeVerifier?: string | null;
    jwtClaims?: Record<string, unknown> | null;
    requestId: string | null;
  },
): Promise<PolicyDecision> {
  return services.policies.evaluateTokenPolicies(input);
}

/** Attributes for the generated service account of a federated source, from the input JWT's claims. */
export function applySourcePropertyMappings(
  services: Pick<Services, 'policies'>, sourceId: string, claims: Record<string, unknown>, requestId: string | null = null,
): Promise<Record<string, unknown>> {
  return services.policies.applySourcePropertyMappings(sourceId, claims, requestId);
}

/** Claims to merge into the access token, id_token and userinfo for the granted scopes. */
export function scopeMappingClaims(
  services: Pick<Services, 'policies'>,
  input: { provider: Provider; user: User | null; client: Pick<Client, 'clientId' | 'name'>; scopes: readonly string[]; requestId?: string | null },
): Promise<Record<string, unknown>> {
  return services.policies.scopeMappingClaims(input);
}
