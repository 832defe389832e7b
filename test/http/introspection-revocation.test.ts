/**
 * RFC 7662 introspection and RFC 7009 revocation, as the contract fixes them: client
 * authentication first (bad credentials are 401 invalid_client, never active:false), the
 * same-provider rule, active:false for everything not live, 200 for unknown tokens.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { basic, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { seedMachineClient, seedMachineProvider, seedUserWithAppPassword } from '../helpers/seed.js';
import type { Provider } from '../../src/domain/model.js';
import { sha256Hex } from '../../src/domain/secrets.js';
import { StoreUnavailableError } from '../../src/store/errors.js';

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.stop();
});

const introspect = (form: Record<string, string>, headers: Record<string, string> = {}) => postForm(`${t.url}/application/o/introspect/`, form, headers);
const revoke = (form: Record<string, string>, headers: Record<string, string> = {}) => postForm(`${t.url}/application/o/revoke/`, form, headers);

/** A provider, a confidential client with client_credentials, and one of its access tokens. */
async function setup(providerInput: { accessTokenLifetimeSeconds?: number } = {}) {
  const provider = await seedMachineProvider(t, providerInput);
  const client = await seedMachineClient(t, provider, { grantTypes: ['CLIENT_CREDENTIALS', 'REFRESH_TOKEN'] });
  const auth = basic(client.clientId, client.clientSecret!);
  const issued = await postForm(`${t.url}/application/o/token/`, { grant_type: 'client_credentials', scope: 'profile' }, { authorization: auth });
  assert.equal(issued.status, 200, JSON.stringify(issued.body));
  return { provider, client, auth, accessToken: String(issued.body.access_token) };
}

/** A refresh token stored as the device flow would store it (the client_credentials grant issues none). */
async function refreshTokenFor(provider: Provider, clientId: string) {
  const svc = await seedUserWithAppPassword(t);
  const { token, record } = await t.server.services.tokens.refreshTokens.issue({ provider, clientId, userId: svc.user.id, scopes: ['openid'] });
  return { token, record, svc };
}

describe('introspection (RFC 7662)', () => {
  test('a live access token of the same provider is active, with its claims', async () => {
    const { provider, client, auth, accessToken } = await setup();
    const response = await introspect({ token: accessToken }, { authorization: auth });
    assert.equal(response.status, 200);
    assert.equal(response.body.active, true);
    assert.equal(response.body.client_id, client.clientId);
    assert.equal(response.body.scope, 'profile');
    assert.equal(response.body.token_type, 'Bearer');
    assert.equal(response.body.iss, t.server.services.providers.issuer(provider));
    // The generated account's display name (contract v2: a hash of its identity key is appended).
    assert.match(String(response.body.username), new RegExp(`^${provider.slug}-${client.clientId}-client_credentials-[0-9a-f]{16}$`));
    assert.equal(typeof response.body.exp, 'number');
    assert.equal(typeof response.body.sub, 'string');
  });

  test('another client of the same provider may introspect (client_secret_post)', async () => {
    const { provider, accessToken } = await setup();
    const other = await seedMachineClient(t, provider);
    const response = await introspect({ token: accessToken, client_id: other.clientId, client_secret: other.clientSecret! });
    assert.equal(response.body.active, true);
  });

  test("a token of another provider is active:false", async () => {
    const { accessToken } = await setup();
    const elsewhere = await setup();
    const response = await introspect({ token: accessToken }, { authorization: elsewhere.auth });
    assert.equal(response.status, 200);
    assert.deepEqual(response.body, { active: false });
  });

  test('bad client credentials are 401 invalid_client, not active:false', async () => {
    const { client, accessToken } = await setup();
    const wrong = await introspect({ token: accessToken }, { authorization: basic(client.clientId, 'wrong') });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error, 'invalid_client');
    assert.equal(wrong.headers.get('www-authenticate'), 'Basic realm="tessera"');
    const none = await introspect({ token: accessToken, client_id: client.clientId });
    assert.equal(none.status, 401);
    assert.equal(none.body.error, 'invalid_client');
    const unknown = await introspect({ token: accessToken }, { authorization: basic('no-such-client', 'x') });
    assert.equal(unknown.status, 401);
  });

  test('a public client may not introspect: 401 invalid_client (contract v2)', async () => {
    const { provider, accessToken } = await setup();
    const publicClient = await seedMachineClient(t, provider, { type: 'PUBLIC', grantTypes: ['DEVICE_CODE'] });
    const viaBody = await introspect({ token: accessToken, client_id: publicClient.clientId });
    assert.equal(viaBody.status, 401);
    assert.equal(viaBody.body.error, 'invalid_client');
    assert.equal(viaBody.body.active, undefined);
    const viaBasic = await introspect({ token: accessToken }, { authorization: basic(publicClient.clientId, '') });
    assert.equal(viaBasic.status, 401);
    assert.equal(viaBasic.body.error, 'invalid_client');
    assert.equal(viaBasic.headers.get('www-authenticate'), 'Basic realm="tessera"');
  });

  test('a malformed or unknown token is active:false', async () => {
    const { auth } = await setup();
    for (const token of ['not-a-token', 'a.b.c', 'x'.repeat(20_000), randomUUID()]) {
      const response = await introspect({ token }, { authorization: auth });
      assert.equal(response.status, 200);
      assert.deepEqual(response.body, { active: false });
    }
  });

  test('a missing token parameter is invalid_request', async () => {
    const { auth } = await setup();
    const response = await introspect({}, { authorization: auth });
    assert.equal(response.status, 400);
    assert.equal(response.body.error, 'invalid_request');
  });

  test('an expired access token is active:false', async () => {
    const { auth, accessToken } = await setup({ accessTokenLifetimeSeconds: 1 });
    await new Promise((r) => setTimeout(r, 2_100));
    const response = await introspect({ token: accessToken }, { authorization: auth });
    assert.deepEqual(response.body, { active: false });
  });

  test('refresh tokens are introspected too; spent ones are inactive', async () => {
    const { provider, client, auth } = await setup();
    const { token, record, svc } = await refreshTokenFor(provider, client.clientId);
    const live = await introspect({ token, token_type_hint: 'refresh_token' }, { authorization: auth });
    assert.equal(live.body.active, true);
    assert.equal(live.body.username, svc.username);
    assert.equal(live.body.scope, 'openid');
    // The hint is only a hint: a wrong one still finds it.
    const misHinted = await introspect({ token, token_type_hint: 'access_token' }, { authorization: auth });
    assert.equal(misHinted.body.active, true);
    await t.server.services.store.refreshTokens.updateOne({ id: record.id }, { $set: { usedAt: new Date() } });
    const spent = await introspect({ token }, { authorization: auth });
    assert.deepEqual(spent.body, { active: false });
  });
});

describe('revocation (RFC 7009)', () => {
  test('a revoked access token is inactive from then on (jti denylist until exp)', async () => {
    const { auth, accessToken } = await setup();
    const response = await revoke({ token: accessToken, token_type_hint: 'access_token' }, { authorization: auth });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('cache-control'), 'no-store');
    const after = await introspect({ token: accessToken }, { authorization: auth });
    assert.deepEqual(after.body, { active: false });
    const denied = await t.server.services.store.revokedTokens.count({});
    assert.ok(denied >= 1);
    // Revoking again is fine.
    assert.equal((await revoke({ token: accessToken }, { authorization: auth })).status, 200);
  });

  test('revoking a refresh token revokes its whole family', async () => {
    const { provider, client, auth } = await setup();
    const { token, record, svc } = await refreshTokenFor(provider, client.clientId);
    // A second token of the same family (what a rotation would have made).
    const sibling = await t.server.services.tokens.refreshTokens.issue({ provider, clientId: client.clientId, userId: svc.user.id, scopes: ['openid'], familyId: record.familyId });
    const response = await revoke({ token }, { authorization: auth });
    assert.equal(response.status, 200);
    const family = await t.server.services.store.refreshTokens.find({ familyId: record.familyId });
    assert.equal(family.length, 2);
    assert.ok(family.every((r) => r.revokedAt !== null));
    assert.deepEqual((await introspect({ token: sibling.token }, { authorization: auth })).body, { active: false });
  });

  test('an unknown token answers 200', async () => {
    const { auth } = await setup();
    for (const token of ['unknown', 'a.b.c', randomUUID()]) {
      const response = await revoke({ token }, { authorization: auth });
      assert.equal(response.status, 200);
    }
  });

  test("another provider's token is not revoked (200, and it stays active)", async () => {
    const { auth, accessToken } = await setup();
    const elsewhere = await setup();
    assert.equal((await revoke({ token: accessToken }, { authorization: elsewhere.auth })).status, 200);
    assert.equal((await introspect({ token: accessToken }, { authorization: auth })).body.active, true);
  });

  test("another provider's refresh token is not revoked", async () => {
    const { provider, client } = await setup();
    const elsewhere = await setup();
    const { token, record } = await refreshTokenFor(provider, client.clientId);
    assert.equal((await revoke({ token }, { authorization: elsewhere.auth })).status, 200);
    const stored = await t.server.services.store.refreshTokens.findOne({ tokenHash: sha256Hex(token) });
    assert.equal(stored?.id, record.id);
    assert.equal(stored?.revokedAt, null);
  });

  test("another client of the same provider cannot revoke a client's tokens: 200, and they stay active (contract v2)", async () => {
    const { provider, client, auth, accessToken } = await setup();
    const other = await seedMachineClient(t, provider);
    const otherAuth = basic(other.clientId, other.clientSecret!);
    assert.equal((await revoke({ token: accessToken }, { authorization: otherAuth })).status, 200);
    assert.equal((await introspect({ token: accessToken }, { authorization: auth })).body.active, true);
    const { token, record } = await refreshTokenFor(provider, client.clientId);
    assert.equal((await revoke({ token }, { authorization: otherAuth })).status, 200);
    assert.equal((await t.server.services.store.refreshTokens.findOne({ id: record.id }))?.revokedAt, null);
    assert.equal((await introspect({ token }, { authorization: auth })).body.active, true);
    await t.server.services.events.flush();
    const events = await t.server.services.store.events.find({ action: 'TOKEN_REVOKED', clientId: other.clientId });
    assert.deepEqual(events, [], 'nothing was revoked, so nothing is recorded');
  });

  test('a store failure during revocation is an error (503), not a 200 with TOKEN_REVOKED while the token stays active', async () => {
    const { provider, client, auth, accessToken } = await setup();
    const { token: refreshToken } = await refreshTokenFor(provider, client.clientId);
    const denylist = t.server.services.store.revokedTokens;
    // The denylist's writes fail, as a store that stopped answering would (this test only): once
    // as the adapters say so, once as a driver's own error.
    const answers = [];
    try {
      denylist.insert = () => Promise.reject(new StoreUnavailableError('test: the store is not answering'));
      answers.push(await revoke({ token: accessToken }, { authorization: auth }));
      denylist.insert = () => Promise.reject(new Error('test: connection reset'));
      answers.push(await revoke({ token: refreshToken }, { authorization: auth }));
    } finally {
      delete (denylist as { insert?: unknown }).insert;
    }
    for (const answer of answers) {
      assert.equal(answer.status, 503, JSON.stringify(answer.body));
      assert.equal(answer.body.error, 'temporarily_unavailable');
    }
    assert.equal((await introspect({ token: accessToken }, { authorization: auth })).body.active, true);
    assert.equal((await introspect({ token: refreshToken }, { authorization: auth })).body.active, true);
    await t.server.services.events.flush();
    const events = await t.server.services.store.events.find({ action: 'TOKEN_REVOKED', clientId: client.clientId });
    assert.deepEqual(events, []);
  });

  test('bad client credentials are 401 invalid_client', async () => {
    const { client, accessToken } = await setup();
    const response = await revoke({ token: accessToken }, { authorization: basic(client.clientId, 'wrong') });
    assert.equal(response.status, 401);
    assert.equal(response.body.error, 'invalid_client');
  });

  test('the paths answer without the trailing slash too', async () => {
    const { auth, accessToken } = await setup();
    const response = await postForm(`${t.url}/application/o/introspect`, { token: accessToken }, { authorization: auth });
    assert.equal(response.body.active, true);
    const revoked = await postForm(`${t.url}/application/o/revoke`, { token: accessToken }, { authorization: auth });
    assert.equal(revoked.status, 200);
  });
});
