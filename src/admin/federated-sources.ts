import 'reflect-metadata';
import { Arg, Ctx, Field, FieldResolver, ID, InputType, Int, Mutation, ObjectType, Query, Resolver, Root } from 'type-graphql';
import { recordConfigChange, setFields, type AdminContext } from './context.js';
import { DateTimeScalar, JSONScalar } from './scalars.js';
import { ProviderType } from './providers.js';
import type { FederatedSource, Provider } from '../domain/model.js';
import { ValidationError } from '../domain/errors.js';

@ObjectType('FederatedSource', {
  description: 'A trusted external JWT issuer (for example a Kubernetes cluster), known by a JWKS URL, an OIDC discovery URL or raw JWKS.',
})
export class FederatedSourceObject {
  @Field(() => ID) id!: string;
  @Field(() => String) name!: string;
  @Field(() => String) slug!: string;
  @Field(() => String, { nullable: true, description: "When set, an assertion's iss must equal it." }) issuer!: string | null;
  @Field(() => String, {
    nullable: true,
    description: "When set, an assertion's aud must contain it; when not set, aud must contain the provider's issuer or token endpoint (version 2).",
  }) audience!: string | null;
  @Field(() => Int, { nullable: true, description: 'Version 2: JWTs issued (iat) longer ago than this are refused.' }) maxTokenAgeSeconds!: number | null;
  @Field(() => String, { nullable: true }) jwksUrl!: string | null;
  @Field(() => String, { nullable: true }) oidcDiscoveryUrl!: string | null;
  @Field(() => JSONScalar, { nullable: true, description: 'The keys in use: raw JWKS given by the admin, or the last set fetched.' })
  jwks!: unknown;
  @Field(() => DateTimeScalar, { nullable: true }) keysFetchedAt!: Date | null;
  @Field(() => DateTimeScalar) createdAt!: Date;
}

@InputType('CreateFederatedSourceInput')
export class CreateFederatedSourceInput {
  @Field(() => String) name!: string;
  @Field(() => String) slug!: string;
  @Field(() => String, { nullable: true }) issuer?: string | null;
  @Field(() => String, { nullable: true }) audience?: string | null;
  @Field(() => Int, { nullable: true }) maxTokenAgeSeconds?: number | null;
  @Field(() => String, { nullable: true }) jwksUrl?: string | null;
  @Field(() => String, { nullable: true }) oidcDiscoveryUrl?: string | null;
  @Field(() => JSONScalar, { nullable: true }) jwks?: unknown;
}

@InputType('UpdateFederatedSourceInput')
export class UpdateFederatedSourceInput {
  @Field(() => String, { nullable: true }) name?: string | null;
  @Field(() => String, { nullable: true }) issuer?: string | null;
  @Field(() => String, { nullable: true }) audience?: string | null;
  @Field(() => Int, { nullable: true }) maxTokenAgeSeconds?: number | null;
  @Field(() => String, { nullable: true }) jwksUrl?: string | null;
  @Field(() => String, { nullable: true }) oidcDiscoveryUrl?: string | null;
  @Field(() => JSONScalar, { nullable: true }) jwks?: unknown;
}

@Resolver(() => FederatedSourceObject)
export class FederatedSourceResolver {
  @Query(() => [FederatedSourceObject])
  federatedSources(@Ctx() { services }: AdminContext): Promise<FederatedSource[]> {
    return services.federatedSources.list();
  }

  @Query(() => FederatedSourceObject, { nullable: true })
  federatedSource(
    @Ctx() { services }: AdminContext,
    @Arg('id', () => ID, { nullable: true }) id?: string | null,
    @Arg('slug', () => String, { nullable: true }) slug?: string | null,
  ): Promise<FederatedSource | null> {
    if (id) return services.federatedSources.get(id);
    if (slug) return services.federatedSources.getBySlug(slug);
    throw new ValidationError('id', 'give id or slug');
  }

  @Mutation(() => FederatedSourceObject, { description: 'A jwksUrl or oidcDiscoveryUrl is fetched now; a source whose keys cannot be loaded is refused.' })
  async createFederatedSource(
    @Ctx() ctx: AdminContext,
    @Arg('input', () => CreateFederatedSourceInput) input: CreateFederatedSourceInput,
  ): Promise<FederatedSource> {
    const source = await ctx.services.federatedSources.create(input);
    recordConfigChange(ctx, 'createFederatedSource', { id: source.id, slug: source.slug });
    return source;
  }

  @Mutation(() => FederatedSourceObject)
  async updateFederatedSource(
    @Ctx() ctx: AdminContext,
    @Arg('id', () => ID) id: string,
    @Arg('input', () => UpdateFederatedSourceInput) input: UpdateFederatedSourceInput,
  ): Promise<FederatedSource> {
    const source = await ctx.services.federatedSources.update(id, input);
    recordConfigChange(ctx, 'updateFederatedSource', { id, slug: source.slug, fields: setFields(input) });
    return source;
  }

  @Mutation(() => Boolean, { description: 'Deletes the source and removes it from every provider that trusted it.' })
  async deleteFederatedSource(@Ctx() ctx: AdminContext, @Arg('id', () => ID) id: string): Promise<boolean> {
    const source = await ctx.services.federatedSources.get(id);
    await ctx.services.federatedSources.delete(id);
    recordConfigChange(ctx, 'deleteFederatedSource', { id, slug: source?.slug ?? null });
    return true;
  }

  @Mutation(() => FederatedSourceObject, { description: 'Fetches the JWKS again from jwksUrl or oidcDiscoveryUrl now.' })
  async refreshFederatedSourceKeys(@Ctx() ctx: AdminContext, @Arg('id', () => ID) id: string): Promise<FederatedSource> {
    const source = await ctx.services.federatedSources.refreshKeys(id);
    recordConfigChange(ctx, 'refreshFederatedSourceKeys', { id, slug: source.slug, keys: source.jwks?.keys.length ?? 0 });
    return source;
  }
}

/** Provider.federatedSources, batched per request. */
@Resolver(() => ProviderType)
export class ProviderFederationResolver {
  @FieldResolver(() => [FederatedSourceObject], { description: 'External JWT issuers whose tokens are accepted as client_credentials assertions.' })
  async federatedSources(@Root() provider: Provider, @Ctx() { loaders }: AdminContext): Promise<FederatedSource[]> {
    const found = await loaders.federatedSource.loadMany(provider.federatedSourceIds);
    return found.filter((s): s is FederatedSource => s !== null && !(s instanceof Error));
  }
}
