import 'reflect-metadata';
import { buildSchema } from 'type-graphql';
import type { GraphQLSchema } from 'graphql';
import { ProviderResolver } from './providers.js';

/** Every resolver of the admin API; a new entity adds its resolver here. */
export const RESOLVERS = [ProviderResolver] as const;

let built: Promise<GraphQLSchema> | null = null;

export function buildAdminSchema(): Promise<GraphQLSchema> {
  built ??= buildSchema({ resolvers: [...RESOLVERS], validate: false, emitSchemaFile: false });
  return built;
}
