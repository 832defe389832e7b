/**
 * Admin API for policies and mappings: expression policies and their bindings, source property
 * mappings, scope mappings, and testPolicy / testMapping to try an expression before binding it.
 * Expressions are compiled and type-checked on save: a bad one is BAD_USER_INPUT naming the position.
 */
import { Arg, Ctx, Field, FieldResolver, ID, InputType, Int, Mutation, ObjectType, Query, Resolver, Root, registerEnumType } from 'type-graphql';
import { recordConfigChange, type AdminContext } from './context.js';
import { DateTimeScalar, JSONScalar } from './scalars.js';
import type { ExpressionPolicy, PolicyBinding, PolicyTargetType, ScopeMapping, SourcePropertyMapping } from '../domain/model.js';
import type { ExpressionTestResult } from '../domain/policies/service.js';
import { NotFoundError } from '../domain/errors.js';

export const PolicyTargetTypeEnum = { PROVIDER: 'PROVIDER', CLIENT: 'CLIENT' } as const;
registerEnumType(PolicyTargetTypeEnum, { name: 'PolicyTargetType', description: 'What a policy is bound to: a provider (all its clients) or one client.' });

export const MappingKindEnum = { SCOPE: 'SCOPE', SOURCE_PROPERTY: 'SOURCE_PROPERTY' } as const;
type MappingKind = keyof typeof MappingKindEnum;
registerEnumType(MappingKindEnum, {
  name: 'MappingKind',
  description: 'SCOPE: variable `request` (user, client, context.oauth_scopes). SOURCE_PROPERTY: variables `claims` (the input JWT) and `source`.',
});

@ObjectType('ExpressionPolicy', {
  description: 'A CEL expression returning a bool, evaluated on every token request of the providers and clients it is bound to; all bound policies must pass.',
})
export class ExpressionPolicyObject {
  @Field(() => ID) id!: string;
  @Field(() => String) name!: string;
  @Field(() => String, { description: 'CEL; variables: request.user (username, type, attributes), request.client (client_id, name), request.context (oauth_scopes, oauth_grant_type, oauth_code_verifier, oauth_jwt, and for token exchange subject_token and actor_token, the verified claims).' })
  expression!: string;
  @Field(() => DateTimeScalar) createdAt!: Date;
  @Field(() => DateTimeScalar) updatedAt!: Date;
}

@ObjectType('PolicyBinding')
export class PolicyBindingObject {
  @Field(() => ID) id!: string;
  @Field(() => ID) policyId!: string;
  @Field(() => PolicyTargetTypeEnum) targetType!: PolicyTargetType;
  @Field(() => ID, { description: 'The provider id or the client id (the record id, not client_id).' }) targetId!: string;
  @Field(() => Int, { description: 'Evaluation order within the target, lowest first.' }) order!: number;
  @Field(() => DateTimeScalar) createdAt!: Date;
}

@ObjectType('SourcePropertyMapping', {
  description: "A CEL expression returning a map: attributes of the generated service account, from the input JWT's claims (variable `claims`).",
})
export class SourcePropertyMappingObject {
  @Field(() => ID) id!: string;
  @Field(() => ID) federatedSourceId!: string;
  @Field(() => String) name!: string;
  @Field(() => String) expression!: string;
  @Field(() => DateTimeScalar) createdAt!: Date;
  @Field(() => DateTimeScalar) updatedAt!: Date;
}

@ObjectType('ScopeMapping', {
  description: 'A CEL expression returning a map of claims, merged into the access token, id_token and userinfo when its scope is granted.',
})
export class ScopeMappingObject {
  @Field(() => ID) id!: string;
  @Field(() => ID) providerId!: string;
  @Field(() => String) scope!: string;
  @Field(() => String) name!: string;
  @Field(() => String) expression!: string;
  @Field(() => DateTimeScalar) createdAt!: Date;
  @Field(() => DateTimeScalar) updatedAt!: Date;
}

@ObjectType('ExpressionTestResult')
export class ExpressionTestResultObject {
  @Field(() => Boolean, { description: 'Policies: the expression returned true. Mappings: it returned a map.' }) passed!: boolean;
  @Field(() => JSONScalar, { nullable: true, description: 'What the expression returned, as JSON.' }) result!: unknown;
  @Field(() => String, { nullable: true, description: 'Why the evaluation failed (a missing key, a bound crossed, …).' }) error!: string | null;
  @Field(() => Int, { description: 'Evaluation steps used (the bound is 50000).' }) steps!: number;
}

@InputType('CreateExpressionPolicyInput')
export class CreateExpressionPolicyInput {
  @Field(() => String) name!: string;
  @Field(() => String) expression!: string;
}

@InputType('UpdateExpressionPolicyInput')
export class UpdateExpressionPolicyInput {
  @Field(() => String, { nullable: true }) name?: string | null;
  @Field(() => String, { nullable: true }) expression?: string | null;
}

@InputType('BindPolicyInput')
export class BindPolicyInput {
  @Field(() => ID) policyId!: string;
  @Field(() => PolicyTargetTypeEnum) targetType!: PolicyTargetType;
  @Field(() => ID) targetId!: string;
  @Field(() => Int, { nullable: true, defaultValue: 0 }) order?: number | null;
}

@InputType('CreateSourcePropertyMappingInput')
export class CreateSourcePropertyMappingInput {
  @Field(() => ID) federatedSourceId!: string;
  @Field(() => String) name!: string;
  @Field(() => String) expression!: string;
}

@InputType('UpdateSourcePropertyMappingInput')
export class UpdateSourcePropertyMappingInput {
  @Field(() => String, { nullable: true }) name?: string | null;
  @Field(() => String, { nullable: true }) expression?: string | null;
}

@InputType('CreateScopeMappingInput')
export class CreateScopeMappingInput {
  @Field(() => ID) providerId!: string;
  @Field(() => String) scope!: string;
  @Field(() => String) name!: string;
  @Field(() => String) expression!: string;
}

@InputType('UpdateScopeMappingInput')
export class UpdateScopeMappingInput {
  @Field(() => String, { nullable: true }) scope?: string | null;
  @Field(() => String, { nullable: true }) name?: string | null;
  @Field(() => String, { nullable: true }) expression?: string | null;
}

@Resolver(() => ExpressionPolicyObject)
export class ExpressionPolicyResolver {
  @Query(() => [ExpressionPolicyObject])
  expressionPolicies(@Ctx() { services }: AdminContext): Promise<ExpressionPolicy[]> {
    return services.policies.listPolicies();
  }

  @Query(() => ExpressionPolicyObject, { nullable: true })
  expressionPolicy(@Ctx() { services }: AdminContext, @Arg('id', () => ID) id: string): Promise<ExpressionPolicy | null> {
    return services.policies.getPolicy(id);
  }

  @Query(() => [PolicyBindingObject], { description: 'Bindings, optionally of one policy or one target, in evaluation order.' })
  policyBindings(
    @Ctx() { services }: AdminContext,
    @Arg('policyId', () => ID, { nullable: true }) policyId?: string | null,
    @Arg('targetType', () => PolicyTargetTypeEnum, { nullable: true }) targetType?: PolicyTargetType | null,
    @Arg('targetId', () => ID, { nullable: true }) targetId?: string | null,
  ): Promise<PolicyBinding[]> {
    return services.policies.listBindings({ policyId, targetType, targetId });
  }

  @FieldResolver(() => [PolicyBindingObject])
  bindings(@Root() policy: ExpressionPolicy, @Ctx() { services }: AdminContext): Promise<PolicyBinding[]> {
    return services.policies.listBindings({ policyId: policy.id });
  }

  @Query(() => ExpressionTestResultObject, {
    description: 'Evaluates a policy expression against a sample context without saving it. context holds the variables: {"request": {...}}.',
  })
  testPolicy(
    @Ctx() { services }: AdminContext,
    @Arg('expression', () => String) expression: string,
    @Arg('context', () => JSONScalar, { nullable: true }) context?: unknown,
  ): ExpressionTestResult {
    return services.policies.testExpression('policy', expression, context);
  }

  @Query(() => ExpressionTestResultObject, {
    description: 'Evaluates a mapping expression against a sample context without saving it. context holds the variables: {"request": {...}} for SCOPE, {"claims": {...}} for SOURCE_PROPERTY.',
  })
  testMapping(
    @Ctx() { services }: AdminContext,
    @Arg('expression', () => String) expression: string,
    @Arg('context', () => JSONScalar, { nullable: true }) context?: unknown,
    @Arg('kind', () => MappingKindEnum, { defaultValue: 'SCOPE' }) kind: MappingKind = 'SCOPE',
  ): ExpressionTestResult {
    return services.policies.testExpression(kind === 'SCOPE' ? 'scopeMapping' : 'sourceMapping', expression, context);
  }

  @Mutation(() => ExpressionPolicyObject)
  async createExpressionPolicy(
    @Ctx() ctx: AdminContext, @Arg('input', () => CreateExpressionPolicyInput) input: CreateExpressionPolicyInput,
  ): Promise<ExpressionPolicy> {
    const policy = await ctx.services.policies.createPolicy(input);
    recordConfigChange(ctx, 'createExpressionPolicy', { policyId: policy.id, name: policy.name });
    return policy;
  }

  @Mutation(() => ExpressionPolicyObject)
  async updateExpressionPolicy(
    @Ctx() ctx: AdminContext,
    @Arg('id', () => ID) id: string,
    @Arg('input', () => UpdateExpressionPolicyInput) input: UpdateExpressionPolicyInput,
  ): Promise<ExpressionPolicy> {
    const policy = await ctx.services.policies.updatePolicy(id, input);
    recordConfigChange(ctx, 'updateExpressionPolicy', { policyId: id, fields: Object.keys(input) });
    return policy;
  }

  @Mutation(() => Boolean, { description: 'Deletes the policy and its bindings.' })
  async deleteExpressionPolicy(@Ctx() ctx: AdminContext, @Arg('id', () => ID) id: string): Promise<boolean> {
    await ctx.services.policies.deletePolicy(id);
    recordConfigChange(ctx, 'deleteExpressionPolicy', { policyId: id });
    return true;
  }

  @Mutation(() => PolicyBindingObject)
  async bindPolicy(@Ctx() ctx: AdminContext, @Arg('input', () => BindPolicyInput) input: BindPolicyInput): Promise<PolicyBinding> {
    const binding = await ctx.services.policies.bind(input);
    recordConfigChange(ctx, 'bindPolicy', { bindingId: binding.id, policyId: binding.policyId, targetType: binding.targetType, targetId: binding.targetId });
    return binding;
  }

  @Mutation(() => Boolean, { description: 'Removes a binding (by its id).' })
  async unbindPolicy(@Ctx() ctx: AdminContext, @Arg('id', () => ID) id: string): Promise<boolean> {
    await ctx.services.policies.unbind(id);
    recordConfigChange(ctx, 'unbindPolicy', { bindingId: id });
    return true;
  }
}

@Resolver(() => PolicyBindingObject)
export class PolicyBindingResolver {
  @FieldResolver(() => ExpressionPolicyObject)
  async policy(@Root() binding: PolicyBinding, @Ctx() { services }: AdminContext): Promise<ExpressionPolicy> {
    const policy = await services.policies.getPolicy(binding.policyId);
    if (!policy) throw new NotFoundError('policy', binding.policyId);
    return policy;
  }
}

@Resolver(() => SourcePropertyMappingObject)
export class SourcePropertyMappingResolver {
  @Query(() => [SourcePropertyMappingObject])
  sourcePropertyMappings(
    @Ctx() { services }: AdminContext, @Arg('federatedSourceId', () => ID, { nullable: true }) federatedSourceId?: string | null,
  ): Promise<SourcePropertyMapping[]> {
    return services.policies.listSourcePropertyMappings(federatedSourceId);
  }

  @Mutation(() => SourcePropertyMappingObject)
  async createSourcePropertyMapping(
    @Ctx() ctx: AdminContext, @Arg('input', () => CreateSourcePropertyMappingInput) input: CreateSourcePropertyMappingInput,
  ): Promise<SourcePropertyMapping> {
    const mapping = await ctx.services.policies.createSourcePropertyMapping(input);
    recordConfigChange(ctx, 'createSourcePropertyMapping', { mappingId: mapping.id, federatedSourceId: mapping.federatedSourceId, name: mapping.name });
    return mapping;
  }

  @Mutation(() => SourcePropertyMappingObject)
  async updateSourcePropertyMapping(
    @Ctx() ctx: AdminContext,
    @Arg('id', () => ID) id: string,
    @Arg('input', () => UpdateSourcePropertyMappingInput) input: UpdateSourcePropertyMappingInput,
  ): Promise<SourcePropertyMapping> {
    const mapping = await ctx.services.policies.updateSourcePropertyMapping(id, input);
    recordConfigChange(ctx, 'updateSourcePropertyMapping', { mappingId: id, fields: Object.keys(input) });
    return mapping;
  }

  @Mutation(() => Boolean)
  async deleteSourcePropertyMapping(@Ctx() ctx: AdminContext, @Arg('id', () => ID) id: string): Promise<boolean> {
    await ctx.services.policies.deleteSourcePropertyMapping(id);
    recordConfigChange(ctx, 'deleteSourcePropertyMapping', { mappingId: id });
    return true;
  }
}

@Resolver(() => ScopeMappingObject)
export class ScopeMappingResolver {
  @Query(() => [ScopeMappingObject])
  scopeMappings(@Ctx() { services }: AdminContext, @Arg('providerId', () => ID, { nullable: true }) providerId?: string | null): Promise<ScopeMapping[]> {
    return services.policies.listScopeMappings(providerId);
  }

  @Mutation(() => ScopeMappingObject)
  async createScopeMapping(@Ctx() ctx: AdminContext, @Arg('input', () => CreateScopeMappingInput) input: CreateScopeMappingInput): Promise<ScopeMapping> {
    const mapping = await ctx.services.policies.createScopeMapping(input);
    recordConfigChange(ctx, 'createScopeMapping', { mappingId: mapping.id, providerId: mapping.providerId, scope: mapping.scope, name: mapping.name });
    return mapping;
  }

  @Mutation(() => ScopeMappingObject)
  async updateScopeMapping(
    @Ctx() ctx: AdminContext,
    @Arg('id', () => ID) id: string,
    @Arg('input', () => UpdateScopeMappingInput) input: UpdateScopeMappingInput,
  ): Promise<ScopeMapping> {
    const mapping = await ctx.services.policies.updateScopeMapping(id, input);
    recordConfigChange(ctx, 'updateScopeMapping', { mappingId: id, fields: Object.keys(input) });
    return mapping;
  }

  @Mutation(() => Boolean)
  async deleteScopeMapping(@Ctx() ctx: AdminContext, @Arg('id', () => ID) id: string): Promise<boolean> {
    await ctx.services.policies.deleteScopeMapping(id);
    recordConfigChange(ctx, 'deleteScopeMapping', { mappingId: id });
    return true;
  }
}
