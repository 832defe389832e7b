/**
 * The hot paths' process caches (verified access tokens, clients, providers, users, app
 * passwords) never outlive a change made through the admin API on this process: each test warms
 * the cache first, changes something, and expects the next request to see the change at once.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { basic, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { seedMachineClient, seedMachineProvider, seedUserWithAppPassword } from '../helpers/seed.js';

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.stop();
});

const tokenUrl = () => `${t.url}/application/o/token/`;
const introspect = (token: string, auth: string) => postForm(`${t.url}/application/o/introspect/`, { token }, { authorization: auth });

async function machine() {
  const provider = await seedMachineProvider(t);
  const client = await seedMachineClient(t, provider);
  const auth = basic(client.clientId, client.clientSecret!);
  const issued = await postForm(tokenUrl(), { grant_type: 'client_credentials' }, { authorization: auth });
  assert.equal(issued.status, 200, JSON.stringify(issued.body));
  return { provider, client, auth, accessToken: String(issued.body.access_token) };
}

test('a revoked access token introspects inactive at once, though its verification was cached', async () => {
  const { auth, accessToken } = await machine();
  for (let i = 0; i < 3; i++) assert.equal((await introspect(accessToken, auth)).body.active, true);
  const revoked = await postForm(`${t.url}/application/o/revoke/`, { token: accessToken }, { authorization: auth });
  assert.equal(revoked.status, 200);
  assert.deepEqual((await introspect(accessToken, auth)).body, { active: false });
  assert.deepEqual((await introspect(accessToken, auth)).body, { active: false });
});

test('a deactivated user\'s access token introspects inactive at once (GraphQL updateUser)', async () => {
  const { auth, accessToken } = await machine();
  const active = await introspect(accessToken, auth);
  assert.equal(active.body.active, true);
  await t.gql(`mutation($id: ID!) { updateUser(id: $id, input: { isActive: false }) { id } }`, { id: active.body.sub });
  assert.deepEqual((await introspect(accessToken, auth)).body, { active: false });
});

test('a deleted provider\'s access token no longer verifies at once (GraphQL deleteProvider)', async () => {
  const { provider, accessToken } = await machine();
  assert.ok(await t.server.services.tokens.verifyAccessToken(accessToken), 'verified (and remembered)');
  await t.gql(`mutation($id: ID!) { deleteProvider(id: $id) }`, { id: provider.id });
  assert.equal(await t.server.services.tokens.verifyAccessToken(accessToken), null);
  const userinfo = await fetch(`${t.url}/application/o/userinfo/`, { headers: { authorization: `Bearer ${accessToken}` } });
  assert.equal(userinfo.status, 401);
});

test('a token whose claims were changed after a verification does not verify (the cache is keyed by the whole token)', async () => {
  const { auth, accessToken } = await machine();
  assert.equal((await introspect(accessToken, auth)).body.active, true);
  const [header, payload, signature] = accessToken.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
  const forged = `${header}.${Buffer.from(JSON.stringify({ ...claims, scope: 'admin' })).toString('base64url')}.${signature}`;
  assert.deepEqual((await introspect(forged, auth)).body, { active: false });
});

test('a client secret rotated through GraphQL stops working at once in the same process', async () => {
  const { client, auth } = await machine();
  assert.equal((await postForm(tokenUrl(), { grant_type: 'client_credentials' }, { authorization: auth })).status, 200);
  const rotated = await t.gql<{ rotateClientSecret: { clientSecret: string } }>(
    `mutation($id: ID!) { rotateClientSecret(id: $id) { clientSecret } }`, { id: client.client.id },
  );
  const old = await postForm(tokenUrl(), { grant_type: 'client_credentials' }, { authorization: auth });
  assert.equal(old.status, 401, JSON.stringify(old.body));
  assert.equal(old.body.error, 'invalid_client');
  const fresh = await postForm(tokenUrl(), { grant_type: 'client_credentials' }, { authorization: basic(client.clientId, rotated.rotateClientSecret.clientSecret) });
  assert.equal(fresh.status, 200, JSON.stringify(fresh.body));
});

test('a client whose grant was removed through GraphQL is refused at once', async () => {
  const { client, auth } = await machine();
  await t.gql(`mutation($id: ID!) { updateClient(id: $id, input: { grantTypes: [DEVICE_CODE] }) { id } }`, { id: client.client.id });
  const refused = await postForm(tokenUrl(), { grant_type: 'client_credentials' }, { authorization: auth });
  assert.equal(refused.body.error, 'unauthorized_client');
});

test('an app password revoked through GraphQL stops working at once in the same process (rule 1)', async () => {
  const provider = await seedMachineProvider(t);
  const { clientId, clientSecret } = await seedMachineClient(t, provider);
  const svc = await seedUserWithAppPassword(t);
  const form = { grant_type: 'client_credentials', username: svc.username, password: svc.appPassword };
  const auth = basic(clientId, clientSecret!);
  for (let i = 0; i < 2; i++) assert.equal((await postForm(tokenUrl(), form, { authorization: auth })).status, 200);
  await t.gql(`mutation($id: ID!) { revokeAppPassword(id: $id) }`, { id: svc.appPasswordId });
  const refused = await postForm(tokenUrl(), form, { authorization: auth });
  assert.equal(refused.status, 400, JSON.stringify(refused.body));
  assert.equal(refused.body.error, 'invalid_grant');
});

test('an app password of a user deactivated through GraphQL stops working at once (rule 1)', async () => {
  const provider = await seedMachineProvider(t);
  const { clientId, clientSecret } = await seedMachineClient(t, provider);
  const svc = await seedUserWithAppPassword(t);
  const form = { grant_type: 'client_credentials', username: svc.username, password: svc.appPassword };
  const auth = basic(clientId, clientSecret!);
  assert.equal((await postForm(tokenUrl(), form, { authorization: auth })).status, 200);
  await t.gql(`mutation($id: ID!) { updateUser(id: $id, input: { isActive: false }) { id } }`, { id: svc.user.id });
  const refused = await postForm(tokenUrl(), form, { authorization: auth });
  assert.equal(refused.body.error, 'invalid_grant');
});

test('access and ID tokens of every signing algorithm verify with jose against the published JWKS', async () => {
  for (const signingAlgorithm of ['RS256', 'ES256', 'EdDSA'] as const) {
    const provider = await seedMachineProvider(t, { signingAlgorithm });
    const client = await seedMachineClient(t, provider, { allowedScopes: ['openid', 'profile'] });
    const issued = await postForm(tokenUrl(), { grant_type: 'client_credentials', scope: 'openid profile' }, { authorization: basic(client.clientId, client.clientSecret!) });
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const issuer = t.server.services.providers.issuer(provider);
    const jwks = createLocalJWKSet((await (await fetch(`${issuer}jwks/`)).json()) as JSONWebKeySet);
    const access = await jwtVerify(String(issued.body.access_token), jwks, { issuer, audience: client.clientId, typ: 'at+jwt', algorithms: [signingAlgorithm] });
    assert.equal(access.protectedHeader.alg, signingAlgorithm);
    assert.equal(access.payload.client_id, client.clientId);
    assert.equal(access.payload.scope, 'openid profile');
    assert.equal(typeof access.payload.preferred_username, 'string');
    const id = await jwtVerify(String(issued.body.id_token), jwks, { issuer, audience: client.clientId, typ: 'JWT', algorithms: [signingAlgorithm] });
    assert.equal(id.payload.sub, access.payload.sub);
    assert.equal(id.payload.azp, client.clientId);
  }
});
