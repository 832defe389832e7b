/**
 * grant_type=refresh_token (contract: rotation, reuse revokes the family, scope only narrows).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { basic, startTestServer, type TestServer } from '../helpers/server.js';
import { seedClient, seedProvider, seedUser, type SeededProvider, type SeededUser } from '../helpers/seed.js';
import { decide, jwtPayload, poll, sleep, startDevice, tokenRequest } from '../helpers/device.js';

let server: TestServer;
let provider: SeededProvider;
let clientId: string;
let bob: SeededUser;

before(async () => {
  server = await startTestServer();
  provider = await seedProvider(server);
  clientId = (await seedClient(server, { providerId: provider.id, grantTypes: ['DEVICE_CODE', 'REFRESH_TOKEN'], allowedScopes: ['openid', 'profile', 'email', 'offline_access'] })).clientId;
  bob = await seedUser(server, { name: 'Bob' });
});
after(async () => {
  await server.stop();
});

/** A refresh token from a completed device flow. */
async function refreshTokenFor(client = clientId, scope = 'openid profile email', headers: Record<string, string> = {}, extra: Record<string, string> = {}): Promise<string> {
  const codes = await startDevice(server, client, { scope, ...extra });
  assert.equal((await decide(server, bob.username, bob.appPassword, codes.user_code, 'allow')).status, 200);
  const answer = await poll(server, client, codes.device_code, extra, headers);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return String(answer.body.refresh_token);
}

function refresh(token: string, form: Record<string, string> = {}, client = clientId, headers: Record<string, string> = {}) {
  return tokenRequest(server, { grant_type: 'refresh_token', client_id: client, refresh_token: token, ...form }, headers);
}

describe('refresh_token grant', () => {
  test('a refresh returns a new access token and a new refresh token (rotation)', async () => {
    const first = await refreshTokenFor();
    const { status, headers, body } = await refresh(first);
    assert.equal(status, 200);
    assert.equal(headers.get('cache-control'), 'no-store');
    assert.equal(body.token_type, 'Bearer');
    assert.equal(body.scope, 'openid profile email');
    assert.equal(typeof body.refresh_token, 'string');
    assert.notEqual(body.refresh_token, first);
    assert.equal(jwtPayload(String(body.access_token)).sub, bob.user.id);
    assert.equal(typeof body.id_token, 'string', 'openid was granted');
    // The new one works in turn.
    assert.equal((await refresh(String(body.refresh_token))).status, 200);
  });

  test('reusing a spent refresh token is invalid_grant and revokes the whole family', async () => {
    const first = await refreshTokenFor();
    const rotated = await refresh(first);
    assert.equal(rotated.status, 200);
    const reuse = await refresh(first);
    assert.equal(reuse.status, 400);
    assert.equal(reuse.body.error, 'invalid_grant');
    assert.equal(reuse.headers.get('cache-control'), 'no-store');
    // The token handed out by the rotation is revoked with its family.
    const afterReuse = await refresh(String(rotated.body.refresh_token));
    assert.equal(afterReuse.body.error, 'invalid_grant');
  });

  test('scope may narrow', async () => {
    const token = await refreshTokenFor();
    const narrowed = await refresh(token, { scope: 'profile' });
    assert.equal(narrowed.status, 200);
    assert.equal(narrowed.body.scope, 'profile');
    assert.equal(jwtPayload(String(narrowed.body.access_token)).scope, 'profile');
    assert.equal(narrowed.body.id_token, undefined);
    // ...and stays narrowed: the rotated token cannot widen back.
    const widened = await refresh(String(narrowed.body.refresh_token), { scope: 'profile email' });
    assert.equal(widened.status, 400);
    assert.equal(widened.body.error, 'invalid_scope');
  });

  test('scope may not widen: invalid_scope', async () => {
    const token = await refreshTokenFor(clientId, 'profile');
    const { status, body } = await refresh(token, { scope: 'profile email' });
    assert.equal(status, 400);
    assert.equal(body.error, 'invalid_scope');
    // A refused widening does not spend the token.
    assert.equal((await refresh(token)).status, 200);
  });

  test("another client's refresh token is invalid_grant and is not spent", async () => {
    const token = await refreshTokenFor();
    const other = (await seedClient(server, { providerId: provider.id, grantTypes: ['DEVICE_CODE', 'REFRESH_TOKEN'] })).clientId;
    assert.equal((await refresh(token, {}, other)).body.error, 'invalid_grant');
    assert.equal((await refresh(token)).status, 200);
  });

  test('an unknown refresh token is invalid_grant', async () => {
    const { status, body } = await refresh('not-a-refresh-token');
    assert.equal(status, 400);
    assert.equal(body.error, 'invalid_grant');
  });

  test('a missing refresh_token is invalid_request', async () => {
    const { status, body } = await tokenRequest(server, { grant_type: 'refresh_token', client_id: clientId });
    assert.equal(status, 400);
    assert.equal(body.error, 'invalid_request');
  });

  test('a client without the REFRESH_TOKEN grant is unauthorized_client', async () => {
    const plain = (await seedClient(server, { providerId: provider.id, grantTypes: ['DEVICE_CODE'] })).clientId;
    const { status, body } = await refresh('anything', {}, plain);
    assert.equal(status, 400);
    assert.equal(body.error, 'unauthorized_client');
  });

  test('an expired refresh token is invalid_grant', async () => {
    const shortLived = await seedProvider(server, { refreshTokenLifetimeSeconds: 1 });
    const tv = (await seedClient(server, { providerId: shortLived.id, grantTypes: ['DEVICE_CODE', 'REFRESH_TOKEN'] })).clientId;
    const token = await refreshTokenFor(tv, '');
    await sleep(1100);
    assert.equal((await refresh(token, {}, tv)).body.error, 'invalid_grant');
  });

  test('a confidential client must prove its secret to refresh', async () => {
    const { clientId: tv, clientSecret } = await seedClient(server, { providerId: provider.id, type: 'CONFIDENTIAL', grantTypes: ['DEVICE_CODE', 'REFRESH_TOKEN'] });
    const auth = { authorization: basic(tv, clientSecret!) };
    const codes = await startDevice(server, tv, { client_secret: clientSecret! });
    await decide(server, bob.username, bob.appPassword, codes.user_code, 'allow');
    const token = String((await poll(server, tv, codes.device_code, {}, auth)).body.refresh_token);
    const without = await tokenRequest(server, { grant_type: 'refresh_token', client_id: tv, refresh_token: token });
    assert.equal(without.status, 401);
    assert.equal(without.body.error, 'invalid_client');
    const withSecret = await tokenRequest(server, { grant_type: 'refresh_token', refresh_token: token }, auth);
    assert.equal(withSecret.status, 200);
  });

  test('concurrent refreshes of one token: exactly one succeeds', async () => {
    const token = await refreshTokenFor();
    const answers = await Promise.all(Array.from({ length: 8 }, () => refresh(token)));
    const statuses = answers.map((a) => a.status);
    assert.equal(statuses.filter((s) => s === 200).length, 1, statuses.join(','));
    assert.ok(statuses.every((s) => s === 200 || s === 400), statuses.join(','));
  });

  test('a refresh refused by a bound policy is invalid_grant and does not spend the token', async () => {
    const token = await refreshTokenFor();
    const policy = await server.gql<{ createExpressionPolicy: { id: string } }>(
      'mutation($input: CreateExpressionPolicyInput!) { createExpressionPolicy(input: $input) { id } }',
      { input: { name: `no refresh ${Date.now()}`, expression: 'request.context.oauth_grant_type != "refresh_token"' } },
    );
    const client = await server.server.services.clients.getByClientId(clientId);
    const binding = await server.gql<{ bindPolicy: { id: string } }>(
      'mutation($input: BindPolicyInput!) { bindPolicy(input: $input) { id } }',
      { input: { policyId: policy.createExpressionPolicy.id, targetType: 'CLIENT', targetId: client!.id } },
    );
    try {
      const refused = await refresh(token);
      assert.equal(refused.status, 400);
      assert.equal(refused.body.error, 'invalid_grant');
    } finally {
      await server.gql('mutation($id: ID!) { unbindPolicy(id: $id) }', { id: binding.bindPolicy.id });
    }
    // Once the policy is gone the same token still works: the refusal did not spend it.
    assert.equal((await refresh(token)).status, 200);
  });

  test('a refresh records TOKEN_ISSUED with its request id', async () => {
    const token = await refreshTokenFor();
    const answer = await refresh(token);
    await server.server.services.events.flush();
    const event = await server.server.services.store.events.findOne({ requestId: answer.headers.get('x-request-id')! });
    assert.equal(event?.action, 'TOKEN_ISSUED');
    assert.equal(event?.clientId, clientId);
    assert.equal(event?.username, bob.username);
    assert.equal(event?.context.grantType, 'refresh_token');
  });
});
