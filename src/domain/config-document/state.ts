/**
 * What the server holds, read once per export or plan: every record the document covers, and the
 * same state as a document (names instead of ids). Generated service accounts are not part of it.
 */
import type {
  AppPassword, Client, ExpressionPolicy, FederatedSource, PolicyBinding, Provider, ScopeMapping, SourcePropertyMapping, User,
} from '../model.js';
import type { Services } from '../services.js';
import {
  SCALAR_FIELDS, type AppPasswordDoc, type ClientDoc, type ConfigDocument, type FederatedSourceDoc, type ProviderDoc,
  type ServiceAccountDoc, type UserDoc,
} from './schema.js';

export interface ServerState {
  providers: Provider[];
  clients: Client[];
  /** People and service accounts, not generated ones. */
  users: User[];
  appPasswords: AppPassword[];
  federatedSources: FederatedSource[];
  policies: ExpressionPolicy[];
  bindings: PolicyBinding[];
  scopeMappings: ScopeMapping[];
  sourceMappings: SourcePropertyMapping[];
}

export const DOCUMENT_USER_TYPES = ['INTERNAL', 'EXTERNAL', 'SERVICE_ACCOUNT'] as const;

export async function readState(services: Services): Promise<ServerState> {
  const [providers, clients, users, federatedSources, policies, bindings, scopeMappings, sourceMappings] = await Promise.all([
    services.providers.list(),
    services.clients.list(),
    services.store.users.find({ type: { $in: [...DOCUMENT_USER_TYPES] } }, { sort: { createdAt: 1 } }),
    services.federatedSources.list(),
    services.policies.listPolicies(),
    services.policies.listBindings(),
    services.policies.listScopeMappings(),
    services.policies.listSourcePropertyMappings(),
  ]);
  const appPasswords = users.length === 0 ? [] : await services.appPasswords.listForUsers(users.map((u) => u.id));
  return { providers, clients, users, appPasswords, federatedSources, policies, bindings, scopeMappings, sourceMappings };
}

/** Copies the named fields (the document's scalar fields are named as in the model). */
export function pick<T extends object, K extends string>(record: T, keys: readonly K[]): Record<K, unknown> {
  const out = {} as Record<K, unknown>;
  for (const key of keys) out[key] = (record as Record<string, unknown>)[key] ?? null;
  return out;
}

const iso = (date: Date | null): string | null => (date ? date.toISOString() : null);

/** The names of the policies bound to a target, in evaluation order. */
function boundNames(state: ServerState, targetType: PolicyBinding['targetType'], targetId: string, policyName: Map<string, string>): string[] {
  return state.bindings
    .filter((b) => b.targetType === targetType && b.targetId === targetId)
    .sort((a, b) => a.order - b.order || a.createdAt.getTime() - b.createdAt.getTime())
    .map((b) => policyName.get(b.policyId))
    .filter((n): n is string => n !== undefined);
}

export function stateToDocument(state: ServerState): ConfigDocument {
  const providerSlug = new Map(state.providers.map((p) => [p.id, p.slug]));
  const sourceSlug = new Map(state.federatedSources.map((s) => [s.id, s.slug]));
  const policyName = new Map(state.policies.map((p) => [p.id, p.name]));
  const slugs = (ids: string[], names: Map<string, string>) => ids.map((id) => names.get(id)).filter((s): s is string => s !== undefined);
  const appPasswordsOf = (userId: string): AppPasswordDoc[] =>
    state.appPasswords.filter((a) => a.userId === userId).map((a) => ({ description: a.description, expiresAt: iso(a.expiresAt) }));

  const providers = state.providers.map((p): ProviderDoc => ({
    slug: p.slug,
    // Fields records of an earlier release lack read as their defaults.
    ...(pick({ ...p, dpopNonce: p.dpopNonce ?? false, keyRotationDays: p.keyRotationDays ?? null }, SCALAR_FIELDS.provider) as Omit<ProviderDoc, 'slug'>),
    federatedSources: slugs(p.federatedSourceIds, sourceSlug),
    federatedProviders: slugs(p.federatedProviderIds, providerSlug),
    policies: boundNames(state, 'PROVIDER', p.id, policyName),
    scopeMappings: state.scopeMappings.filter((m) => m.providerId === p.id).map((m) => ({ scope: m.scope, name: m.name, expression: m.expression })),
  }));
  const clients = state.clients.map((c): ClientDoc => ({
    clientId: c.clientId,
    provider: providerSlug.get(c.providerId) ?? '',
    ...(pick({ ...c, allowedAudiences: c.allowedAudiences ?? [], requireDpop: c.requireDpop ?? false }, SCALAR_FIELDS.client) as Omit<ClientDoc, 'clientId' | 'provider' | 'policies'>),
    policies: boundNames(state, 'CLIENT', c.id, policyName),
  }));
  const users = state.users.filter((u) => u.type !== 'SERVICE_ACCOUNT').map((u): UserDoc => ({
    username: u.username,
    ...(pick(u, SCALAR_FIELDS.user) as Omit<UserDoc, 'username' | 'appPasswords'>),
    appPasswords: appPasswordsOf(u.id),
  }));
  const serviceAccounts = state.users.filter((u) => u.type === 'SERVICE_ACCOUNT').map((u): ServiceAccountDoc => ({
    username: u.username,
    ...(pick({ ...u, expiresAt: iso(u.expiresAt) }, SCALAR_FIELDS.serviceAccount) as Omit<ServiceAccountDoc, 'username' | 'appPasswords'>),
    appPasswords: appPasswordsOf(u.id),
  }));
  const federatedSources = state.federatedSources.map((s): FederatedSourceDoc => ({
    slug: s.slug,
    ...(pick(s, SCALAR_FIELDS.federatedSource) as Omit<FederatedSourceDoc, 'slug' | 'propertyMappings'>),
    // Keys fetched from a URL are the URL's, not the document's.
    jwks: s.jwksUrl || s.oidcDiscoveryUrl ? null : (s.jwks as FederatedSourceDoc['jwks']),
    propertyMappings: state.sourceMappings.filter((m) => m.federatedSourceId === s.id).map((m) => ({ name: m.name, expression: m.expression })),
  }));
  const policies = state.policies.map((p) => ({ name: p.name, expression: p.expression }));
  return { federatedSources, policies, providers, clients, users, serviceAccounts };
}
