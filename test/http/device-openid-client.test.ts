/**
 * A real client no one here wrote: openid-client v6 (panva) discovers the provider, starts the
 * device flow, polls while the user approves through the JSON form, reads userinfo and refreshes.
 * Its checks (issuer, ID token claims, response shapes) are the point: they are not ours.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as client from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { seedClient, seedProvider, seedUser, type SeededProvider, type SeededUser } from '../helpers/seed.js';
import { decide } from '../helpers/device.js';

let server: TestServer;
let provider: SeededProvider;
let grace: SeededUser;

before(async () => {
  server = await startTestServer();
  provider = await seedProvider(server, { deviceFlow: { pollIntervalSeconds: 1 } });
  grace = await seedUser(server, { name: 'Grace Hopper', email: 'grace@example.com' });
});
after(async () => {
  await server.stop();
});

const insecure = { execute: [client.allowInsecureRequests] };

describe('openid-client v6 against Tessera', () => {
  test('a public client completes the device flow, gets an ID token and reads userinfo', async () => {
    const { clientId } = await seedClient(server, { providerId: provider.id, allowedScopes: ['openid', 'profile', 'email'] });
    const config = await client.discovery(new URL(provider.issuer), clientId, undefined, client.None(), insecure);
    assert.equal(config.serverMetadata().issuer, provider.issuer);

    const started = await client.initiateDeviceAuthorization(config, { scope: 'openid profile email' });
    assert.ok(started.verification_uri_complete?.includes(encodeURIComponent(started.user_code)) || started.verification_uri_complete?.includes(started.user_code));
    const polling = client.pollDeviceAuthorizationGrant(config, started);
    const approval = await decide(server, grace.username, grace.appPassword, started.user_code, 'allow');
    assert.equal(approval.status, 200);
    const tokens = await polling;

    assert.equal(tokens.token_type.toLowerCase(), 'bearer');
    const claims = tokens.claims();
    assert.equal(claims?.sub, grace.user.id);
    assert.equal(claims?.iss, provider.issuer);
    const jwks = createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri!));
    const { payload } = await jwtVerify(tokens.access_token, jwks, { issuer: provider.issuer, typ: 'at+jwt' });
    assert.equal(payload.client_id, clientId);

    const userinfo = await client.fetchUserInfo(config, tokens.access_token, grace.user.id);
    assert.equal(userinfo.email, 'grace@example.com');
    assert.equal(userinfo.name, 'Grace Hopper');
  });

  test('a confidential client over client_secret_basic, with PKCE S256, and a refresh', async () => {
    const { clientId, clientSecret } = await seedClient(server, {
      providerId: provider.id, type: 'CONFIDENTIAL', grantTypes: ['DEVICE_CODE', 'REFRESH_TOKEN'], allowedScopes: ['openid', 'profile'],
    });
    const config = await client.discovery(new URL(provider.issuer), clientId, undefined, client.ClientSecretBasic(clientSecret!), insecure);
    const verifier = client.randomPKCECodeVerifier();
    const challenge = await client.calculatePKCECodeChallenge(verifier);
    const started = await client.initiateDeviceAuthorization(config, { scope: 'openid profile', code_challenge: challenge, code_challenge_method: 'S256' });
    const polling = client.pollDeviceAuthorizationGrant(config, started, { code_verifier: verifier });
    await decide(server, grace.username, grace.password, started.user_code, 'allow');
    const tokens = await polling;
    assert.equal(tokens.claims()?.sub, grace.user.id);
    assert.ok(tokens.refresh_token);

    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!);
    assert.ok(refreshed.access_token);
    assert.ok(refreshed.refresh_token);
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token);
  });

  test('a denied request surfaces as access_denied in openid-client', async () => {
    const { clientId } = await seedClient(server, { providerId: provider.id });
    const config = await client.discovery(new URL(provider.issuer), clientId, undefined, client.None(), insecure);
    const started = await client.initiateDeviceAuthorization(config, {});
    const polling = client.pollDeviceAuthorizationGrant(config, started);
    await decide(server, grace.username, grace.appPassword, started.user_code, 'deny');
    await assert.rejects(polling, (error: unknown) => {
      assert.equal((error as { error?: string }).error, 'access_denied');
      return true;
    });
  });
});
