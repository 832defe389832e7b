/**
 * The aggregates Tessera keeps. Plain values: no mongoose documents, no Koa, no GraphQL types.
 * Every record has a string `id` (a random UUID unless noted) and `createdAt`.
 */
import type { JWK } from 'jose';

export type ClientType = 'CONFIDENTIAL' | 'PUBLIC';
export const GRANT_TYPES = ['DEVICE_CODE', 'CLIENT_CREDENTIALS', 'PASSWORD', 'REFRESH_TOKEN', 'JWT_BEARER', 'TOKEN_EXCHANGE'] as const;
export type GrantType = (typeof GRANT_TYPES)[number];
export const SIGNING_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];
export const SIGNING_KEY_STATUSES = ['NEXT', 'CURRENT', 'PREVIOUS', 'RETIRED'] as const;
export type SigningKeyStatus = (typeof SIGNING_KEY_STATUSES)[number];
export const USER_TYPES = ['INTERNAL', 'EXTERNAL', 'SERVICE_ACCOUNT', 'GENERATED_SERVICE_ACCOUNT'] as const;
export type UserType = (typeof USER_TYPES)[number];
export const USER_CODE_CHARSETS = ['BASE20', 'NUMERIC', 'ALPHANUMERIC', 'CUSTOM'] as const;
export type UserCodeCharset = (typeof USER_CODE_CHARSETS)[number];

export interface DeviceFlowSettings {
  userCodeCharset: UserCodeCharset;
  /** Only for CUSTOM. */
  userCodeAlphabet: string | null;
  userCodeLength: number;
  codeLifetimeSeconds: number;
  pollIntervalSeconds: number;
  verificationUri: string | null;
  requirePkce: boolean;
}

export interface Provider {
  id: string;
  name: string;
  slug: string;
  accessTokenLifetimeSeconds: number;
  refreshTokenLifetimeSeconds: number;
  signingAlgorithm: SigningAlgorithm;
  deviceFlow: DeviceFlowSettings;
  federatedSourceIds: string[];
  federatedProviderIds: string[];
  /** DPoP proofs must carry a server nonce (RFC 9449 §8); absent on older records: false. */
  dpopNonce?: boolean;
  /** Days between automatic key rotations; null (or absent: round 1) rotates only when asked. */
  keyRotationDays?: number | null;
  /** Shown to people on the verification page instead of `name` (optional; absent on older records). */
  displayName?: string | null;
  /** An absolute http(s) URL of an image shown on the verification page (optional). */
  logoUrl?: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface Client {
  id: string;
  providerId: string;
  name: string;
  /** Unique across the server: the global endpoints find the provider through it. */
  clientId: string;
  type: ClientType;
  grantTypes: GrantType[];
  allowedScopes: string[];
  /** What a token request may ask for as `resource` or `audience` (RFC 8707); absent on round-1 records (none). */
  allowedAudiences?: string[];
  /** SHA-256 (hex) of the client secret; null for public clients. */
  secretHash: string | null;
  /** Tokens only with a DPoP proof (RFC 9449); absent on older records: false. */
  requireDpop?: boolean;
  createdAt: Date;
  updatedAt: Date;
}

export interface User {
  id: string;
  username: string;
  name: string | null;
  email: string | null;
  type: UserType;
  isActive: boolean;
  isAdmin: boolean;
  attributes: Record<string, unknown>;
  /** argon2id hash of the login password; null when the user cannot sign in with a password. */
  passwordHash: string | null;
  /** Generated service accounts expire with the JWT that created them. */
  expiresAt: Date | null;
  /**
   * Generated service accounts only: the identity they are for (see domain/federation/service-accounts.ts),
   * unique in the store. Absent on every other user (the unique index is sparse).
   */
  identityKey?: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface AppPassword {
  id: string;
  userId: string;
  description: string | null;
  /** SHA-256 (hex) of the secret: app passwords are high-entropy, so a fast hash is enough and allows lookup. */
  secretHash: string;
  expiresAt: Date | null;
  lastUsedAt: Date | null;
  createdAt: Date;
}

export interface SigningKey {
  /** The JWK `kid`. */
  id: string;
  providerId: string;
  algorithm: SigningAlgorithm;
  publicJwk: JWK;
  /** The private JWK, encrypted as a compact JWE (dir + A256GCM) under a key derived from TESSERA_SECRET_KEY. */
  encryptedPrivateJwk: string;
  /** Round 1 only (records without status): the key that signed. */
  active?: boolean;
  /** Its place in the rotation (OAUTH.md, Signing keys); absent on round-1 records until start-up sets it. */
  status?: SigningKeyStatus;
  /** The provider's id while the key is NEXT, absent otherwise: a unique key, so a provider has at most one NEXT. */
  nextOf?: string;
  createdAt: Date;
  /** When it became CURRENT. */
  activatedAt?: Date | null;
  /** When it stopped signing. */
  deactivatedAt?: Date | null;
  /** When it retires (PREVIOUS) or retired (RETIRED). */
  retiresAt?: Date | null;
  /** The provider's access-token lifetime before it was lowered while this key signed: its tokens live that long. */
  longestLifetimeSeconds?: number;
}

export interface FederatedSource {
  id: string;
  name: string;
  slug: string;
  issuer: string | null;
  audience: string | null;
  /** JWTs issued (iat) longer ago than this are refused; null: no bound. Absent on round-1 records. */
  maxTokenAgeSeconds?: number | null;
  jwksUrl: string | null;
  oidcDiscoveryUrl: string | null;
  /** Raw JWKS given by the admin, or the last set fetched. */
  jwks: { keys: JWK[] } | null;
  keysFetchedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export type DeviceAuthorizationStatus = 'pending' | 'approved' | 'denied' | 'exchanged';

export interface DeviceAuthorization {
  id: string;
  /** SHA-256 (hex) of the device_code; the code itself is never stored. */
  deviceCodeHash: string;
  /** The user code without dashes or spaces, upper-cased where the charset allows. */
  userCode: string;
  clientId: string;
  providerId: string;
  scopes: string[];
  codeChallenge: string | null;
  codeChallengeMethod: 'S256' | 'plain' | null;
  /** The `resource` values of the device authorization request (RFC 8707), applied when the code is exchanged. */
  audience?: string[];
  /** RFC 9449 §10 dpop_jkt: the exchanging poll must carry a proof by this key. Absent: unbound. */
  dpopJkt?: string | null;
  status: DeviceAuthorizationStatus;
  /** Current polling interval; each slow_down adds 5 s (RFC 8628 §3.5). */
  intervalSeconds: number;
  /** Epoch ms before which a poll is too early; null until the first poll. */
  nextPollAt: number | null;
  userId: string | null;
  decidedAt: Date | null;
  expiresAt: Date;
  createdAt: Date;
}

export interface RefreshToken {
  id: string;
  /** SHA-256 (hex) of the refresh token. */
  tokenHash: string;
  /** All tokens descending from one grant share a family; reuse of a spent token revokes it whole. */
  familyId: string;
  clientId: string;
  providerId: string;
  userId: string;
  scopes: string[];
  /** The audience granted (RFC 8707); a refresh may narrow it. Absent or empty: the client_id. */
  audience?: string[];
  /** RFC 9449 §5: a public client's refresh token is bound to the DPoP key (JWK thumbprint) it was issued with. */
  dpopJkt?: string | null;
  /** Set once when the token is exchanged for a new one. */
  usedAt: Date | null;
  revokedAt: Date | null;
  expiresAt: Date;
  createdAt: Date;
}

export interface RevokedToken {
  /**
   * The access token's jti, or the `sid` of a credential all of whose access tokens are revoked
   * (an app password, a refresh-token family): see domain/token-bindings.ts.
   */
  id: string;
  /** When the token would have expired anyway; the record may be dropped after that. */
  expiresAt: Date;
  createdAt: Date;
}

/** A signed-in /device session; the cookie holds only the random secret whose SHA-256 is the id. */
export interface DeviceSessionRecord {
  /** SHA-256 (hex) of the cookie's secret. */
  id: string;
  userId: string;
  csrf: string;
  expiresAt: Date;
  createdAt: Date;
}

export interface AuditEvent {
  id: string;
  action: string;
  requestId: string | null;
  clientId: string | null;
  username: string | null;
  context: Record<string, unknown>;
  createdAt: Date;
}

/** A CEL boolean expression deciding whether a token may be issued (bound to providers and clients). */
export interface ExpressionPolicy {
  id: string;
  /** Unique: POLICY_DENIED events name the policy. */
  name: string;
  expression: string;
  createdAt: Date;
  updatedAt: Date;
}

export type PolicyTargetType = 'PROVIDER' | 'CLIENT';

/** Attaches a policy to a provider or a client; every bound policy must pass. */
export interface PolicyBinding {
  id: string;
  policyId: string;
  targetType: PolicyTargetType;
  targetId: string;
  /** Evaluation order within one target, lowest first. */
  order: number;
  createdAt: Date;
}

/** A CEL expression turning an input JWT's claims into attributes of the generated service account. */
export interface SourcePropertyMapping {
  id: string;
  federatedSourceId: string;
  name: string;
  expression: string;
  createdAt: Date;
  updatedAt: Date;
}

/** A CEL expression returning claims added to tokens and userinfo when `scope` is granted. */
export interface ScopeMapping {
  id: string;
  providerId: string;
  scope: string;
  name: string;
  expression: string;
  createdAt: Date;
  updatedAt: Date;
}

/** A DPoP proof (RFC 9449) seen once: its jti is not accepted again. */
export interface DpopProofRecord {
  id: string;
  /** SHA-256 (hex) of the key's thumbprint and the jti: unique, so a second use is a ConflictError. */
  jtiHash: string;
  /** After this the proof's iat is out of the window: the record is no longer needed. */
  expiresAt: Date;
  createdAt: Date;
}
