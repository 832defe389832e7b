import 'reflect-metadata';
import { Arg, Ctx, Field, FieldResolver, ID, InputType, Mutation, ObjectType, Query, Resolver, Root } from 'type-graphql';
import { recordConfigChange, setFields, type AdminContext } from './context.js';
import { DateTimeScalar } from './scalars.js';
import { ClientTypeEnum, GrantTypeEnum } from './enums.js';
import { ProviderType } from './providers.js';
import type { Client, ClientType, GrantType, Provider } from '../domain/model.js';
import type { ClientWithSecret } from '../domain/clients.js';
import { ValidationError } from '../domain/errors.js';

@ObjectType('Client')
export class ClientObject {
  @Field(() => ID) id!: string;
  @Field(() => String) name!: string;
  @Field(() => String) clientId!: string;
  @Field(() => ClientTypeEnum) type!: ClientType;
  @Field(() => [GrantTypeEnum]) grantTypes!: GrantType[];
  @Field(() => [String], {
    description: "Scopes this client may request; empty means only the provider's defaults (openid, profile, email, offline_access).",
  })
  allowedScopes!: string[];
  @Field(() => DateTimeScalar) createdAt!: Date;
}

@ObjectType('ClientWithSecret')
export class ClientWithSecretObject {
  @Field(() => ClientObject) client!: Client;
  @Field(() => String, { nullable: true, description: 'Only for CONFIDENTIAL clients; shown once.' }) clientSecret!: string | null;
}

@InputType('CreateClientInput')
export class CreateClientInput {
  @Field(() => ID) providerId!: string;
  @Field(() => String) name!: string;
  @Field(() => ClientTypeEnum) type!: ClientType;
  @Field(() => [GrantTypeEnum]) grantTypes!: GrantType[];
  @Field(() => [String], { nullable: true }) allowedScopes?: string[] | null;
  @Field(() => String, { nullable: true, description: 'Optional fixed client_id; generated when absent.' }) clientId?: string | null;
  @Field(() => [String], { nullable: true }) allowedAudiences?: string[] | null;
  @Field(() => Boolean, { nullable: true }) requireDpop?: boolean | null;
}

@InputType('UpdateClientInput')
export class UpdateClientInput {
  @Field(() => String, { nullable: true }) name?: string | null;
  @Field(() => [GrantTypeEnum], { nullable: true }) grantTypes?: GrantType[] | null;
  @Field(() => [String], { nullable: true }) allowedScopes?: string[] | null;
  @Field(() => [String], { nullable: true }) allowedAudiences?: string[] | null;
  @Field(() => Boolean, { nullable: true }) requireDpop?: boolean | null;
}

@Resolver(() => ClientObject)
export class ClientResolver {
  @Query(() => [ClientObject])
  clients(@Ctx() { services }: AdminContext, @Arg('providerId', () => ID, { nullable: true }) providerId?: string | null): Promise<Client[]> {
    return services.clients.list(providerId);
  }

  @Query(() => ClientObject, { nullable: true })
  client(
    @Ctx() { services }: AdminContext,
    @Arg('id', () => ID, { nullable: true }) id?: string | null,
    @Arg('clientId', () => String, { nullable: true }) clientId?: string | null,
  ): Promise<Client | null> {
    if (id) return services.clients.get(id);
    if (clientId) return services.clients.findByClientId(clientId);
    throw new ValidationError('id', 'give id or clientId');
  }

  @FieldResolver(() => [String], { description: 'Version 2: values a token request may ask for as resource or audience (RFC 8707).' })
  allowedAudiences(@Root() client: Client): string[] {
    // Round-1 records have none.
    return client.allowedAudiences ?? [];
  }

  @FieldResolver(() => Boolean, { description: 'Version 2: tokens only with a DPoP proof.' })
  requireDpop(@Root() client: Client): boolean {
    return client.requireDpop === true;
  }

  @FieldResolver(() => ProviderType)
  async provider(@Root() client: Client, @Ctx() { loaders }: AdminContext): Promise<Provider> {
    const provider = await loaders.provider.load(client.providerId);
    // A client never outlives its provider (deleting a provider deletes its clients).
    if (!provider) throw new Error(`client ${client.id} has no provider ${client.providerId}`);
    return provider;
  }

  @Mutation(() => ClientWithSecretObject)
  async createClient(@Ctx() ctx: AdminContext, @Arg('input', () => CreateClientInput) input: CreateClientInput): Promise<ClientWithSecret> {
    const created = await ctx.services.clients.create(input);
    recordConfigChange(ctx, 'createClient', { id: created.client.id, clientId: created.client.clientId, providerId: created.client.providerId });
    return created;
  }

  @Mutation(() => ClientObject)
  async updateClient(
    @Ctx() ctx: AdminContext,
    @Arg('id', () => ID) id: string,
    @Arg('input', () => UpdateClientInput) input: UpdateClientInput,
  ): Promise<Client> {
    const client = await ctx.services.clients.update(id, input);
    recordConfigChange(ctx, 'updateClient', { id, clientId: client.clientId, fields: setFields(input) });
    return client;
  }

  @Mutation(() => ClientWithSecretObject)
  async rotateClientSecret(@Ctx() ctx: AdminContext, @Arg('id', () => ID) id: string): Promise<ClientWithSecret> {
    const rotated = await ctx.services.clients.rotateSecret(id);
    recordConfigChange(ctx, 'rotateClientSecret', { id, clientId: rotated.client.clientId });
    return rotated;
  }

  @Mutation(() => Boolean, { description: "Deletes the client, its pending device codes and its refresh tokens." })
  async deleteClient(@Ctx() ctx: AdminContext, @Arg('id', () => ID) id: string): Promise<boolean> {
    const client = await ctx.services.clients.get(id);
    await ctx.services.clients.delete(id);
    recordConfigChange(ctx, 'deleteClient', { id, clientId: client?.clientId ?? null });
    return true;
  }
}

/** Provider.clients, batched per request so a list of providers costs one store call for all their clients. */
@Resolver(() => ProviderType)
export class ProviderClientsResolver {
  @FieldResolver(() => [ClientObject])
  clients(@Root() provider: Provider, @Ctx() { loaders }: AdminContext): Promise<Client[]> {
    return loaders.clientsByProvider.load(provider.id);
  }
}
