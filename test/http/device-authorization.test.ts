/**
 * POST /application/o/device/ (RFC 8628 §3.1, contract "Device authorization"): every parameter
 * and answer, the authentik Basic-auth report's exact request, PKCE, scopes, no-store.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { basic, startTestServer, type TestServer } from '../helpers/server.js';
import { seedClient, seedProvider, type SeededProvider } from '../helpers/seed.js';
import { deviceAuthorization, poll, type DeviceCodes } from '../helpers/device.js';
import { USER_CODE_ALPHABETS } from '../../src/domain/providers.js';

let server: TestServer;
let provider: SeededProvider;
let publicClientId: string;

before(async () => {
  server = await startTestServer();
  provider = await seedProvider(server);
  publicClientId = (await seedClient(server, { providerId: provider.id, allowedScopes: ['openid', 'profile', 'email'] })).clientId;
});
after(async () => {
  await server.stop();
});

const sha256 = (v: string) => createHash('sha256').update(v).digest('hex');

function assertNoStore(headers: Headers): void {
  assert.equal(headers.get('cache-control'), 'no-store');
}

describe('device authorization answers', () => {
  test('a public client with client_id in the body gets every field of the contract', async () => {
    const { status, headers, body } = await deviceAuthorization(server, { client_id: publicClientId, scope: 'openid profile' });
    assert.equal(status, 200);
    assertNoStore(headers);
    assert.ok(headers.get('x-request-id'));
    const codes = body as unknown as DeviceCodes;
    assert.deepEqual(Object.keys(codes).sort(), ['device_code', 'expires_in', 'interval', 'user_code', 'verification_uri', 'verification_uri_complete']);
    assert.equal(codes.verification_uri, `http://localhost:${new URL(server.url).port}/device`);
    assert.equal(codes.verification_uri_complete, `${codes.verification_uri}?code=${codes.user_code}`);
    assert.equal(codes.expires_in, 600);
    assert.equal(codes.interval, 5);
  });

  test('the user code is 8 BASE20 characters, shown with a dash in the middle', async () => {
    const { body } = await deviceAuthorization(server, { client_id: publicClientId });
    const userCode = String(body.user_code);
    assert.match(userCode, /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
  });

  test('the device code has at least 128 bits and only its hash is stored', async () => {
    const { body } = await deviceAuthorization(server, { client_id: publicClientId });
    const deviceCode = String(body.device_code);
    assert.ok(Buffer.from(deviceCode, 'base64url').length >= 16, 'at least 128 bits');
    const stored = await server.server.services.store.deviceAuthorizations.findOne({ deviceCodeHash: sha256(deviceCode) });
    assert.ok(stored, 'found by hash');
    assert.ok(!JSON.stringify(stored).includes(deviceCode), 'the code itself is not stored');
  });

  test('two requests get different codes', async () => {
    const a = await deviceAuthorization(server, { client_id: publicClientId });
    const b = await deviceAuthorization(server, { client_id: publicClientId });
    assert.notEqual(a.body.device_code, b.body.device_code);
    assert.notEqual(a.body.user_code, b.body.user_code);
  });

  test('the path answers without its trailing slash too', async () => {
    const response = await fetch(`${server.url}/application/o/device`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `client_id=${publicClientId}`,
    });
    assert.equal(response.status, 200);
  });

  test("authentik report: Basic 'client_id:' and no body at all answers 200", async () => {
    // curl -X POST .../application/o/device/ -u "<client-id>:"
    const response = await fetch(`${server.url}/application/o/device/`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${publicClientId}:`).toString('base64')}`, accept: '*/*' },
    });
    assert.equal(response.status, 200);
    const body = (await response.json()) as Record<string, unknown>;
    assert.equal(typeof body.device_code, 'string');
    assert.equal(typeof body.user_code, 'string');
  });

  test('the provider settings decide charset, length, lifetime, interval and verification URI', async () => {
    const numeric = await seedProvider(server, {
      deviceFlow: { userCodeCharset: 'NUMERIC', userCodeLength: 9, codeLifetimeSeconds: 120, pollIntervalSeconds: 7, verificationUri: 'https://devices.example.com/activate' },
    });
    const { clientId } = await seedClient(server, { providerId: numeric.id });
    const { status, body } = await deviceAuthorization(server, { client_id: clientId });
    assert.equal(status, 200);
    const plain = String(body.user_code).replace('-', '');
    assert.equal(plain.length, 9);
    assert.ok([...plain].every((c) => USER_CODE_ALPHABETS.NUMERIC.includes(c)));
    assert.equal(body.expires_in, 120);
    assert.equal(body.interval, 7);
    assert.equal(body.verification_uri, 'https://devices.example.com/activate');
    assert.equal(body.verification_uri_complete, `https://devices.example.com/activate?code=${body.user_code}`);
  });

  test('codeLifetimeSeconds 1 with the default interval is accepted; the interval answered is no longer than expires_in', async () => {
    const oneSecond = await seedProvider(server, { deviceFlow: { codeLifetimeSeconds: 1 } });
    const { clientId } = await seedClient(server, { providerId: oneSecond.id });
    const { status, body } = await deviceAuthorization(server, { client_id: clientId });
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.expires_in, 1);
    assert.equal(body.interval, 1);
  });

  test('an interval longer than the lifetime is answered shorter than it; slow_down keeps its meaning', async () => {
    const short = await seedProvider(server, { deviceFlow: { codeLifetimeSeconds: 4, pollIntervalSeconds: 5 } });
    const { clientId } = await seedClient(server, { providerId: short.id });
    const { body } = await deviceAuthorization(server, { client_id: clientId });
    assert.equal(body.expires_in, 4);
    assert.equal(body.interval, 3);
    assert.equal((await poll(server, clientId, String(body.device_code))).body.error, 'authorization_pending');
    // Polled again at once, sooner than the code's 3 s: slow_down, and the code's interval grows by 5 s.
    assert.equal((await poll(server, clientId, String(body.device_code))).body.error, 'slow_down');
    const stored = await server.server.services.store.deviceAuthorizations.findOne({ deviceCodeHash: sha256(String(body.device_code)) });
    assert.equal(stored?.intervalSeconds, 8);
  });

  test('updating a provider to a lifetime shorter than its interval is accepted', async () => {
    const p = await seedProvider(server);
    const updated = await server.gql<{ updateProvider: { deviceFlow: { codeLifetimeSeconds: number; pollIntervalSeconds: number } } }>(
      'mutation($id: ID!, $input: UpdateProviderInput!) { updateProvider(id: $id, input: $input) { deviceFlow { codeLifetimeSeconds pollIntervalSeconds } } }',
      { id: p.id, input: { deviceFlow: { codeLifetimeSeconds: 2 } } },
    );
    assert.deepEqual(updated.updateProvider.deviceFlow, { codeLifetimeSeconds: 2, pollIntervalSeconds: 5 });
  });
});

describe('client authentication on the device endpoint', () => {
  test('a confidential client without its secret is invalid_client (401)', async () => {
    const { clientId } = await seedClient(server, { providerId: provider.id, type: 'CONFIDENTIAL' });
    const { status, headers, body } = await deviceAuthorization(server, { client_id: clientId });
    assert.equal(status, 401);
    assert.equal(body.error, 'invalid_client');
    assertNoStore(headers);
  });

  test('a confidential client with its secret in Basic gets codes', async () => {
    const { clientId, clientSecret } = await seedClient(server, { providerId: provider.id, type: 'CONFIDENTIAL' });
    const { status } = await deviceAuthorization(server, {}, { authorization: basic(clientId, clientSecret!) });
    assert.equal(status, 200);
  });

  test('a confidential client with its secret in the body gets codes', async () => {
    const { clientId, clientSecret } = await seedClient(server, { providerId: provider.id, type: 'CONFIDENTIAL' });
    const { status } = await deviceAuthorization(server, { client_id: clientId, client_secret: clientSecret! });
    assert.equal(status, 200);
  });

  test('a wrong secret over Basic is 401 with WWW-Authenticate', async () => {
    const { clientId } = await seedClient(server, { providerId: provider.id, type: 'CONFIDENTIAL' });
    const { status, headers, body } = await deviceAuthorization(server, {}, { authorization: basic(clientId, 'wrong') });
    assert.equal(status, 401);
    assert.equal(body.error, 'invalid_client');
    assert.equal(headers.get('www-authenticate'), 'Basic realm="tessera"');
  });

  test('an unknown client is invalid_client', async () => {
    const { status, body } = await deviceAuthorization(server, { client_id: 'no-such-client' });
    assert.equal(status, 401);
    assert.equal(body.error, 'invalid_client');
  });

  test('no client at all is invalid_client', async () => {
    const { status, body } = await deviceAuthorization(server, {});
    assert.equal(status, 401);
    assert.equal(body.error, 'invalid_client');
  });

  test('a client without the DEVICE_CODE grant is unauthorized_client', async () => {
    const { clientId, clientSecret } = await seedClient(server, { providerId: provider.id, type: 'CONFIDENTIAL', grantTypes: ['CLIENT_CREDENTIALS'] });
    const { status, headers, body } = await deviceAuthorization(server, { client_id: clientId, client_secret: clientSecret! });
    assert.equal(status, 400);
    assert.equal(body.error, 'unauthorized_client');
    assertNoStore(headers);
  });
});

describe('scopes', () => {
  test("'scopes' is accepted as an alias of 'scope' (authentik's documented request)", async () => {
    const { status, body } = await deviceAuthorization(server, { client_id: publicClientId, scopes: 'openid email' });
    assert.equal(status, 200);
    const stored = await server.server.services.store.deviceAuthorizations.findOne({ deviceCodeHash: sha256(String(body.device_code)) });
    assert.deepEqual(stored?.scopes, ['openid', 'email']);
  });

  test("'scope' and 'scopes' together are invalid_request", async () => {
    const { status, body } = await deviceAuthorization(server, { client_id: publicClientId, scope: 'openid', scopes: 'openid' });
    assert.equal(status, 400);
    assert.equal(body.error, 'invalid_request');
  });

  test('a scope outside the client allowed scopes is invalid_scope', async () => {
    const { status, headers, body } = await deviceAuthorization(server, { client_id: publicClientId, scope: 'openid admin' });
    assert.equal(status, 400);
    assert.equal(body.error, 'invalid_scope');
    assertNoStore(headers);
  });

  test('a client without allowed scopes may ask for the provider defaults only', async () => {
    const { clientId } = await seedClient(server, { providerId: provider.id, allowedScopes: [] });
    assert.equal((await deviceAuthorization(server, { client_id: clientId, scope: 'openid offline_access' })).status, 200);
    assert.equal((await deviceAuthorization(server, { client_id: clientId, scope: 'write' })).body.error, 'invalid_scope');
  });
});

describe('PKCE on the device endpoint', () => {
  const challenge = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';

  test('an S256 challenge in the body is stored with the authorization', async () => {
    const { status, body } = await deviceAuthorization(server, { client_id: publicClientId, code_challenge: challenge, code_challenge_method: 'S256' });
    assert.equal(status, 200);
    const stored = await server.server.services.store.deviceAuthorizations.findOne({ deviceCodeHash: sha256(String(body.device_code)) });
    assert.equal(stored?.codeChallenge, challenge);
    assert.equal(stored?.codeChallengeMethod, 'S256');
  });

  test('the challenge may come in the query string (PingAM style)', async () => {
    const { status, body } = await deviceAuthorization(server, { client_id: publicClientId }, {}, `?code_challenge=${challenge}&code_challenge_method=S256`);
    assert.equal(status, 200);
    const stored = await server.server.services.store.deviceAuthorizations.findOne({ deviceCodeHash: sha256(String(body.device_code)) });
    assert.equal(stored?.codeChallengeMethod, 'S256');
  });

  test('the method defaults to plain', async () => {
    const verifier = 'a'.repeat(43);
    const { body } = await deviceAuthorization(server, { client_id: publicClientId, code_challenge: verifier });
    const stored = await server.server.services.store.deviceAuthorizations.findOne({ deviceCodeHash: sha256(String(body.device_code)) });
    assert.equal(stored?.codeChallengeMethod, 'plain');
  });

  test('an unknown method is invalid_request', async () => {
    const { status, body } = await deviceAuthorization(server, { client_id: publicClientId, code_challenge: challenge, code_challenge_method: 'S512' });
    assert.equal(status, 400);
    assert.equal(body.error, 'invalid_request');
  });

  test('a malformed S256 challenge is invalid_request', async () => {
    const { status, body } = await deviceAuthorization(server, { client_id: publicClientId, code_challenge: 'short', code_challenge_method: 'S256' });
    assert.equal(status, 400);
    assert.equal(body.error, 'invalid_request');
  });

  test('a provider with requirePkce refuses a request without a challenge (invalid_request)', async () => {
    const strict = await seedProvider(server, { deviceFlow: { requirePkce: true } });
    const { clientId } = await seedClient(server, { providerId: strict.id });
    const without = await deviceAuthorization(server, { client_id: clientId });
    assert.equal(without.status, 400);
    assert.equal(without.body.error, 'invalid_request');
    assertNoStore(without.headers);
    const withChallenge = await deviceAuthorization(server, { client_id: clientId, code_challenge: challenge, code_challenge_method: 'S256' });
    assert.equal(withChallenge.status, 200);
  });
});

describe('malformed requests', () => {
  test('a JSON body is invalid_request', async () => {
    const response = await fetch(`${server.url}/application/o/device/`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_id: publicClientId }),
    });
    assert.equal(response.status, 400);
    assert.equal(((await response.json()) as { error: string }).error, 'invalid_request');
    assert.equal(response.headers.get('cache-control'), 'no-store');
  });

  test('a parameter given twice is invalid_request', async () => {
    const response = await fetch(`${server.url}/application/o/device/`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `client_id=${publicClientId}&scope=openid&scope=email`,
    });
    assert.equal(response.status, 400);
    assert.equal(((await response.json()) as { error: string }).error, 'invalid_request');
  });

  test('a malformed Basic header is invalid_client with WWW-Authenticate', async () => {
    const { status, headers, body } = await deviceAuthorization(server, {}, { authorization: 'Basic %%%' });
    assert.equal(status, 401);
    assert.equal(body.error, 'invalid_client');
    assert.equal(headers.get('www-authenticate'), 'Basic realm="tessera"');
  });
});
