/**
 * The configuration document (contract: "Configuration as code"), defined once: the server
 * validates with these zod schemas and schema/config.schema.json is generated from them.
 * Objects are named, never by id: providers and federated sources by slug, clients by clientId,
 * users and service accounts by username, policies by name, an app password by its user and
 * description. Omitted fields take the same defaults the create mutations use, so a document
 * says the whole state of what it names.
 *
 * A new model field is one line in the object's schema below: export, plan and apply copy the
 * scalar fields by name (see SCALAR_FIELDS).
 */
import { z } from 'zod';
import { GRANT_TYPES, SIGNING_ALGORITHMS, USER_CODE_CHARSETS } from '../model.js';
import { DEFAULT_DEVICE_FLOW, LIMITS } from '../providers.js';

const int = () => z.number().int();
const isoTime = () => z.iso.datetime({ offset: true }).describe('ISO-8601 time');
/** Names of policies bound to the object, in evaluation order (every one must pass). */
const boundPolicies = () => z.array(z.string()).default([]).describe('Names of the policies bound to it, in evaluation order; all must pass.');

const d = DEFAULT_DEVICE_FLOW;
export const deviceFlowSchema = z.strictObject({
  userCodeCharset: z.enum(USER_CODE_CHARSETS).default(d.userCodeCharset),
  userCodeAlphabet: z.string().nullable().default(d.userCodeAlphabet).describe('Only with userCodeCharset CUSTOM.'),
  userCodeLength: int().default(d.userCodeLength),
  codeLifetimeSeconds: int().default(d.codeLifetimeSeconds),
  pollIntervalSeconds: int().default(d.pollIntervalSeconds),
  verificationUri: z.string().nullable().default(d.verificationUri),
  requirePkce: z.boolean().default(d.requirePkce),
});

export const scopeMappingSchema = z.strictObject({
  scope: z.string(),
  name: z.string().describe("Unique within the provider: the mapping's name in the document."),
  expression: z.string().describe('CEL returning a map of claims added when the scope is granted.'),
});

export const providerSchema = z.strictObject({
  slug: z.string().describe('The provider\'s name in the document and in its issuer URL.'),
  name: z.string(),
  accessTokenLifetimeSeconds: int().default(LIMITS.accessTokenLifetimeSeconds.default),
  refreshTokenLifetimeSeconds: int().default(LIMITS.refreshTokenLifetimeSeconds.default),
  signingAlgorithm: z.enum(SIGNING_ALGORITHMS).default('RS256'),
  deviceFlow: deviceFlowSchema.prefault({}),
  federatedSources: z.array(z.string()).default([]).describe('Slugs of the federated sources whose JWTs it accepts.'),
  federatedProviders: z.array(z.string()).default([]).describe('Slugs of the providers of this server whose access tokens it accepts.'),
  dpopNonce: z.boolean().default(false).describe('Require DPoP server nonces (RFC 9449 §8).'),
  keyRotationDays: int().nullable().default(null).describe('Days between automatic signing-key rotations; null rotates only when asked.'),
  displayName: z.string().nullable().default(null).describe('Shown to people on the verification page instead of name.'),
  logoUrl: z.string().nullable().default(null).describe('An absolute http(s) URL of an image shown on the verification page.'),
  policies: boundPolicies(),
  scopeMappings: z.array(scopeMappingSchema).default([]),
});

export const clientSchema = z.strictObject({
  clientId: z.string(),
  provider: z.string().describe('The slug of its provider.'),
  name: z.string(),
  type: z.enum(['CONFIDENTIAL', 'PUBLIC']),
  grantTypes: z.array(z.enum(GRANT_TYPES)),
  allowedScopes: z.array(z.string()).default([]),
  allowedAudiences: z.array(z.string()).default([]).describe('Values a token request may ask for as resource or audience (RFC 8707).'),
  requireDpop: z.boolean().default(false).describe('Tokens only with a DPoP proof (RFC 9449).'),
  policies: boundPolicies(),
});

export const appPasswordSchema = z.strictObject({
  description: z.string().nullable().describe('Names the app password within its user; a new one gets a secret, shown once.'),
  expiresAt: isoTime().nullable().default(null),
});

const account = {
  username: z.string(),
  name: z.string().nullable().default(null),
  isActive: z.boolean().default(true),
  isAdmin: z.boolean().default(false),
  attributes: z.record(z.string(), z.unknown()).default({}),
  appPasswords: z.array(appPasswordSchema).default([]),
};

export const userSchema = z.strictObject({
  ...account,
  type: z.enum(['INTERNAL', 'EXTERNAL']).default('INTERNAL'),
  email: z.string().nullable().default(null),
});

export const serviceAccountSchema = z.strictObject({
  ...account,
  expiresAt: isoTime().nullable().default(null).describe('Set when the account is created; it cannot change afterwards.'),
});

export const propertyMappingSchema = z.strictObject({
  name: z.string().describe('Unique within the source.'),
  expression: z.string().describe('CEL turning the JWT claims into attributes of the generated service account.'),
});

export const federatedSourceSchema = z.strictObject({
  slug: z.string(),
  name: z.string(),
  issuer: z.string().nullable().default(null),
  audience: z.string().nullable().default(null),
  maxTokenAgeSeconds: int().nullable().default(null),
  jwksUrl: z.string().nullable().default(null),
  oidcDiscoveryUrl: z.string().nullable().default(null),
  jwks: z.strictObject({ keys: z.array(z.record(z.string(), z.unknown())) }).nullable().default(null)
    .describe('Public keys, only for a source without jwksUrl or oidcDiscoveryUrl.'),
  propertyMappings: z.array(propertyMappingSchema).default([]),
});

export const policySchema = z.strictObject({
  name: z.string(),
  expression: z.string().describe('CEL returning a bool: whether a token may be issued.'),
});

export const configDocumentSchema = z.strictObject({
  $schema: z.string().optional().describe('For editors: the URL or path of this JSON Schema.'),
  federatedSources: z.array(federatedSourceSchema).default([]),
  policies: z.array(policySchema).default([]),
  providers: z.array(providerSchema).default([]),
  clients: z.array(clientSchema).default([]),
  users: z.array(userSchema).default([]),
  serviceAccounts: z.array(serviceAccountSchema).default([]),
}).describe('A Tessera configuration document (exportConfig / planConfig / applyConfig).');

export type ConfigDocument = z.output<typeof configDocumentSchema>;
export type ProviderDoc = z.output<typeof providerSchema>;
export type ClientDoc = z.output<typeof clientSchema>;
export type UserDoc = z.output<typeof userSchema>;
export type ServiceAccountDoc = z.output<typeof serviceAccountSchema>;
export type AppPasswordDoc = z.output<typeof appPasswordSchema>;
export type FederatedSourceDoc = z.output<typeof federatedSourceSchema>;
export type PolicyDoc = z.output<typeof policySchema>;

/** The fields of each object that are its own values (copied by name), not names of other objects or nested objects. */
export const SCALAR_FIELDS = {
  provider: keysExcept(providerSchema, ['slug', 'federatedSources', 'federatedProviders', 'policies', 'scopeMappings']),
  client: keysExcept(clientSchema, ['clientId', 'provider', 'policies']),
  user: keysExcept(userSchema, ['username', 'appPasswords']),
  serviceAccount: keysExcept(serviceAccountSchema, ['username', 'appPasswords']),
  federatedSource: keysExcept(federatedSourceSchema, ['slug', 'propertyMappings']),
} as const;

function keysExcept<S extends z.ZodObject, K extends keyof S['shape'] & string>(schema: S, except: readonly K[]): Exclude<keyof S['shape'] & string, K>[] {
  return Object.keys(schema.shape).filter((k) => !(except as readonly string[]).includes(k)) as Exclude<keyof S['shape'] & string, K>[];
}

/** The JSON Schema of the document (schema/config.schema.json), from the same definitions. */
export function configJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(configDocumentSchema, { io: 'input', target: 'draft-2020-12' }),
    title: 'Tessera configuration',
  };
}
