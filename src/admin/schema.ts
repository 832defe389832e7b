import 'reflect-metadata';
import { buildSchema } from 'type-graphql';
import type { GraphQLSchema } from 'graphql';
import { ProviderResolver } from './providers.js';
import { ClientResolver, ProviderClientsResolver } from './clients.js';
import { UserConnectionResolver, UserResolver } from './users.js';
import { AppPasswordResolver, UserAppPasswordsResolver } from './app-passwords.js';
import { FederatedSourceResolver, ProviderFederationResolver } from './federated-sources.js';
import { EventResolver } from './events.js';
import { ConfigResolver } from './config.js';
import { ProviderSigningKeysResolver } from './signing-keys.js';
import { ExpressionPolicyResolver, PolicyBindingResolver, ScopeMappingResolver, SourcePropertyMappingResolver } from './policies.js';
import { TokenExchangeTestResolver } from './token-exchange-test.js';

/** Every resolver of the admin API; a new entity adds its resolver here. */
export const RESOLVERS = [
  ProviderResolver, ProviderClientsResolver, ProviderFederationResolver, ProviderSigningKeysResolver,
  ClientResolver,
  UserResolver, UserConnectionResolver, UserAppPasswordsResolver, AppPasswordResolver,
  FederatedSourceResolver,
  EventResolver,
  ExpressionPolicyResolver, PolicyBindingResolver, SourcePropertyMappingResolver, ScopeMappingResolver,
  TokenExchangeTestResolver,
  ConfigResolver,
] as const;

let built: Promise<GraphQLSchema> | null = null;

export function buildAdminSchema(): Promise<GraphQLSchema> {
  built ??= buildSchema({ resolvers: [...RESOLVERS], validate: false, emitSchemaFile: false });
  return built;
}
