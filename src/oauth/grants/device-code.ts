/**
 * grant_type=urn:ietf:params:oauth:grant-type:device_code (RFC 8628 §3.4–3.5).
 * The answers, in the contract's order: invalid_grant (unknown code, another client's code,
 * already exchanged, missing or wrong code_verifier) → expired_token → slow_down → access_denied
 * → authorization_pending → the bound policies (access_denied) → tokens, exactly once per code.
 */
import type { Services } from '../../domain/services.js';
import { isUsable } from '../../domain/users.js';
import { OAuthError, invalidGrant } from '../errors.js';
import { verifierMatches } from '../pkce.js';
import { requireBoundKey, type Grant } from './grant.js';
import { authorizeUserTokens, issueUserTokens } from './user-tokens.js';
import { narrowed } from '../audience.js';

/** What this module uses of the services. */
type ServicesUsed = Pick<Services, 'deviceFlow' | 'events' | 'policies' | 'tokens' | 'users'>;

export const DEVICE_CODE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:device_code';

export const deviceCodeGrant: Grant<ServicesUsed> = {
  grantType: DEVICE_CODE_GRANT_TYPE,
  clientGrant: 'DEVICE_CODE',
  requireClientSecret: true,
  async handle(services, { params, requestId, client: { client, provider }, audience: requested, dpop }) {
    const deviceCode = params.get('device_code');
    if (!deviceCode) throw new OAuthError('invalid_request', 'device_code is required');
    const codeVerifier = params.get('code_verifier');
    const flow = services.deviceFlow;

    const authorization = await flow.findByDeviceCode(deviceCode);
    if (!authorization) throw invalidGrant('the device code is invalid', 'unknown device_code');
    if (authorization.clientId !== client.clientId) throw invalidGrant('the device code is invalid', `device_code belongs to client ${authorization.clientId}`);
    if (authorization.status === 'exchanged') throw invalidGrant('the device code was already used');
    if (authorization.codeChallenge && authorization.codeChallengeMethod) {
      if (!codeVerifier) throw invalidGrant('code_verifier is required: a code_challenge was sent with this device code');
      const challenge = { codeChallenge: authorization.codeChallenge, codeChallengeMethod: authorization.codeChallengeMethod };
      if (!verifierMatches(codeVerifier, challenge)) throw invalidGrant('code_verifier does not match the code_challenge');
    } else if (codeVerifier !== undefined) {
      // RFC 9700 §2.1.1: a verifier without a challenge is refused, or PKCE could be downgraded.
      throw invalidGrant('code_verifier was sent, but no code_challenge was sent with this device code');
    }

    // RFC 9449 §10 via dpop_jkt: a code intercepted on its way cannot be redeemed by another device.
    requireBoundKey(authorization.dpopJkt, dpop, 'this device code is bound to a DPoP key (dpop_jkt): poll with a proof signed by it');

    const result = await flow.poll(authorization);
    switch (result.kind) {
      case 'invalid':
        throw invalidGrant('the device code was already used', result.detail);
      case 'expired':
        throw new OAuthError('expired_token', 'the device code has expired; start again');
      case 'slow_down':
        throw new OAuthError('slow_down', `polling too often: wait at least ${result.intervalSeconds} seconds between polls`);
      case 'denied':
        throw new OAuthError('access_denied', 'the user denied the request');
      case 'pending':
        throw new OAuthError('authorization_pending', 'the user has not decided yet');
      case 'approved':
        break;
    }
    const approved = result.authorization;
    const user = approved.userId ? await services.users.get(approved.userId) : null;
    if (!user || !isUsable(user)) throw invalidGrant('the device code is invalid', 'the approving user is gone or inactive');
    const audience = narrowed(requested, approved.audience ?? [], client);
    // Policies decide before the code is spent; a refusal answers access_denied, which ends the device's polling.
    const authorized = await authorizeUserTokens(services, {
      provider, client, user, scopes: approved.scopes, requestId, grant: DEVICE_CODE_GRANT_TYPE, codeVerifier: codeVerifier ?? null, audience,
    }, 'access_denied');
    if (!(await flow.exchange(approved))) throw invalidGrant('the device code was already used', 'another poll exchanged it first');
    return issueUserTokens(services, authorized);
  },
};
