/**
 * The metrics worth alerting on, beyond HTTP requests: what the token endpoint answered, how device
 * flows end, policy denials, JWKS fetch failures, store latency and rate-limit refusals.
 *
 * They are process-wide (one server per process in production) and registered into each app's
 * /metrics registry by src/http/metrics.ts. Every label has a small, fixed set of values chosen by
 * the server, never by the caller: no client_id, no raw grant_type, no path.
 */
import { Counter, Histogram, type Metric } from 'prom-client';

/** The grant types the token endpoint knows; anything else is counted as 'unsupported'. */
const KNOWN_GRANTS = new Set([
  'client_credentials', 'urn:ietf:params:oauth:grant-type:device_code', 'refresh_token', 'password',
  'urn:ietf:params:oauth:grant-type:token-exchange', 'urn:ietf:params:oauth:grant-type:jwt-bearer',
]);

/** OAuth error codes (RFC 6749 §5.2, RFC 8628 §3.5, RFC 8693); anything else counts as 'server_error'. */
const KNOWN_OUTCOMES = new Set([
  'issued', 'invalid_request', 'invalid_client', 'invalid_grant', 'unauthorized_client', 'unsupported_grant_type',
  'invalid_scope', 'invalid_target', 'access_denied', 'authorization_pending', 'slow_down', 'expired_token',
  'invalid_dpop_proof', 'use_dpop_nonce', 'server_error', 'temporarily_unavailable',
]);

export const tokenRequests = new Counter({
  name: 'tessera_token_requests_total',
  help: 'Token endpoint answers by grant type and outcome (issued, or the OAuth error code)',
  labelNames: ['grant_type', 'outcome'] as const, registers: [],
});

export const deviceFlowOutcomes = new Counter({
  name: 'tessera_device_flow_outcomes_total',
  help: 'Device authorizations by how they ended: approved, denied (by the user), exchanged (tokens issued), expired (polled after expiry)',
  labelNames: ['outcome'] as const, registers: [],
});

export const policyDenials = new Counter({
  name: 'tessera_policy_denials_total',
  help: 'Token requests refused by an expression policy, by what the policy is bound to',
  labelNames: ['target_type'] as const, registers: [],
});

export const jwksFetches = new Counter({
  name: 'tessera_jwks_fetches_total',
  help: 'Fetches of a federated source\'s keys (discovery document and JWKS) by result',
  labelNames: ['result'] as const, registers: [],
});

export const storeLatency = new Histogram({
  name: 'tessera_store_operation_duration_seconds',
  help: 'Store operation latency by collection and operation',
  labelNames: ['collection', 'operation'] as const, registers: [],
  buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
});

export const rateLimitRefusals = new Counter({
  name: 'tessera_rate_limit_refusals_total',
  help: 'Requests refused with 429 by a rate limit, by route pattern',
  labelNames: ['route'] as const, registers: [],
});

export const OPERATIONAL_METRICS: readonly Metric[] = [
  tokenRequests, deviceFlowOutcomes, policyDenials, jwksFetches, storeLatency, rateLimitRefusals,
];

export function grantLabel(grantType: string | undefined | null): string {
  return grantType && KNOWN_GRANTS.has(grantType) ? grantType : 'unsupported';
}

/** One token endpoint answer. `outcome` is 'issued' or an OAuth error code. */
export function countTokenRequest(grantType: string | undefined | null, outcome: string): void {
  tokenRequests.inc({ grant_type: grantLabel(grantType), outcome: KNOWN_OUTCOMES.has(outcome) ? outcome : 'server_error' });
}
