/**
 * A client no one here wrote drives the new grants: openid-client v6 (npm; oauth4webapi
 * underneath) discovers the provider, and its genericGrantRequest performs token exchange (with
 * repeated resource parameters and an actor) and the jwt-bearer grant; the answers parse as its
 * TokenEndpointResponse and the tokens verify against the provider's JWKS.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as oidc from 'openid-client';
import { createLocalJWKSet, jwtVerify, type JWK } from 'jose';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { seedMachineClient, seedMachineProvider } from '../helpers/seed.js';
import { JWT_BEARER_GRANT, TOKEN_EXCHANGE, TT, issue, standInIssuer, type StandIn } from '../helpers/workload.js';
import type { Provider } from '../../src/domain/model.js';

let t: TestServer;
let provider: Provider;
let k8s: StandIn;
before(async () => {
  t = await startTestServer();
  k8s = await standInIssuer(t);
  provider = await seedMachineProvider(t, { signingAlgorithm: 'RS256', federatedSourceIds: [k8s.source.id] });
});
after(async () => {
  await t.stop();
});

const issuer = () => new URL(t.server.services.providers.issuer(provider));

async function verified(accessToken: string) {
  const jwks = await (await fetch(`${t.url}/application/o/${provider.slug}/jwks/`)).json();
  return (await jwtVerify(accessToken, createLocalJWKSet(jwks as { keys: JWK[] }), { issuer: issuer().href, typ: 'at+jwt' })).payload;
}

describe('openid-client genericGrantRequest', () => {
  test('token exchange by a confidential client (client_secret_basic), two resources, an actor named by may_act', async () => {
    const { client, clientId, clientSecret } = await seedMachineClient(t, provider, { grantTypes: ['TOKEN_EXCHANGE'] });
    await t.server.services.clients.update(client.id, { allowedAudiences: ['https://a.example', 'https://b.example'] });
    const config = await oidc.discovery(issuer(), clientId, clientSecret!, oidc.ClientSecretBasic(clientSecret!), { execute: [oidc.allowInsecureRequests] });
    assert.ok(config.serverMetadata().grant_types_supported?.includes(TOKEN_EXCHANGE));
    const parameters = new URLSearchParams([
      ['subject_token', await issue(k8s, { sub: 'alice', may_act: { sub: 'gateway' } })], ['subject_token_type', TT.jwt],
      ['actor_token', await issue(k8s, { sub: 'gateway' })], ['actor_token_type', TT.jwt],
      ['resource', 'https://a.example'], ['resource', 'https://b.example'],
    ]);
    const tokens = await oidc.genericGrantRequest(config, TOKEN_EXCHANGE, parameters);
    assert.equal(tokens.token_type.toLowerCase(), 'bearer');
    assert.equal(tokens.issued_token_type, TT.access);
    assert.equal(tokens.refresh_token, undefined);
    assert.ok((tokens.expiresIn() ?? 0) > 0);
    const claims = await verified(tokens.access_token);
    assert.deepEqual(claims.aud, ['https://a.example', 'https://b.example']);
    assert.deepEqual(claims.act, { sub: 'gateway', iss: k8s.issuer });
  });

  test('jwt-bearer by a public client (auth method none)', async () => {
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC', grantTypes: ['JWT_BEARER'] });
    const config = await oidc.discovery(issuer(), clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    assert.ok(config.serverMetadata().grant_types_supported?.includes(JWT_BEARER_GRANT));
    const tokens = await oidc.genericGrantRequest(config, JWT_BEARER_GRANT, { assertion: await issue(k8s, { sub: 'ci-job' }), scope: 'profile' });
    assert.equal(tokens.scope, 'profile');
    const claims = await verified(tokens.access_token);
    assert.equal(claims.client_id, clientId);
  });

  test('a refusal reaches openid-client as a ResponseBodyError with the OAuth error code', async () => {
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC', grantTypes: ['TOKEN_EXCHANGE'] });
    const config = await oidc.discovery(issuer(), clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    await assert.rejects(
      oidc.genericGrantRequest(config, TOKEN_EXCHANGE, { subject_token: await issue(k8s, { sub: 'x' }), subject_token_type: TT.jwt, requested_token_type: TT.refresh }),
      (error: unknown) => error instanceof oidc.ResponseBodyError && error.error === 'invalid_request',
    );
  });
});
