/**
 * Reading a document: its shape (the zod schema), no secrets in it, then every object through the
 * same validators the create mutations use, so a document is refused for exactly what a mutation
 * would refuse, before anything is written. Errors are ValidationErrors whose field is the path in
 * the document (`providers[2].deviceFlow.userCodeLength`). Returns the document as the server
 * would store it (names trimmed, URLs normalised, duplicates dropped), so a plan compares like
 * with like.
 */
import { ValidationError } from '../errors.js';
import { DEFAULT_DEVICE_FLOW, LIMITS, resolveDeviceFlowSettings, validateDisplayName, validateLogoUrl, validateName, validateRange, validateSlug } from '../providers.js';
import { CLIENT_ID, validateGrantTypes } from '../clients.js';
import { validateAllowedAudiences } from '../audiences.js';
import { validateAttributes, validateEmail, validateOptionalName, validateUsername } from '../users.js';
import { validateDescription } from '../app-passwords.js';
import { isScopeToken, validateScopes } from '../scopes.js';
import { optionalMaxAge, optionalText, optionalUrl, requireKeySource, validateRawJwks } from '../federation/sources.js';
import type { PolicyService } from '../policies/service.js';
import { configDocumentSchema, type ConfigDocument, type FederatedSourceDoc } from './schema.js';

/** `providers[2].deviceFlow` from ['providers', 2, 'deviceFlow']. */
export function documentPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)), '');
}

/** Runs a domain validator and names the failing field by its place in the document. */
export function at<T>(prefix: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof ValidationError) throw prefixed(prefix, error);
    throw error;
  }
}

export function prefixed(prefix: string, error: ValidationError): ValidationError {
  const message = error.message.startsWith(`${error.field}: `) ? error.message.slice(error.field.length + 2) : error.message;
  return new ValidationError(`${prefix}.${error.field}`, message);
}

/** Keys that hold secrets: secrets are made by apply and shown once, never read from a document. */
const SECRET_KEYS = new Set(['secret', 'clientSecret', 'client_secret', 'secretHash', 'password', 'passwordHash', 'privateKey', 'token']);
/** Private members of a JWK (RFC 7518 §6.2.2, §6.3.2, §6.4.1). */
const PRIVATE_JWK_MEMBERS = new Set(['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']);

function refuseSecrets(value: unknown, path: PropertyKey[]): void {
  if (Array.isArray(value)) return value.forEach((item, i) => refuseSecrets(item, [...path, i]));
  if (typeof value !== 'object' || value === null) return;
  const inJwk = path.length >= 3 && path[path.length - 2] === 'keys' && path[path.length - 3] === 'jwks';
  for (const [key, child] of Object.entries(value)) {
    if (SECRET_KEYS.has(key)) throw new ValidationError(documentPath([...path, key]), 'a document carries no secrets: apply makes them and shows them once');
    if (inJwk && PRIVATE_JWK_MEMBERS.has(key)) throw new ValidationError(documentPath([...path, key]), 'is a private key member: give public keys only');
    refuseSecrets(child, [...path, key]);
  }
}

/** Shape and secrets; then each object's own validation. */
export function readDocument(raw: unknown, policies: Pick<PolicyService, 'compileForSave'>): ConfigDocument {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ValidationError('document', 'must be a JSON object');
  refuseSecrets(raw, []);
  const parsed = configDocumentSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const keys = issue.code === 'unrecognized_keys' ? issue.keys : [];
    const path = documentPath([...issue.path, ...keys.slice(0, 1)]) || 'document';
    throw new ValidationError(path, issue.code === 'unrecognized_keys' ? 'is not a field of this object' : issue.message);
  }
  return normalize(parsed.data, policies);
}

function unique<T>(items: readonly T[], key: (item: T) => string, path: (i: number) => string, what: string): void {
  const seen = new Set<string>();
  items.forEach((item, i) => {
    const k = key(item);
    if (seen.has(k)) throw new ValidationError(path(i), `names ${what} '${k}' a second time`);
    seen.add(k);
  });
}

function scopeToken(field: string, value: string): string {
  if (!isScopeToken(value)) throw new ValidationError(field, 'must be a scope token (printable ASCII, no spaces, quotes or backslashes, at most 128 characters)');
  return value;
}

function normalize(doc: ConfigDocument, policies: Pick<PolicyService, 'compileForSave'>): ConfigDocument {
  const compile = (kind: 'policy' | 'scopeMapping' | 'sourceMapping', expression: string) => policies.compileForSave(kind, expression).source;
  const out: ConfigDocument = {
    federatedSources: doc.federatedSources.map((s, i) => at(`federatedSources[${i}]`, () => normalizeSource(s, compile))),
    policies: doc.policies.map((p, i) => at(`policies[${i}]`, () => ({ name: validateName('name', p.name), expression: compile('policy', p.expression) }))),
    providers: doc.providers.map((p, i) => at(`providers[${i}]`, () => ({
      ...p,
      name: validateName('name', p.name),
      slug: validateSlug('slug', p.slug),
      accessTokenLifetimeSeconds: validateRange('accessTokenLifetimeSeconds', p.accessTokenLifetimeSeconds, LIMITS.accessTokenLifetimeSeconds),
      refreshTokenLifetimeSeconds: validateRange('refreshTokenLifetimeSeconds', p.refreshTokenLifetimeSeconds, LIMITS.refreshTokenLifetimeSeconds),
      keyRotationDays: p.keyRotationDays === null ? null : validateRange('keyRotationDays', p.keyRotationDays, LIMITS.keyRotationDays),
      displayName: p.displayName === null ? null : validateDisplayName('displayName', p.displayName),
      logoUrl: p.logoUrl === null ? null : validateLogoUrl('logoUrl', p.logoUrl),
      deviceFlow: resolveDeviceFlowSettings(DEFAULT_DEVICE_FLOW, p.deviceFlow),
      federatedSources: [...new Set(p.federatedSources)],
      federatedProviders: [...new Set(p.federatedProviders)],
      scopeMappings: p.scopeMappings.map((m, j) => at(`scopeMappings[${j}]`, () => ({
        scope: scopeToken('scope', m.scope), name: validateName('name', m.name), expression: compile('scopeMapping', m.expression),
      }))),
    }))),
    clients: doc.clients.map((c, i) => at(`clients[${i}]`, () => {
      if (!CLIENT_ID.test(c.clientId)) throw new ValidationError('clientId', 'must be 1–128 printable ASCII characters (RFC 6749 VSCHAR, %x20–7E)');
      return {
        ...c, name: validateName('name', c.name), grantTypes: validateGrantTypes(c.grantTypes), allowedScopes: validateScopes('allowedScopes', c.allowedScopes),
        allowedAudiences: validateAllowedAudiences('allowedAudiences', c.allowedAudiences),
      };
    })),
    users: doc.users.map((u, i) => at(`users[${i}]`, () => ({
      ...normalizeAccount(u), email: validateEmail(u.email),
    }))),
    serviceAccounts: doc.serviceAccounts.map((u, i) => at(`serviceAccounts[${i}]`, () => normalizeAccount(u))),
  };
  checkNamesWithin(out);
  return out;
}

function normalizeAccount<A extends ConfigDocument['users'][number] | ConfigDocument['serviceAccounts'][number]>(account: A): A {
  const appPasswords = account.appPasswords.map((a, j) => at(`appPasswords[${j}]`, () => ({ ...a, description: validateDescription(a.description) })));
  unique(appPasswords, (a) => a.description ?? '', (j) => `appPasswords[${j}].description`, 'the app password');
  return {
    ...account,
    username: validateUsername(account.username),
    name: validateOptionalName(account.name),
    attributes: validateAttributes(account.attributes),
    appPasswords,
  };
}

function normalizeSource(s: FederatedSourceDoc, compile: (kind: 'sourceMapping', expression: string) => string): FederatedSourceDoc {
  const source: FederatedSourceDoc = {
    ...s,
    name: validateName('name', s.name),
    slug: validateSlug('slug', s.slug),
    issuer: optionalText('issuer', s.issuer, 2048),
    audience: optionalText('audience', s.audience, 2048),
    maxTokenAgeSeconds: optionalMaxAge(s.maxTokenAgeSeconds),
    jwksUrl: optionalUrl('jwksUrl', s.jwksUrl),
    oidcDiscoveryUrl: optionalUrl('oidcDiscoveryUrl', s.oidcDiscoveryUrl),
    jwks: validateRawJwks(s.jwks) as FederatedSourceDoc['jwks'],
    propertyMappings: s.propertyMappings.map((m, j) => at(`propertyMappings[${j}]`, () => ({ name: validateName('name', m.name), expression: compile('sourceMapping', m.expression) }))),
  };
  requireKeySource(source);
  if ((source.jwksUrl || source.oidcDiscoveryUrl) && source.jwks) throw new ValidationError('jwks', 'is fetched from jwksUrl or oidcDiscoveryUrl; give raw jwks only for a source without them');
  unique(source.propertyMappings, (m) => m.name, (j) => `propertyMappings[${j}].name`, 'the mapping');
  return source;
}

/** Names unique within the document (the store's unique keys, and the document's own). */
function checkNamesWithin(doc: ConfigDocument): void {
  unique(doc.federatedSources, (s) => s.slug, (i) => `federatedSources[${i}].slug`, 'the federated source');
  unique(doc.policies, (p) => p.name, (i) => `policies[${i}].name`, 'the policy');
  unique(doc.providers, (p) => p.slug, (i) => `providers[${i}].slug`, 'the provider');
  unique(doc.clients, (c) => c.clientId, (i) => `clients[${i}].clientId`, 'the client');
  const accounts = [...doc.users.map((u, i) => ({ u, path: `users[${i}].username` })), ...doc.serviceAccounts.map((u, i) => ({ u, path: `serviceAccounts[${i}].username` }))];
  const seen = new Set<string>();
  for (const { u, path } of accounts) {
    if (seen.has(u.username)) throw new ValidationError(path, `names the user '${u.username}' a second time`);
    seen.add(u.username);
  }
  doc.providers.forEach((p, i) => {
    unique(p.scopeMappings, (m) => m.name, (j) => `providers[${i}].scopeMappings[${j}].name`, 'the scope mapping');
    unique(p.policies, (n) => n, (j) => `providers[${i}].policies[${j}]`, 'the policy');
  });
  doc.clients.forEach((c, i) => unique(c.policies, (n) => n, (j) => `clients[${i}].policies[${j}]`, 'the policy'));
}
