/**
 * Client authentication (RFC 6749 §2.3), the one place every endpoint goes through.
 *
 * extractClientCredentials reads what the request presents: HTTP Basic (decoded per RFC 6749
 * Appendix B, and also taken as sent where decoding changes it, since curl -u and many clients do
 * not encode) or body parameters; it refuses ambiguous combinations. authenticateClient finds the
 * client and checks the secret when the endpoint requires proof.
 */
import { OAuthError } from './errors.js';
import type { FormParams } from '../http/body.js';
import type { Client, Provider } from '../domain/model.js';
import { secretMatchesHash } from '../domain/secrets.js';
import { annotateRequest } from '../telemetry/trace.js';

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'none';

export interface PresentedClient {
  /** Candidate client_ids, most likely first: the decoded value, then the value as sent. */
  clientIds: string[];
  /** Candidate secrets in the same order; empty when no secret was sent. */
  secrets: string[];
  method: ClientAuthMethod;
  /** Basic was used: failures then carry WWW-Authenticate. */
  viaBasic: boolean;
}

export interface AuthenticatedClient {
  client: Client;
  provider: Provider;
  method: ClientAuthMethod;
  viaBasic: boolean;
  /** All forms the secret may have been meant as (decoded and as sent). */
  presentedSecrets: string[];
  /** True when the presented secret is the client's own secret. */
  secretVerified: boolean;
}

export interface ClientLookup {
  getByClientId(clientId: string): Promise<Client | null>;
}
export interface ProviderLookup {
  get(id: string): Promise<Provider | null>;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** Stateless for whole inputs, so one decoder serves every request. */
const utf8 = new TextDecoder('utf-8', { fatal: true });
const MAX_CREDENTIAL_LENGTH = 8192;

function invalidClient(description: string, viaBasic: boolean, detail?: string): OAuthError {
  const error = new OAuthError('invalid_client', description, detail);
  return viaBasic ? error.withHeader('WWW-Authenticate', 'Basic realm="tessera"') : error;
}

/** RFC 6749 Appendix B: application/x-www-form-urlencoded decoding; null where the value is not valid encoding. */
function formDecode(value: string): string | null {
  try {
    return decodeURIComponent(value.replaceAll('+', ' '));
  } catch {
    return null;
  }
}

/** The decoded value first, then the value as sent where decoding changed (or failed on) it. */
function variants(raw: string): string[] {
  // Without '%' or '+' decoding changes nothing (the usual case: generated ids and secrets are base64url).
  if (!raw.includes('%') && !raw.includes('+')) return [raw];
  const decoded = formDecode(raw);
  if (decoded === null) return [raw];
  return decoded === raw ? [raw] : [decoded, raw];
}

export function parseBasicAuthorization(header: string): { clientIds: string[]; secrets: string[] } {
  const match = /^Basic +([^\s]+) *$/i.exec(header);
  if (!match || match[1]!.length > MAX_CREDENTIAL_LENGTH || !BASE64.test(match[1]!) || match[1]!.length % 4 === 1) {
    throw invalidClient('the Basic authorization header is malformed (expected base64 of client_id:client_secret)', true);
  }
  const decoded = Buffer.from(match[1]!, 'base64');
  let credentials: string;
  try {
    credentials = utf8.decode(decoded);
  } catch {
    throw invalidClient('the Basic credentials are not valid UTF-8', true);
  }
  const colon = credentials.indexOf(':');
  if (colon === -1) throw invalidClient('the Basic credentials must be client_id:client_secret (a public client sends client_id: with an empty secret)', true);
  const rawId = credentials.slice(0, colon);
  const rawSecret = credentials.slice(colon + 1);
  if (rawId === '') throw invalidClient('the Basic credentials carry no client_id', true);
  return { clientIds: variants(rawId), secrets: rawSecret === '' ? [] : variants(rawSecret) };
}

export function extractClientCredentials(authorization: string | undefined, body: FormParams): PresentedClient {
  const bodyClientId = body.get('client_id');
  const bodySecret = body.get('client_secret');
  if (authorization && /^basic\b/i.test(authorization.trim())) {
    const basic = parseBasicAuthorization(authorization.trim());
    if (bodySecret !== undefined) {
      throw new OAuthError('invalid_request', 'client credentials were sent both in the Authorization header and in the body; use one method');
    }
    if (bodyClientId !== undefined && !basic.clientIds.includes(bodyClientId)) {
      throw new OAuthError('invalid_request', 'the body client_id differs from the one in the Authorization header');
    }
    return { clientIds: basic.clientIds, secrets: basic.secrets, method: basic.secrets.length > 0 ? 'client_secret_basic' : 'none', viaBasic: true };
  }
  if (bodyClientId === undefined || bodyClientId === '') {
    throw invalidClient('client authentication is required: send HTTP Basic or client_id in the body', false);
  }
  if (bodyClientId.length > MAX_CREDENTIAL_LENGTH || (bodySecret !== undefined && bodySecret.length > MAX_CREDENTIAL_LENGTH)) {
    throw invalidClient('client credentials are too long', false);
  }
  return {
    clientIds: [bodyClientId],
    secrets: bodySecret ? [bodySecret] : [],
    method: bodySecret ? 'client_secret_post' : 'none',
    viaBasic: false,
  };
}

/**
 * Finds the client and, when `requireSecret` is true, makes a confidential client prove its
 * secret (public clients need not; with `confidentialOnly` they are invalid_client). With `requireSecret: false` the caller decides what the
 * secret means (client_credentials, where it may carry an app password or a JWT).
 */
export async function authenticateClient(
  lookups: { clients: ClientLookup; providers: ProviderLookup },
  presented: PresentedClient,
  options: { requireSecret: boolean; confidentialOnly?: boolean },
): Promise<AuthenticatedClient> {
  let client: Client | null = null;
  for (const id of presented.clientIds) {
    client = await lookups.clients.getByClientId(id);
    if (client) break;
  }
  if (!client) throw invalidClient('client authentication failed', presented.viaBasic, 'unknown client_id');
  const provider = await lookups.providers.get(client.providerId);
  if (!provider) throw invalidClient('client authentication failed', presented.viaBasic, 'the client has no provider');
  // Introspection tells token contents to confidential clients only (contract v2).
  if (options.confidentialOnly && client.type !== 'CONFIDENTIAL') {
    throw invalidClient('this endpoint takes a confidential client', presented.viaBasic, 'public client');
  }
  const secretVerified = client.secretHash !== null && presented.secrets.some((s) => secretMatchesHash(s, client.secretHash!));
  if (options.requireSecret && client.type === 'CONFIDENTIAL' && !secretVerified) {
    throw invalidClient(
      'client authentication failed',
      presented.viaBasic,
      presented.secrets.length === 0 ? 'confidential client sent no secret' : 'wrong client secret',
    );
  }
  annotateRequest({ 'oauth.client_id': client.clientId });
  return {
    client,
    provider,
    method: presented.method,
    viaBasic: presented.viaBasic,
    presentedSecrets: presented.secrets,
    secretVerified,
  };
}

/**
 * A secret that is neither the client's own nor a credential the grant's rules accept
 * (client_credentials): a confidential client that sent it by Basic failed client authentication
 * (invalid_client, 401, WWW-Authenticate); otherwise the grant is refused.
 */
export function unmatchedClientSecret(authenticated: Pick<AuthenticatedClient, 'client' | 'viaBasic'>): OAuthError {
  if (authenticated.client.type === 'CONFIDENTIAL' && authenticated.viaBasic) {
    return invalidClient('client authentication failed', true, 'the Basic password is neither the client secret nor a credential of the client_credentials rules');
  }
  return new OAuthError('invalid_grant', 'the client secret is wrong', 'the client secret is neither the client\'s secret nor a credential of the client_credentials rules');
}

/** The client must hold the grant it asks for (contract: unauthorized_client). */
export function requireGrant(client: Client, grant: Client['grantTypes'][number]): void {
  if (!client.grantTypes.includes(grant)) {
    throw new OAuthError('unauthorized_client', `this client is not allowed the ${grant.toLowerCase()} grant`);
  }
}
