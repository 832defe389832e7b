import 'reflect-metadata';
import { Arg, Ctx, Field, FieldResolver, ID, InputType, Int, Mutation, ObjectType, Query, Resolver, Root } from 'type-graphql';
import { recordConfigChange, setFields, type AdminContext } from './context.js';
import { DateTimeScalar } from './scalars.js';
import { SigningAlgorithmEnum, UserCodeCharsetEnum } from './enums.js';
import type { DeviceFlowSettings, Provider, SigningAlgorithm, UserCodeCharset } from '../domain/model.js';
import { ValidationError } from '../domain/errors.js';

@ObjectType('DeviceFlowSettings')
export class DeviceFlowSettingsType implements DeviceFlowSettings {
  @Field(() => UserCodeCharsetEnum) userCodeCharset!: UserCodeCharset;
  @Field(() => String, { nullable: true, description: 'The alphabet used when userCodeCharset is CUSTOM.' }) userCodeAlphabet!: string | null;
  @Field(() => Int) userCodeLength!: number;
  @Field(() => Int) codeLifetimeSeconds!: number;
  @Field(() => Int) pollIntervalSeconds!: number;
  @Field(() => String, { nullable: true, description: 'Overrides the default verification URI (PUBLIC_URL + /device).' }) verificationUri!: string | null;
  @Field(() => Boolean, { description: 'When true, a device authorization request without code_challenge is rejected.' }) requirePkce!: boolean;
}

@InputType('DeviceFlowSettingsInput')
export class DeviceFlowSettingsInput {
  @Field(() => UserCodeCharsetEnum, { nullable: true }) userCodeCharset?: UserCodeCharset | null;
  @Field(() => String, { nullable: true }) userCodeAlphabet?: string | null;
  @Field(() => Int, { nullable: true }) userCodeLength?: number | null;
  @Field(() => Int, { nullable: true }) codeLifetimeSeconds?: number | null;
  @Field(() => Int, { nullable: true }) pollIntervalSeconds?: number | null;
  @Field(() => String, { nullable: true }) verificationUri?: string | null;
  @Field(() => Boolean, { nullable: true }) requirePkce?: boolean | null;
}

@ObjectType('Provider', {
  description: 'An authorization server: one issuer, its signing key, token lifetimes, device-flow settings and the JWT issuers it trusts for client_credentials.',
})
export class ProviderType {
  @Field(() => ID) id!: string;
  @Field(() => String) name!: string;
  @Field(() => String) slug!: string;
  @Field(() => Int) accessTokenLifetimeSeconds!: number;
  @Field(() => Int) refreshTokenLifetimeSeconds!: number;
  @Field(() => SigningAlgorithmEnum) signingAlgorithm!: SigningAlgorithm;
  @Field(() => DeviceFlowSettingsType) deviceFlow!: DeviceFlowSettings;
  @Field(() => String, { nullable: true, description: 'Shown to people on the verification page instead of name (an extension of the contract).' }) displayName?: string | null;
  @Field(() => String, { nullable: true, description: 'An absolute http(s) URL of a logo shown on the verification page (an extension of the contract).' }) logoUrl?: string | null;
  @Field(() => DateTimeScalar) createdAt!: Date;
}

@InputType('CreateProviderInput')
export class CreateProviderInput {
  @Field(() => String) name!: string;
  @Field(() => String) slug!: string;
  @Field(() => Int, { nullable: true }) accessTokenLifetimeSeconds?: number | null;
  @Field(() => Int, { nullable: true }) refreshTokenLifetimeSeconds?: number | null;
  @Field(() => SigningAlgorithmEnum, { nullable: true }) signingAlgorithm?: SigningAlgorithm | null;
  @Field(() => DeviceFlowSettingsInput, { nullable: true }) deviceFlow?: DeviceFlowSettingsInput | null;
  @Field(() => [ID], { nullable: true }) federatedSourceIds?: string[] | null;
  @Field(() => [ID], { nullable: true }) federatedProviderIds?: string[] | null;
  @Field(() => Boolean, { nullable: true }) dpopNonce?: boolean | null;
  @Field(() => Int, { nullable: true }) keyRotationDays?: number | null;
  @Field(() => String, { nullable: true, description: 'At most 100 characters; on update an empty string clears it.' }) displayName?: string | null;
  @Field(() => String, { nullable: true, description: 'An absolute http or https URL; on update an empty string clears it.' }) logoUrl?: string | null;
}

@InputType('UpdateProviderInput')
export class UpdateProviderInput {
  @Field(() => String, { nullable: true }) name?: string | null;
  @Field(() => Int, { nullable: true }) accessTokenLifetimeSeconds?: number | null;
  @Field(() => Int, { nullable: true }) refreshTokenLifetimeSeconds?: number | null;
  @Field(() => SigningAlgorithmEnum, { nullable: true }) signingAlgorithm?: SigningAlgorithm | null;
  @Field(() => DeviceFlowSettingsInput, { nullable: true }) deviceFlow?: DeviceFlowSettingsInput | null;
  @Field(() => [ID], { nullable: true }) federatedSourceIds?: string[] | null;
  @Field(() => [ID], { nullable: true }) federatedProviderIds?: string[] | null;
  @Field(() => Boolean, { nullable: true }) dpopNonce?: boolean | null;
  @Field(() => Int, { nullable: true }) keyRotationDays?: number | null;
  @Field(() => String, { nullable: true, description: 'At most 100 characters; on update an empty string clears it.' }) displayName?: string | null;
  @Field(() => String, { nullable: true, description: 'An absolute http or https URL; on update an empty string clears it.' }) logoUrl?: string | null;
}

@Resolver(() => ProviderType)
export class ProviderResolver {
  @Query(() => [ProviderType])
  providers(@Ctx() { services }: AdminContext): Promise<Provider[]> {
    return services.providers.list();
  }

  @Query(() => ProviderType, { nullable: true })
  async provider(
    @Ctx() { services }: AdminContext,
    @Arg('id', () => ID, { nullable: true }) id?: string | null,
    @Arg('slug', () => String, { nullable: true }) slug?: string | null,
  ): Promise<Provider | null> {
    if (id) return services.providers.get(id);
    if (slug) return services.providers.getBySlug(slug);
    throw new ValidationError('id', 'give id or slug');
  }

  @FieldResolver(() => String, { description: 'PUBLIC_URL + /application/o/<slug>/' })
  issuer(@Root() provider: Provider, @Ctx() { services }: AdminContext): string {
    return services.providers.issuer(provider);
  }

  @FieldResolver(() => [ProviderType], { description: 'Other providers of this server whose access tokens are accepted as client_credentials assertions.' })
  async federatedProviders(@Root() provider: Provider, @Ctx() { loaders }: AdminContext): Promise<Provider[]> {
    const found = await loaders.provider.loadMany(provider.federatedProviderIds);
    return found.filter((p): p is Provider => p !== null && !(p instanceof Error));
  }

  @FieldResolver(() => Boolean, { description: 'Version 2: require DPoP server nonces.' })
  dpopNonce(@Root() provider: Provider): boolean {
    return provider.dpopNonce === true;
  }

  @Mutation(() => ProviderType)
  async createProvider(@Ctx() ctx: AdminContext, @Arg('input', () => CreateProviderInput) input: CreateProviderInput): Promise<Provider> {
    const provider = await ctx.services.providers.create(input);
    recordConfigChange(ctx, 'createProvider', { providerId: provider.id, slug: provider.slug });
    return provider;
  }

  @Mutation(() => ProviderType)
  async updateProvider(
    @Ctx() ctx: AdminContext,
    @Arg('id', () => ID) id: string,
    @Arg('input', () => UpdateProviderInput) input: UpdateProviderInput,
  ): Promise<Provider> {
    const provider = await ctx.services.providers.update(id, input);
    ctx.services.tokens.invalidateProviderKeys(id);
    recordConfigChange(ctx, 'updateProvider', { providerId: id, fields: setFields(input) });
    return provider;
  }

  @Mutation(() => Boolean, {
    description: 'Deletes the provider and everything that belongs to it: its clients (with their pending device codes and refresh tokens) and its signing keys, so its tokens stop verifying. Providers that trusted it stop doing so.',
  })
  async deleteProvider(@Ctx() ctx: AdminContext, @Arg('id', () => ID) id: string): Promise<boolean> {
    await ctx.services.providers.delete(id);
    ctx.services.tokens.invalidateProviderKeys(id);
    recordConfigChange(ctx, 'deleteProvider', { providerId: id });
    return true;
  }
}
