/**
 * An access token dies with what it was issued on (contract v2, "Changes to version 1"): once its
 * app password is revoked, its refresh-token family is revoked, its client, user or provider is
 * deleted, or its user is deactivated, introspection says active:false, userinfo answers 401 and
 * the admin API refuses it. Each case first uses the token on all three (which also warms the
 * verified-token cache), then kills what it came from through the admin API or the token endpoint.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { basic, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { seedClient, seedProvider, seedUser, type SeededClient, type SeededUser } from '../helpers/seed.js';
import { decide, poll, startDevice, tokenRequest } from '../helpers/device.js';

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.stop();
});

interface World {
  provider: { id: string; slug: string };
  /** The client the tokens are issued to (client_credentials on an admin's app password). */
  m2m: SeededClient;
  /** Another confidential client of the provider: the resource server that introspects. */
  resource: SeededClient;
  admin: SeededUser;
}

async function world(): Promise<World> {
  const provider = await seedProvider(t, { deviceFlow: { pollIntervalSeconds: 1 } });
  const m2m = await seedClient(t, {
    providerId: provider.id, type: 'CONFIDENTIAL', grantTypes: ['CLIENT_CREDENTIALS'], allowedScopes: ['openid', 'profile', 'tessera:admin'],
  });
  const resource = await seedClient(t, { providerId: provider.id, type: 'CONFIDENTIAL', grantTypes: ['CLIENT_CREDENTIALS'] });
  const admin = await seedUser(t, { isAdmin: true });
  return { provider, m2m, resource, admin };
}

/** client_credentials rule 1: the admin's username and app password. */
async function appPasswordToken(w: World): Promise<string> {
  const issued = await postForm(`${t.url}/application/o/token/`, {
    grant_type: 'client_credentials', username: w.admin.username, password: w.admin.appPassword, scope: 'profile tessera:admin',
  }, { authorization: basic(w.m2m.clientId, w.m2m.clientSecret!) });
  assert.equal(issued.status, 200, JSON.stringify(issued.body));
  assert.equal(issued.body.scope, 'profile tessera:admin');
  return String(issued.body.access_token);
}

interface Seen {
  active: unknown;
  userinfo: number;
  admin: number;
}

/** What introspection (by `introspector`), userinfo and the admin API make of the token. */
async function seen(token: string, introspector: SeededClient): Promise<Seen> {
  const introspected = await postForm(`${t.url}/application/o/introspect/`, { token }, { authorization: basic(introspector.clientId, introspector.clientSecret!) });
  assert.equal(introspected.status, 200, JSON.stringify(introspected.body));
  const userinfo = await fetch(`${t.url}/application/o/userinfo/`, { headers: { authorization: `Bearer ${token}` } });
  await userinfo.arrayBuffer();
  const admin = await t.gqlRaw('{ providers { id } }', undefined, token);
  return { active: introspected.body.active, userinfo: userinfo.status, admin: admin.status };
}

const LIVE: Seen = { active: true, userinfo: 200, admin: 200 };
const DEAD: Seen = { active: false, userinfo: 401, admin: 401 };

test('revoking the app password a token was issued on kills the token', async () => {
  const w = await world();
  const token = await appPasswordToken(w);
  assert.deepEqual(await seen(token, w.resource), LIVE);
  const found = await t.gql<{ user: { appPasswords: { id: string }[] } }>('query($u: String!) { user(username: $u) { appPasswords { id } } }', { u: w.admin.username });
  assert.equal(found.user.appPasswords.length, 1);
  await t.gql('mutation($id: ID!) { revokeAppPassword(id: $id) }', { id: found.user.appPasswords[0]!.id });
  assert.deepEqual(await seen(token, w.resource), DEAD);
});

test('a token issued on another app password of the same user lives on when one is revoked', async () => {
  const w = await world();
  const token = await appPasswordToken(w);
  const other = await t.gql<{ createAppPassword: { appPassword: { id: string } } }>(
    'mutation($id: ID!) { createAppPassword(input: { userId: $id }) { appPassword { id } } }', { id: w.admin.user.id },
  );
  await t.gql('mutation($id: ID!) { revokeAppPassword(id: $id) }', { id: other.createAppPassword.appPassword.id });
  assert.deepEqual(await seen(token, w.resource), LIVE);
});

/** A device flow approved by the admin, for a public client with refresh tokens. */
async function deviceTokens(w: World): Promise<{ deviceClient: SeededClient; access: string; refresh: string }> {
  const deviceClient = await seedClient(t, {
    providerId: w.provider.id, type: 'PUBLIC', grantTypes: ['DEVICE_CODE', 'REFRESH_TOKEN'], allowedScopes: ['openid', 'tessera:admin'],
  });
  const codes = await startDevice(t, deviceClient.clientId, { scope: 'openid tessera:admin' });
  assert.equal((await decide(t, w.admin.username, w.admin.password, codes.user_code, 'allow')).status, 200);
  const tokens = await poll(t, deviceClient.clientId, codes.device_code);
  assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
  return { deviceClient, access: String(tokens.body.access_token), refresh: String(tokens.body.refresh_token) };
}

test('reusing a spent refresh token revokes its family, and the access tokens issued with it die', async () => {
  const w = await world();
  const first = await deviceTokens(w);
  assert.deepEqual(await seen(first.access, w.resource), LIVE);
  const rotated = await tokenRequest(t, { grant_type: 'refresh_token', refresh_token: first.refresh, client_id: first.deviceClient.clientId });
  assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
  const second = String(rotated.body.access_token);
  assert.deepEqual(await seen(second, w.resource), LIVE);
  const reused = await tokenRequest(t, { grant_type: 'refresh_token', refresh_token: first.refresh, client_id: first.deviceClient.clientId });
  assert.equal(reused.body.error, 'invalid_grant');
  assert.deepEqual(await seen(first.access, w.resource), DEAD);
  assert.deepEqual(await seen(second, w.resource), DEAD);
});

test('revoking a refresh token (RFC 7009) kills the access token issued with it', async () => {
  const w = await world();
  const { deviceClient, access, refresh } = await deviceTokens(w);
  assert.deepEqual(await seen(access, w.resource), LIVE);
  const revoked = await postForm(`${t.url}/application/o/revoke/`, { token: refresh, client_id: deviceClient.clientId });
  assert.equal(revoked.status, 200);
  assert.deepEqual(await seen(access, w.resource), DEAD);
});

test('deleting the client kills its tokens, and a client made again under the same client_id does not revive them', async () => {
  const w = await world();
  const token = await appPasswordToken(w);
  assert.deepEqual(await seen(token, w.resource), LIVE);
  await t.gql('mutation($id: ID!) { deleteClient(id: $id) }', { id: w.m2m.client.id });
  assert.deepEqual(await seen(token, w.resource), DEAD);
  // Past the 2 s allowed for clock skew between processes: the new client is visibly younger than the token.
  await new Promise((resolve) => setTimeout(resolve, 3_100));
  await seedClient(t, { providerId: w.provider.id, type: 'CONFIDENTIAL', grantTypes: ['CLIENT_CREDENTIALS'], clientId: w.m2m.clientId });
  assert.deepEqual(await seen(token, w.resource), DEAD);
});

test('deleting the user kills its tokens', async () => {
  const w = await world();
  const token = await appPasswordToken(w);
  assert.deepEqual(await seen(token, w.resource), LIVE);
  await t.gql('mutation($id: ID!) { deleteUser(id: $id) }', { id: w.admin.user.id });
  assert.deepEqual(await seen(token, w.resource), DEAD);
});

test('deactivating the user kills its tokens', async () => {
  const w = await world();
  const token = await appPasswordToken(w);
  assert.deepEqual(await seen(token, w.resource), LIVE);
  await t.gql('mutation($id: ID!) { updateUser(id: $id, input: { isActive: false }) { id } }', { id: w.admin.user.id });
  assert.deepEqual(await seen(token, w.resource), DEAD);
});

test('deleting the provider kills its tokens (userinfo 401, admin API 401; its clients are gone, so nobody can introspect there)', async () => {
  const w = await world();
  const token = await appPasswordToken(w);
  assert.deepEqual(await seen(token, w.resource), LIVE);
  await t.gql('mutation($id: ID!) { deleteProvider(id: $id) }', { id: w.provider.id });
  const userinfo = await fetch(`${t.url}/application/o/userinfo/`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(userinfo.status, 401);
  assert.equal((await t.gqlRaw('{ providers { id } }', undefined, token)).status, 401);
  const introspected = await postForm(`${t.url}/application/o/introspect/`, { token }, { authorization: basic(w.resource.clientId, w.resource.clientSecret!) });
  assert.equal(introspected.status, 401);
  assert.equal(introspected.body.error, 'invalid_client');
});
