import 'reflect-metadata';
import { Arg, Ctx, Field, Mutation, ObjectType, Query, Resolver, registerEnumType } from 'type-graphql';
import type { AdminContext } from './context.js';
import { JSONScalar } from './scalars.js';
import { ConfigService, type ConfigChangeAction, type ConfigPlan } from '../domain/config-document/index.js';

enum ConfigChangeActionEnum {
  CREATE = 'CREATE',
  UPDATE = 'UPDATE',
  DELETE = 'DELETE',
}
registerEnumType(ConfigChangeActionEnum, { name: 'ConfigChangeAction' });

@ObjectType('ConfigChange', {
  description: 'One change a configuration document makes: kind is provider, client, user, serviceAccount, appPassword, federatedSource, policy, binding, sourcePropertyMapping or scopeMapping.',
})
export class ConfigChangeObject {
  @Field(() => ConfigChangeActionEnum) action!: ConfigChangeAction;
  @Field(() => String) kind!: string;
  @Field(() => String) name!: string;
  @Field(() => JSONScalar, { nullable: true }) before!: Record<string, unknown> | null;
  @Field(() => JSONScalar, { nullable: true }) after!: Record<string, unknown> | null;
}

@ObjectType('ConfigSecret')
export class ConfigSecretObject {
  @Field(() => String) kind!: string;
  @Field(() => String) name!: string;
  @Field(() => String) secret!: string;
}

@ObjectType('ConfigPlan')
export class ConfigPlanObject {
  @Field(() => [ConfigChangeObject]) changes!: ConfigChangeObject[];
  @Field(() => [ConfigSecretObject], { description: 'Secrets made by applyConfig, shown once; always empty for planConfig.' }) secrets!: ConfigSecretObject[];
}

@Resolver()
export class ConfigResolver {
  @Query(() => JSONScalar, { description: 'Version 2: the whole configuration as one document, without secrets or ids.' })
  exportConfig(@Ctx() { services }: AdminContext): Promise<unknown> {
    return new ConfigService(services).export();
  }

  @Query(() => ConfigPlanObject, { description: 'Version 2: what applyConfig would change.' })
  planConfig(
    @Ctx() { services, admin }: AdminContext,
    @Arg('document', () => JSONScalar) document: unknown,
    @Arg('prune', () => Boolean, { nullable: true, defaultValue: false }) prune?: boolean | null,
  ): Promise<ConfigPlan> {
    return new ConfigService(services).plan(document, { prune: prune ?? false, callerId: admin.id });
  }

  @Mutation(() => ConfigPlanObject, { description: 'Version 2: all or nothing; secrets it made are in the result, once.' })
  applyConfig(
    @Ctx() { services, admin, requestId }: AdminContext,
    @Arg('document', () => JSONScalar) document: unknown,
    @Arg('prune', () => Boolean, { nullable: true, defaultValue: false }) prune?: boolean | null,
  ): Promise<ConfigPlan> {
    return new ConfigService(services).apply(document, { prune: prune ?? false, callerId: admin.id }, { requestId, username: admin.username });
  }
}
