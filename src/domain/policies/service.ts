/**
 * The policy service the rest of the app holds (`Services.policies`): management (management.ts)
 * and evaluation (evaluation.ts) over one engine, management's changes clearing evaluation's caches.
 */
import type { Logger } from 'pino';
import type { EventLog } from '../events.js';
import { PolicyEngine, type ExpressionKind } from './engine.js';
import { PolicyManagement, type PolicyCollections } from './management.js';
import {
  PolicyEvaluation, type ExpressionTestResult, type PolicyDecision, type PolicyOutcome, type TokenPolicyInput,
} from './evaluation.js';

export * from './management.js';
export * from './evaluation.js';

export class PolicyService extends PolicyManagement {
  private readonly evaluation: PolicyEvaluation;

  constructor(collections: PolicyCollections, events: EventLog, logger: Logger) {
    const engine = new PolicyEngine();
    const evaluation = new PolicyEvaluation(collections, engine, events, logger);
    super(collections, engine, () => evaluation.invalidate());
    this.evaluation = evaluation;
  }

  testExpression(kind: ExpressionKind, expression: string, variables: unknown): ExpressionTestResult {
    return this.evaluation.testExpression(kind, expression, variables);
  }

  evaluateTokenPolicies(input: TokenPolicyInput): Promise<PolicyDecision> {
    return this.evaluation.evaluateTokenPolicies(input);
  }

  explainTokenPolicies(input: TokenPolicyInput): Promise<PolicyOutcome[]> {
    return this.evaluation.explainTokenPolicies(input);
  }

  applySourcePropertyMappings(sourceId: string, claims: Record<string, unknown>, requestId: string | null = null): Promise<Record<string, unknown>> {
    return this.evaluation.applySourcePropertyMappings(sourceId, claims, requestId);
  }

  scopeMappingClaims(input: Parameters<PolicyEvaluation['scopeMappingClaims']>[0]): Promise<Record<string, unknown>> {
    return this.evaluation.scopeMappingClaims(input);
  }

  /** Drops every cached binding and mapping list (admin changes on this process). */
  invalidate(): void {
    this.evaluation.invalidate();
  }
}
