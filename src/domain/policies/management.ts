/**
 * Managing expression policies, their bindings, source property mappings and scope mappings: every
 * expression is compiled and type-checked on save; every change calls `onChange` (the evaluation's
 * caches are cleared by it).
 */
import { randomUUID } from 'node:crypto';
import type { ExpressionPolicy, PolicyBinding, PolicyTargetType, ScopeMapping, SourcePropertyMapping } from '../model.js';
import { DomainConflictError, NotFoundError, ValidationError } from '../errors.js';
import { isScopeToken } from '../scopes.js';
import type { Collections } from '../../store/ports.js';
import { ConflictError } from '../../store/errors.js';
import { ExpressionError, type CompiledExpression, type ExpressionKind, type PolicyEngine } from './engine.js';

const MAX_NAME_LENGTH = 200;
const MAX_ORDER = 1_000_000;

export const POLICY_TARGET_TYPES = ['PROVIDER', 'CLIENT'] as const satisfies readonly PolicyTargetType[];

export interface PolicyInput {
  name?: string | null;
  expression?: string | null;
}

export interface BindPolicyInput {
  policyId: string;
  targetType: PolicyTargetType;
  targetId: string;
  order?: number | null;
}

export interface SourcePropertyMappingInput {
  federatedSourceId?: string | null;
  name?: string | null;
  expression?: string | null;
}

export interface ScopeMappingInput {
  providerId?: string | null;
  scope?: string | null;
  name?: string | null;
  expression?: string | null;
}

export interface BindingFilter {
  policyId?: string | null;
  targetType?: PolicyTargetType | null;
  targetId?: string | null;
}

export type PolicyCollections = Pick<
  Collections,
  'expressionPolicies' | 'policyBindings' | 'sourcePropertyMappings' | 'scopeMappings' | 'providers' | 'clients' | 'federatedSources'
>;

/** Compiles for saving: a failure is a ValidationError naming the position. */
export function compileForSave(engine: PolicyEngine, kind: ExpressionKind, expression: string | null | undefined, field = 'expression'): CompiledExpression {
  if (typeof expression !== 'string') throw new ValidationError(field, 'is required');
  try {
    return engine.compile(kind, expression);
  } catch (error) {
    if (error instanceof ExpressionError) throw new ValidationError(field, error.message);
    throw error;
  }
}

function validateName(value: string | null | undefined): string {
  const name = (value ?? '').trim();
  if (name === '') throw new ValidationError('name', 'must not be empty');
  if (name.length > MAX_NAME_LENGTH) throw new ValidationError('name', `must be at most ${MAX_NAME_LENGTH} characters`);
  return name;
}

export class PolicyManagement {
  constructor(
    protected readonly collections: PolicyCollections,
    readonly engine: PolicyEngine,
    private readonly onChange: () => void,
  ) {}

  compileForSave(kind: ExpressionKind, expression: string | null | undefined, field = 'expression'): CompiledExpression {
    return compileForSave(this.engine, kind, expression, field);
  }

  // ---- policies ----

  listPolicies(): Promise<ExpressionPolicy[]> {
    return this.collections.expressionPolicies.find({}, { sort: { name: 1 } });
  }

  getPolicy(id: string): Promise<ExpressionPolicy | null> {
    return this.collections.expressionPolicies.findOne({ id });
  }

  getPolicies(ids: readonly string[]): Promise<ExpressionPolicy[]> {
    return this.collections.expressionPolicies.find({ id: { $in: [...ids] } });
  }

  async createPolicy(input: PolicyInput): Promise<ExpressionPolicy> {
    const name = validateName(input.name);
    const expression = this.compileForSave('policy', input.expression).source;
    const now = new Date();
    const policy: ExpressionPolicy = { id: randomUUID(), name, expression, createdAt: now, updatedAt: now };
    try {
      await this.collections.expressionPolicies.insert(policy);
    } catch (error) {
      if (error instanceof ConflictError) throw new DomainConflictError('name', `a policy named '${name}' already exists`);
      throw error;
    }
    this.onChange();
    return policy;
  }

  async updatePolicy(id: string, input: PolicyInput): Promise<ExpressionPolicy> {
    const $set: Partial<ExpressionPolicy> = { updatedAt: new Date() };
    if (input.name != null) $set.name = validateName(input.name);
    if (input.expression != null) $set.expression = this.compileForSave('policy', input.expression).source;
    let updated: ExpressionPolicy | null;
    try {
      updated = await this.collections.expressionPolicies.updateOne({ id }, { $set });
    } catch (error) {
      if (error instanceof ConflictError) throw new DomainConflictError('name', `a policy named '${$set.name}' already exists`);
      throw error;
    }
    if (!updated) throw new NotFoundError('policy', id);
    this.onChange();
    return updated;
  }

  /** Deleting a policy removes its bindings with it. */
  async deletePolicy(id: string): Promise<boolean> {
    if (!(await this.collections.expressionPolicies.deleteOne({ id }))) throw new NotFoundError('policy', id);
    await this.collections.policyBindings.deleteMany({ policyId: id });
    this.onChange();
    return true;
  }

  // ---- bindings ----

  listBindings(filter: BindingFilter = {}): Promise<PolicyBinding[]> {
    const query: Record<string, string> = {};
    if (filter.policyId) query.policyId = filter.policyId;
    if (filter.targetType) query.targetType = filter.targetType;
    if (filter.targetId) query.targetId = filter.targetId;
    return this.collections.policyBindings.find(query, { sort: { order: 1, createdAt: 1 } });
  }

  /** Binding the same policy to the same target twice is a CONFLICT. */
  async bind(input: BindPolicyInput): Promise<PolicyBinding> {
    if (!POLICY_TARGET_TYPES.includes(input.targetType)) throw new ValidationError('targetType', 'must be PROVIDER or CLIENT');
    const order = input.order ?? 0;
    if (!Number.isInteger(order) || Math.abs(order) > MAX_ORDER) throw new ValidationError('order', `must be a whole number from -${MAX_ORDER} to ${MAX_ORDER}`);
    if (!(await this.getPolicy(input.policyId))) throw new NotFoundError('policy', input.policyId);
    const target = input.targetType === 'PROVIDER'
      ? await this.collections.providers.findOne({ id: input.targetId })
      : await this.collections.clients.findOne({ id: input.targetId });
    if (!target) throw new NotFoundError(input.targetType === 'PROVIDER' ? 'provider' : 'client', input.targetId);
    const existing = await this.collections.policyBindings.findOne({ policyId: input.policyId, targetType: input.targetType, targetId: input.targetId });
    if (existing) throw new DomainConflictError('policyId', 'this policy is already bound to this target');
    const binding: PolicyBinding = {
      id: randomUUID(), policyId: input.policyId, targetType: input.targetType, targetId: input.targetId, order, createdAt: new Date(),
    };
    await this.collections.policyBindings.insert(binding);
    this.onChange();
    return binding;
  }

  /** Moves a binding in its target's evaluation order (the policy stays bound throughout). */
  async setBindingOrder(id: string, order: number): Promise<PolicyBinding> {
    if (!Number.isInteger(order) || Math.abs(order) > MAX_ORDER) throw new ValidationError('order', `must be a whole number from -${MAX_ORDER} to ${MAX_ORDER}`);
    const updated = await this.collections.policyBindings.updateOne({ id }, { $set: { order } });
    if (!updated) throw new NotFoundError('policy binding', id);
    this.onChange();
    return updated;
  }

  async unbind(id: string): Promise<boolean> {
    if (!(await this.collections.policyBindings.deleteOne({ id }))) throw new NotFoundError('policy binding', id);
    this.onChange();
    return true;
  }

  // ---- source property mappings ----

  listSourcePropertyMappings(federatedSourceId?: string | null): Promise<SourcePropertyMapping[]> {
    return this.collections.sourcePropertyMappings.find(federatedSourceId ? { federatedSourceId } : {}, { sort: { name: 1 } });
  }

  async createSourcePropertyMapping(input: SourcePropertyMappingInput): Promise<SourcePropertyMapping> {
    const name = validateName(input.name);
    const expression = this.compileForSave('sourceMapping', input.expression).source;
    const federatedSourceId = await this.existingSource(input.federatedSourceId);
    const now = new Date();
    const mapping: SourcePropertyMapping = { id: randomUUID(), federatedSourceId, name, expression, createdAt: now, updatedAt: now };
    await this.collections.sourcePropertyMappings.insert(mapping);
    this.onChange();
    return mapping;
  }

  async updateSourcePropertyMapping(id: string, input: SourcePropertyMappingInput): Promise<SourcePropertyMapping> {
    const $set: Partial<SourcePropertyMapping> = { updatedAt: new Date() };
    if (input.name != null) $set.name = validateName(input.name);
    if (input.expression != null) $set.expression = this.compileForSave('sourceMapping', input.expression).source;
    if (input.federatedSourceId != null) $set.federatedSourceId = await this.existingSource(input.federatedSourceId);
    const updated = await this.collections.sourcePropertyMappings.updateOne({ id }, { $set });
    if (!updated) throw new NotFoundError('source property mapping', id);
    this.onChange();
    return updated;
  }

  async deleteSourcePropertyMapping(id: string): Promise<boolean> {
    if (!(await this.collections.sourcePropertyMappings.deleteOne({ id }))) throw new NotFoundError('source property mapping', id);
    this.onChange();
    return true;
  }

  // ---- scope mappings ----

  listScopeMappings(providerId?: string | null): Promise<ScopeMapping[]> {
    return this.collections.scopeMappings.find(providerId ? { providerId } : {}, { sort: { scope: 1, name: 1 } });
  }

  async createScopeMapping(input: ScopeMappingInput): Promise<ScopeMapping> {
    const name = validateName(input.name);
    const scope = this.validateScope(input.scope);
    const expression = this.compileForSave('scopeMapping', input.expression).source;
    const providerId = await this.existingProvider(input.providerId);
    const now = new Date();
    const mapping: ScopeMapping = { id: randomUUID(), providerId, scope, name, expression, createdAt: now, updatedAt: now };
    await this.collections.scopeMappings.insert(mapping);
    this.onChange();
    return mapping;
  }

  async updateScopeMapping(id: string, input: ScopeMappingInput): Promise<ScopeMapping> {
    const $set: Partial<ScopeMapping> = { updatedAt: new Date() };
    if (input.name != null) $set.name = validateName(input.name);
    if (input.scope != null) $set.scope = this.validateScope(input.scope);
    if (input.expression != null) $set.expression = this.compileForSave('scopeMapping', input.expression).source;
    if (input.providerId != null) $set.providerId = await this.existingProvider(input.providerId);
    const updated = await this.collections.scopeMappings.updateOne({ id }, { $set });
    if (!updated) throw new NotFoundError('scope mapping', id);
    this.onChange();
    return updated;
  }

  async deleteScopeMapping(id: string): Promise<boolean> {
    if (!(await this.collections.scopeMappings.deleteOne({ id }))) throw new NotFoundError('scope mapping', id);
    this.onChange();
    return true;
  }

  private validateScope(value: string | null | undefined): string {
    if (typeof value !== 'string' || !isScopeToken(value)) {
      throw new ValidationError('scope', 'must be a scope token (printable ASCII, no spaces, quotes or backslashes, at most 128 characters)');
    }
    return value;
  }

  private async existingSource(id: string | null | undefined): Promise<string> {
    if (!id) throw new ValidationError('federatedSourceId', 'is required');
    if (!(await this.collections.federatedSources.findOne({ id }))) throw new NotFoundError('federated source', id);
    return id;
  }

  private async existingProvider(id: string | null | undefined): Promise<string> {
    if (!id) throw new ValidationError('providerId', 'is required');
    if (!(await this.collections.providers.findOne({ id }))) throw new NotFoundError('provider', id);
    return id;
  }
}
