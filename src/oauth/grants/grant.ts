/**
 * A grant is a small module: the grant_type it answers, the client grant it needs, whether the
 * client must prove its own secret first, and a handler that checks the grant's input and issues.
 * The token endpoint only dispatches; adding a grant adds a line to the registry in token.ts.
 */
import type { GrantType } from '../../domain/model.js';
import type { Services } from '../../domain/services.js';
import type { FormParams } from '../../http/body.js';
import type { AuthenticatedClient } from '../client-auth.js';
import type { VerifiedProof } from '../../domain/dpop.js';
import { OAuthError } from '../errors.js';

export interface TokenRequest {
  params: FormParams;
  requestId: string;
  /** The client, authenticated as `requireClientSecret` asked. */
  client: AuthenticatedClient;
  /** The `resource` (and, for token exchange, `audience`) values, each in the client's allowedAudiences (RFC 8707). */
  audience: string[];
  /**
   * The request's verified DPoP proof (RFC 9449), checked once by the endpoint; null without
   * one. Tokens are bound to it through the services the grant receives (tokens.confirmedBy);
   * grants whose input is itself bound (a device code, a refresh token) compare their key with it.
   */
  dpop: VerifiedProof | null;
}

/** The successful token response (RFC 6749 §5.1); serialised as JSON by the endpoint. */
export interface TokenResponse {
  access_token: string;
  /** DPoP when the access token is bound (RFC 9449 §5). */
  token_type: 'Bearer' | 'DPoP';
  expires_in: number;
  scope: string;
  refresh_token?: string;
  id_token?: string;
  /** RFC 8693 §2.2.1. */
  issued_token_type?: string;
}

/** A grant over the services it uses (`Reach`: a Pick of Services, so its reach is in its signature). */
export interface Grant<Reach = Services> {
  /** The grant_type parameter value. */
  grantType: string;
  /** The grant the client must hold (contract: unauthorized_client otherwise). */
  clientGrant: GrantType;
  /** Whether a confidential client must prove its own secret before the handler runs. */
  requireClientSecret: boolean;
  /**
   * The audit action for a request that fails before the handler runs (unknown client, wrong
   * secret, grant not allowed); grants whose every attempt must be an event set it.
   */
  failureAction?: string;
  handle(services: Reach, request: TokenRequest): Promise<TokenResponse>;
}

/** A grant input bound to a DPoP key (a device code, a refresh token) is redeemed only with a proof by that key. */
export function requireBoundKey(jkt: string | null | undefined, proof: VerifiedProof | null, description: string): void {
  if (jkt && proof?.jkt !== jkt) throw new OAuthError('invalid_dpop_proof', description, proof ? 'proof by another key' : 'no proof');
}
