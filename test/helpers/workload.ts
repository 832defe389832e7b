/** Workload identity tests (token exchange, jwt-bearer, audiences): a stand-in issuer, its source, and form posts with repeated parameters. */
import { SignJWT, type JWTPayload } from 'jose';
import type { TestServer } from './server.js';
import { signingKey, type SigningKey } from './federation.js';
import { unique } from './seed.js';
import type { FederatedSource } from '../../src/domain/model.js';

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
export const TT = {
  access: 'urn:ietf:params:oauth:token-type:access_token',
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
  idToken: 'urn:ietf:params:oauth:token-type:id_token',
  refresh: 'urn:ietf:params:oauth:token-type:refresh_token',
} as const;

/** An external issuer (a cluster, a CI system) with its key, known to the server as a federated source with raw JWKS. */
export interface StandIn { source: FederatedSource; key: SigningKey; issuer: string; audience: string }

export async function standInIssuer(
  t: TestServer, options: { issuer?: string; audience?: string; maxTokenAgeSeconds?: number | null } = {},
): Promise<StandIn> {
  const key = await signingKey();
  const slug = unique('wi');
  const issuer = options.issuer ?? `https://${slug}.issuer.example`;
  const audience = options.audience ?? 'tessera';
  const now = new Date();
  const source = await t.server.services.store.federatedSources.insert({
    id: crypto.randomUUID(), name: slug, slug, issuer, audience, maxTokenAgeSeconds: options.maxTokenAgeSeconds ?? null,
    jwksUrl: null, oidcDiscoveryUrl: null, jwks: { keys: [key.publicJwk] }, keysFetchedAt: null, createdAt: now, updatedAt: now,
  });
  return { source, key, issuer, audience };
}

/** A JWT of the stand-in issuer: iss, aud, iat, exp (5 minutes) unless the claims say otherwise. */
export function issue(from: StandIn, claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: from.issuer, aud: from.audience, iat: now, exp: now + 300, ...claims })
    .setProtectedHeader({ alg: from.key.alg, kid: from.key.kid, typ: 'JWT', ...header })
    .sign(from.key.privateKey);
}

export async function eventsOf(t: TestServer, response: { headers: Headers }) {
  await t.server.services.events.flush();
  return t.server.services.store.events.find({ requestId: response.headers.get('x-request-id')! });
}
