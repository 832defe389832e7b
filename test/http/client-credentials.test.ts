/**
 * grant_type=client_credentials (and password): every identity rule of the contract, in order,
 * and every way each one fails, over HTTP against a real server.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, createHmac } from 'node:crypto';
import {
  SignJWT, createLocalJWKSet, decodeJwt, jwtVerify, type JWK, type JWTPayload,
} from 'jose';
import { basic, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { JWT_BEARER, signingKey, type SigningKey } from '../helpers/federation.js';
import { seedMachineClient, seedMachineProvider, seedUserWithAppPassword, unique } from '../helpers/seed.js';
import type { FederatedSource, Provider, User } from '../../src/domain/model.js';
import { clientIdentityKey, generatedUsername, sourceIdentityKey } from '../../src/domain/federation/service-accounts.js';


let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.stop();
});

const tokenUrl = () => `${t.url}/application/o/token/`;
/** The token endpoint as the server names it: an audience every source without its own accepts (RFC 7523 §3). */
const tokenEndpointAudience = () => `${t.server.services.config.publicUrl}/application/o/token/`;
/** Generated accounts are found by identity, as the server finds them. */
const sourceAccount = (source: FederatedSource, sub: string): Promise<User | null> => t.server.services.generatedAccounts.find(sourceIdentityKey(source.id, sub));
const clientAccount = (provider: Provider, clientId: string): Promise<User | null> => t.server.services.generatedAccounts.find(clientIdentityKey(provider.id, clientId));
const token = (form: Record<string, string>, headers: Record<string, string> = {}) => postForm(tokenUrl(), form, headers);

async function eventsOf(requestId: string) {
  await t.server.services.events.flush();
  return t.server.services.store.events.find({ requestId });
}

async function onlyEvent(response: { headers: Headers }, action: 'LOGIN' | 'LOGIN_FAILED') {
  const requestId = response.headers.get('x-request-id')!;
  const events = await eventsOf(requestId);
  assert.equal(events.length, 1, `one event for request ${requestId}`);
  assert.equal(events[0]!.action, action);
  return events[0]!;
}

async function verifyAccessToken(provider: Provider, accessToken: string): Promise<JWTPayload> {
  const jwks = await (await fetch(`${t.url}/application/o/${provider.slug}/jwks/`)).json();
  const { payload, protectedHeader } = await jwtVerify(accessToken, createLocalJWKSet(jwks as { keys: JWK[] }), {
    issuer: t.server.services.providers.issuer(provider),
  });
  assert.equal(protectedHeader.typ, 'at+jwt');
  return payload;
}

async function assertFailure(
  response: Awaited<ReturnType<typeof token>>, error: string, reason: RegExp, status = 400,
) {
  assert.equal(response.status, status, JSON.stringify(response.body));
  assert.equal(response.body.error, error);
  assert.equal(response.headers.get('cache-control'), 'no-store');
  const event = await onlyEvent(response, 'LOGIN_FAILED');
  assert.match(String(event.context.reason), reason);
  // The precise reason is in the event log; the body carries the request id to find it.
  assert.equal(response.body.request_id, response.headers.get('x-request-id'));
  return event;
}

// ---- keys and sources for the JWT rule ----

// RS256, PS256 and EdDSA are covered by their own test; signingKey() makes ES256 keys.

async function sourceWithKeys(keys: SigningKey[], options: Partial<FederatedSource> = {}): Promise<FederatedSource> {
  const now = new Date();
  const slug = options.slug ?? unique('src');
  const source: FederatedSource = {
    id: crypto.randomUUID(), name: slug, slug, issuer: null, audience: null, jwksUrl: null, oidcDiscoveryUrl: null,
    jwks: { keys: keys.map((k) => k.publicJwk) }, keysFetchedAt: null, createdAt: now, updatedAt: now, ...options,
  };
  return t.server.services.store.federatedSources.insert(source);
}

function assertion(key: SigningKey, claims: JWTPayload, options: { expiresIn?: number | null; kid?: string } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ aud: tokenEndpointAudience(), ...claims }).setProtectedHeader({ alg: key.alg, kid: options.kid ?? key.kid, typ: 'JWT' }).setIssuedAt(now);
  if (options.expiresIn !== null) jwt.setExpirationTime(now + (options.expiresIn ?? 300));
  return jwt.sign(key.privateKey);
}

/** A provider whose client_credentials client trusts one federated source. */
async function federatedSetup(sourceOptions: Partial<FederatedSource> = {}, keys?: SigningKey[]) {
  const key = keys?.[0] ?? (await signingKey());
  const source = await sourceWithKeys(keys ?? [key], sourceOptions);
  const provider = await seedMachineProvider(t);
  await t.server.services.providers.update(provider.id, { federatedSourceIds: [source.id] });
  const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
  return { key, source, provider: (await t.server.services.providers.get(provider.id))!, clientId };
}

// ---- rule 1: username + app password ----

describe('rule 1: username and app password', () => {
  test('an app password of an active user gets a token for that user, with no refresh token', async () => {
    const provider = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    const svc = await seedUserWithAppPassword(t);
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, username: svc.username, password: svc.appPassword, scope: 'profile' });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(response.body.token_type, 'Bearer');
    assert.equal(response.body.scope, 'profile');
    assert.equal(response.body.refresh_token, undefined);
    assert.equal(response.body.id_token, undefined);
    const claims = await verifyAccessToken(provider, String(response.body.access_token));
    assert.equal(claims.sub, svc.user.id);
    assert.equal(claims.client_id, clientId);
    assert.equal(claims.preferred_username, svc.username);
    const event = await onlyEvent(response, 'LOGIN');
    assert.equal(event.context.rule, 'app_password');
    assert.equal(event.clientId, clientId);
    assert.equal(event.username, svc.username);
  });

  test('app password use sets lastUsedAt, written at most once a minute (no write per request)', async () => {
    const provider = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    const svc = await seedUserWithAppPassword(t);
    const form = { grant_type: 'client_credentials', client_id: clientId, username: svc.username, password: svc.appPassword };
    assert.equal((await token(form)).status, 200);
    const read = async () => (await t.server.services.store.appPasswords.findOne({ id: svc.appPasswordId }))?.lastUsedAt ?? null;
    let first: Date | null = null;
    for (let i = 0; i < 50 && !first; i += 1) {
      first = await read();
      if (!first) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(first, 'lastUsedAt is set after a use');
    for (let i = 0; i < 3; i += 1) assert.equal((await token(form)).status, 200);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await read())?.getTime(), first.getTime(), 'later uses within the minute do not write');
  });

  test('a wrong app password is invalid_grant, and the event says it was wrong', async () => {
    const provider = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    const svc = await seedUserWithAppPassword(t);
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, username: svc.username, password: 'not-the-app-password' });
    const event = await assertFailure(response, 'invalid_grant', /wrong app password/);
    assert.equal(event.context.rule, 'app_password');
    assert.equal(event.username, svc.username);
  });

  test('an expired app password is refused like a wrong one', async () => {
    const provider = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    const svc = await seedUserWithAppPassword(t);
    await t.server.services.store.appPasswords.updateOne({ id: svc.appPasswordId }, { $set: { expiresAt: new Date(Date.now() - 1000) } });
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, username: svc.username, password: svc.appPassword });
    await assertFailure(response, 'invalid_grant', /expired/);
  });

  test('a revoked app password is refused', async () => {
    const provider = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    const svc = await seedUserWithAppPassword(t);
    await t.server.services.appPasswords.revoke(svc.appPasswordId);
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, username: svc.username, password: svc.appPassword });
    await assertFailure(response, 'invalid_grant', /wrong app password|revoked/);
  });

  test('an inactive user is refused', async () => {
    const provider = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    const svc = await seedUserWithAppPassword(t);
    await t.server.services.users.update(svc.user.id, { isActive: false });
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, username: svc.username, password: svc.appPassword });
    await assertFailure(response, 'invalid_grant', /inactive/);
  });

  test("another user's app password is refused", async () => {
    const provider = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    const a = await seedUserWithAppPassword(t);
    const b = await seedUserWithAppPassword(t);
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, username: a.username, password: b.appPassword });
    await assertFailure(response, 'invalid_grant', /another user/);
  });

  test('username without password is invalid_request', async () => {
    const provider = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, username: 'someone' });
    await assertFailure(response, 'invalid_request', /username and password/);
  });

  test("the access token's exp is capped at the app password's expiry", async () => {
    const provider = await seedMachineProvider(t, { accessTokenLifetimeSeconds: 3600 });
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    const expiresAt = new Date(Date.now() + 90_000);
    const svc = await seedUserWithAppPassword(t, { expiresAt });
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, username: svc.username, password: svc.appPassword });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const claims = decodeJwt(String(response.body.access_token));
    assert.ok(claims.exp! <= Math.floor(expiresAt.getTime() / 1000), `exp ${claims.exp} must not pass ${expiresAt.toISOString()}`);
    assert.ok(Number(response.body.expires_in) <= 90);
  });

  test('a confidential client with a wrong Basic password is invalid_client even with a good app password', async () => {
    const provider = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, provider);
    const svc = await seedUserWithAppPassword(t);
    const response = await token({ grant_type: 'client_credentials', username: svc.username, password: svc.appPassword }, { authorization: basic(clientId, 'wrong-secret') });
    await assertFailure(response, 'invalid_client', /neither the client secret/, 401);
    assert.equal(response.headers.get('www-authenticate'), 'Basic realm="tessera"');
  });
});

// ---- rule 2: base64(username:app_password) as the client secret ----

describe('rule 2: base64(username:app_password) as the client secret', () => {
  test('in the body as client_secret', async () => {
    const provider = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    const svc = await seedUserWithAppPassword(t);
    const secret = Buffer.from(`${svc.username}:${svc.appPassword}`).toString('base64');
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret, scope: 'openid profile' });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal((await verifyAccessToken(provider, String(response.body.access_token))).sub, svc.user.id);
    assert.equal(typeof response.body.id_token, 'string', 'openid was granted: an id_token comes back');
    assert.equal(decodeJwt(String(response.body.id_token)).sub, svc.user.id);
    assert.equal((await onlyEvent(response, 'LOGIN')).context.rule, 'app_password_in_secret');
  });

  test('in HTTP Basic, url-encoded as RFC 6749 Appendix B says (the = padding becomes %3D)', async () => {
    const provider = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    // A username whose length makes the base64 end in '=' padding: the padding is what broke other servers.
    let username = unique('a');
    while ((username.length + 1 + 43) % 3 === 0) username += 'x';
    const svc = await seedUserWithAppPassword(t, { username });
    const secret = Buffer.from(`${svc.username}:${svc.appPassword}`).toString('base64');
    assert.match(secret, /=$/);
    const response = await token({ grant_type: 'client_credentials' }, { authorization: basic(clientId, secret) });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal((await verifyAccessToken(provider, String(response.body.access_token))).sub, svc.user.id);
  });

  test('in HTTP Basic, not url-encoded (as curl -u sends it)', async () => {
    const provider = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    const svc = await seedUserWithAppPassword(t, { username: unique('b') });
    const secret = Buffer.from(`${svc.username}:${svc.appPassword}`).toString('base64');
    const raw = `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`;
    const response = await token({ grant_type: 'client_credentials' }, { authorization: raw });
    assert.equal(response.status, 200, JSON.stringify(response.body));
  });

  test('a secret made with echo (trailing newline) is invalid_grant with a description saying so', async () => {
    const provider = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    const svc = await seedUserWithAppPassword(t);
    const secret = Buffer.from(`${svc.username}:${svc.appPassword}\n`).toString('base64');
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret });
    assert.equal(response.status, 400);
    assert.equal(response.body.error, 'invalid_grant');
    assert.match(String(response.body.error_description), /newline/);
    assert.match(String(response.body.error_description), /echo -n/);
    const event = await onlyEvent(response, 'LOGIN_FAILED');
    assert.match(String(event.context.reason), /newline/);
  });

  test('a wrong app password inside the secret is invalid_grant', async () => {
    const provider = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    const svc = await seedUserWithAppPassword(t);
    const secret = Buffer.from(`${svc.username}:wrong-app-password`).toString('base64');
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret });
    const event = await assertFailure(response, 'invalid_grant', /wrong app password/);
    assert.equal(event.context.rule, 'app_password_in_secret');
  });
});

// ---- rule 3: the client's own secret ----

describe("rule 3: the client's own secret", () => {
  test('issues for the generated service account of (provider, client_id), created once, named <provider slug>-<client_id>-client_credentials-<hash>', async () => {
    const provider = await seedMachineProvider(t, { signingAlgorithm: 'RS256' });
    const { clientId, clientSecret } = await seedMachineClient(t, provider);
    const first = await token({ grant_type: 'client_credentials', scope: 'profile' }, { authorization: basic(clientId, clientSecret!) });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const account = await clientAccount(provider, clientId);
    assert.ok(account, 'the account of (provider, client) exists');
    assert.match(account.username, new RegExp(`^${provider.slug}-${clientId}-client_credentials-[0-9a-f]{16}$`));
    assert.equal(account.type, 'GENERATED_SERVICE_ACCOUNT');
    assert.deepEqual(account.attributes, { providerId: provider.id, clientId });
    assert.equal((await verifyAccessToken(provider, String(first.body.access_token))).sub, account.id);
    const second = await token({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret! });
    assert.equal(second.status, 200);
    assert.equal(decodeJwt(String(second.body.access_token)).sub, account.id);
    assert.equal(await t.server.services.store.users.count({ username: account.username }), 1);
    assert.equal((await onlyEvent(first, 'LOGIN')).context.rule, 'client_secret');
  });

  test('a wrong secret in Basic is invalid_client (401, WWW-Authenticate)', async () => {
    const provider = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, provider);
    const response = await token({ grant_type: 'client_credentials' }, { authorization: basic(clientId, 'not-the-secret') });
    await assertFailure(response, 'invalid_client', /neither the client secret/, 401);
    assert.equal(response.headers.get('www-authenticate'), 'Basic realm="tessera"');
  });

  test('a wrong secret in the body is invalid_grant', async () => {
    const provider = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, provider);
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_secret: 'not-the-secret' });
    await assertFailure(response, 'invalid_grant', /neither the client's secret/);
  });

  test('no credential at all is invalid_grant', async () => {
    const provider = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    const response = await token({ grant_type: 'client_credentials', client_id: clientId });
    await assertFailure(response, 'invalid_grant', /no rule applies/);
  });
});

// ---- rule 4: JWTs from federated sources ----

describe('rule 4: a JWT from a federated source', () => {
  test('as client_assertion: a generated account per (source, sub) with iss and sub, expiring with the JWT', async () => {
    const { key, source, provider, clientId } = await federatedSetup({ issuer: 'https://issuer.example' });
    const jwt = await assertion(key, { iss: 'https://issuer.example', sub: 'worker-1' }, { expiresIn: 120 });
    const exp = decodeJwt(jwt).exp!;
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: jwt });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const account = await sourceAccount(source, 'worker-1');
    assert.ok(account);
    assert.equal(account.type, 'GENERATED_SERVICE_ACCOUNT');
    assert.equal(account.attributes.iss, 'https://issuer.example');
    assert.equal(account.attributes.sub, 'worker-1');
    assert.equal(account.expiresAt?.getTime(), exp * 1000);
    const claims = await verifyAccessToken(provider, String(response.body.access_token));
    assert.equal(claims.sub, account.id);
    assert.ok(claims.exp! <= exp, 'the token does not outlive the JWT it came from');
    const event = await onlyEvent(response, 'LOGIN');
    assert.equal(event.context.rule, 'federated_source');
    assert.equal(event.context.source, source.slug);
  });

  test('as the client secret, in the body and in Basic', async () => {
    const { key, provider, clientId } = await federatedSetup();
    const jwt = await assertion(key, { sub: 'worker-2' });
    const body = await token({ grant_type: 'client_credentials', client_id: clientId, client_secret: jwt });
    assert.equal(body.status, 200, JSON.stringify(body.body));
    const viaBasic = await token({ grant_type: 'client_credentials' }, { authorization: basic(clientId, jwt) });
    assert.equal(viaBasic.status, 200, JSON.stringify(viaBasic.body));
    assert.equal(decodeJwt(String(body.body.access_token)).sub, decodeJwt(String(viaBasic.body.access_token)).sub);
    await verifyAccessToken(provider, String(body.body.access_token));
  });

  test('a sub outside the username charset gets its own account, with a name within the charset', async () => {
    const { key, source, clientId } = await federatedSetup();
    const sub = 'system:serviceaccount:ci:builder';
    const a = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, { sub }) });
    const b = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, { sub: 'system_serviceaccount_ci_builder' }) });
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(b.status, 200, JSON.stringify(b.body));
    assert.notEqual(decodeJwt(String(a.body.access_token)).sub, decodeJwt(String(b.body.access_token)).sub);
    const accounts = await t.server.services.store.users.find({ type: 'GENERATED_SERVICE_ACCOUNT' });
    const mine = accounts.filter((u) => u.username.startsWith(`${source.slug}-`));
    assert.equal(mine.length, 2);
    assert.ok(mine.every((u) => /^[A-Za-z0-9@.+_-]+$/.test(u.username)));
  });

  test('concurrent first requests for one sub create exactly one account', async () => {
    const { key, source, clientId } = await federatedSetup();
    const jwt = await assertion(key, { sub: 'racer' });
    const responses = await Promise.all(Array.from({ length: 8 }, () =>
      token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: jwt })));
    for (const r of responses) assert.equal(r.status, 200, JSON.stringify(r.body));
    const account = await sourceAccount(source, 'racer');
    assert.equal(await t.server.services.store.users.count({ identityKey: account!.identityKey! }), 1);
    assert.equal(await t.server.services.store.users.count({ username: account!.username }), 1);
    assert.equal(new Set(responses.map((r) => decodeJwt(String(r.body.access_token)).sub)).size, 1);
  });

  test('an expired generated account is re-created (or renewed) by the next valid JWT', async () => {
    const { key, source, clientId } = await federatedSetup();
    const first = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, { sub: 'phoenix' }) });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const before = (await sourceAccount(source, 'phoenix'))!;
    await t.server.services.store.users.updateOne({ id: before.id }, { $set: { expiresAt: new Date(Date.now() - 1000) } });
    const jwt = await assertion(key, { sub: 'phoenix' }, { expiresIn: 600 });
    const second = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: jwt });
    assert.equal(second.status, 200, JSON.stringify(second.body));
    const account = await t.server.services.store.users.findOne({ identityKey: before.identityKey! });
    assert.equal(account?.expiresAt?.getTime(), decodeJwt(jwt).exp! * 1000);
    assert.equal(decodeJwt(String(second.body.access_token)).sub, account?.id);
    assert.equal(account?.id, before.id, 'the account id (the sub) is the same after expiry');
    // Swept away after expiry and made again: the same id, derived from (source, sub).
    await t.server.services.store.users.deleteOne({ id: before.id });
    const third = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, { sub: 'phoenix' }) });
    assert.equal(third.status, 200, JSON.stringify(third.body));
    assert.equal(decodeJwt(String(third.body.access_token)).sub, before.id);
  });

  test('an expired JWT is refused', async () => {
    const { key, clientId } = await federatedSetup();
    const now = Math.floor(Date.now() / 1000);
    const jwt = await new SignJWT({ sub: 'x', aud: tokenEndpointAudience() }).setProtectedHeader({ alg: key.alg, kid: key.kid }).setIssuedAt(now - 600).setExpirationTime(now - 5).sign(key.privateKey);
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: jwt });
    const event = await assertFailure(response, 'invalid_grant', /expired/);
    assert.equal(event.context.assertionRejection, 'expired');
  });

  test('a JWT without exp is refused', async () => {
    const { key, clientId } = await federatedSetup();
    const jwt = await assertion(key, { sub: 'x' }, { expiresIn: null });
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: jwt });
    await assertFailure(response, 'invalid_grant', /no exp/);
  });

  test('a not-yet-valid JWT (nbf in the future) is refused', async () => {
    const { key, clientId } = await federatedSetup();
    const jwt = await assertion(key, { sub: 'x', nbf: Math.floor(Date.now() / 1000) + 600 });
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: jwt });
    await assertFailure(response, 'invalid_grant', /not valid before/);
  });

  test('a JWT issued in the future (iat beyond the skew) is refused', async () => {
    const { key, clientId } = await federatedSetup();
    const now = Math.floor(Date.now() / 1000);
    const jwt = await new SignJWT({ sub: 'x', aud: tokenEndpointAudience() }).setProtectedHeader({ alg: key.alg, kid: key.kid }).setIssuedAt(now + 600).setExpirationTime(now + 900).sign(key.privateKey);
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: jwt });
    await assertFailure(response, 'invalid_grant', /iat .* in the future/);
  });

  test('a JWT signed with another key under a known kid is refused (bad signature)', async () => {
    const { key, clientId } = await federatedSetup();
    const impostor = await signingKey();
    const jwt = await assertion(impostor, { sub: 'x' }, { kid: key.kid });
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: jwt });
    await assertFailure(response, 'invalid_grant', /signature does not verify/);
  });

  test('a JWT with an unknown kid is refused, naming the kid', async () => {
    const { clientId } = await federatedSetup();
    const stranger = await signingKey();
    const jwt = await assertion(stranger, { sub: 'x' });
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: jwt });
    const event = await assertFailure(response, 'invalid_grant', new RegExp(`kid "${stranger.kid}"`));
    assert.equal(event.context.assertionRejection, 'unknown_kid');
  });

  test('a JWT whose iss is not the source issuer is refused (iss mismatch)', async () => {
    const { key, clientId } = await federatedSetup({ issuer: 'https://right.example' });
    const jwt = await assertion(key, { sub: 'x', iss: 'https://wrong.example' });
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: jwt });
    const event = await assertFailure(response, 'invalid_grant', /iss/);
    assert.equal(event.context.assertionRejection, 'iss_mismatch');
  });

  test('a JWT whose aud does not contain the source audience is refused (aud mismatch)', async () => {
    const { key, clientId } = await federatedSetup({ audience: 'tessera' });
    const jwt = await assertion(key, { sub: 'x', aud: 'someone-else' });
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: jwt });
    const event = await assertFailure(response, 'invalid_grant', /aud/);
    assert.equal(event.context.assertionRejection, 'aud_mismatch');
    const good = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, { sub: 'x', aud: ['other', 'tessera'] }) });
    assert.equal(good.status, 200, JSON.stringify(good.body));
  });

  test('an unsigned JWT (alg none) is refused', async () => {
    const { clientId } = await federatedSetup();
    const encode = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const jwt = `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ sub: 'x', iat: now, exp: now + 300 })}.`;
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: jwt });
    const event = await assertFailure(response, 'invalid_grant', /none/);
    assert.equal(event.context.assertionRejection, 'alg_not_allowed');
  });

  test('an HS256 JWT signed with the public key as the HMAC secret is refused', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    void privateKey;
    const kid = unique('kid');
    const publicJwk = { ...(publicKey.export({ format: 'jwk' }) as JWK), kid, alg: 'RS256', use: 'sig' };
    const source = await sourceWithKeys([], { jwks: { keys: [publicJwk] } });
    const provider = await seedMachineProvider(t);
    await t.server.services.providers.update(provider.id, { federatedSourceIds: [source.id] });
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    const pem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
    const encode = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const input = `${encode({ alg: 'HS256', kid, typ: 'JWT' })}.${encode({ sub: 'x', iat: now, exp: now + 300 })}`;
    const jwt = `${input}.${createHmac('sha256', pem).update(input).digest('base64url')}`;
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: jwt });
    const event = await assertFailure(response, 'invalid_grant', /HMAC/);
    assert.equal(event.context.assertionRejection, 'alg_not_allowed');
  });

  test('RS256, PS256 and EdDSA keys verify too', async () => {
    for (const alg of ['RS256', 'PS256', 'EdDSA']) {
      const key = await signingKey(alg);
      const { clientId } = await federatedSetup({}, [key]);
      const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, { sub: `k-${alg}` }) });
      assert.equal(response.status, 200, `${alg}: ${JSON.stringify(response.body)}`);
    }
  });

  test('a client_assertion of another type is invalid_request', async () => {
    const { key, clientId } = await federatedSetup();
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: 'urn:example:other', client_assertion: await assertion(key, { sub: 'x' }) });
    await assertFailure(response, 'invalid_request', /client_assertion_type/);
  });

  test('a JWT is refused by a provider without federated sources or providers', async () => {
    const key = await signingKey();
    const provider = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, { sub: 'x' }) });
    await assertFailure(response, 'invalid_grant', /trusts no federated/);
  });

  test('a person holding the display name keeps it and their account; the JWT subject gets its own account under the long name', async () => {
    const { key, source, clientId } = await federatedSetup();
    const name = generatedUsername(sourceIdentityKey(source.id, 'alice'), { slug: source.slug, name: 'alice' });
    const person = await t.server.services.users.create({ username: name, isAdmin: true });
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, { sub: 'alice' }) });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const account = (await sourceAccount(source, 'alice'))!;
    assert.notEqual(account.id, person.id);
    assert.equal(decodeJwt(String(response.body.access_token)).sub, account.id);
    assert.equal(account.isAdmin, false);
    assert.match(account.username, new RegExp(`^${source.slug}-[0-9a-f]{64}$`));
    const after = (await t.server.services.store.users.findOne({ id: person.id }))!;
    assert.deepEqual({ ...after }, { ...person }, 'the person is unchanged');
  });
});

// ---- rule 4: access tokens of federated providers ----

describe('rule 4: an access token of a federated provider', () => {
  async function providerPair() {
    const upstream = await seedMachineProvider(t);
    const upstreamClient = await seedMachineClient(t, upstream);
    const downstream = await seedMachineProvider(t, { federatedProviderIds: [upstream.id] });
    const downstreamClient = await seedMachineClient(t, downstream, { type: 'PUBLIC' });
    const svc = await seedUserWithAppPassword(t);
    const input = await token({ grant_type: 'client_credentials', client_id: upstreamClient.clientId, username: svc.username, password: svc.appPassword });
    assert.equal(input.status, 200);
    return { upstream, upstreamClient, downstream, downstreamClient, svc, inputToken: String(input.body.access_token) };
  }

  test('issues for the same user as the input token', async () => {
    const { downstream, downstreamClient, svc, inputToken } = await providerPair();
    const response = await token({ grant_type: 'client_credentials', client_id: downstreamClient.clientId, client_assertion_type: JWT_BEARER, client_assertion: inputToken });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const claims = await verifyAccessToken(downstream, String(response.body.access_token));
    assert.equal(claims.sub, svc.user.id);
    assert.ok(claims.exp! <= decodeJwt(inputToken).exp!);
    const event = await onlyEvent(response, 'LOGIN');
    assert.equal(event.context.rule, 'federated_provider');
    assert.equal(event.username, svc.username);
  });

  test('is refused after the input token was revoked', async () => {
    const { upstreamClient, downstreamClient, inputToken } = await providerPair();
    const revoke = await postForm(`${t.url}/application/o/revoke/`, { token: inputToken }, { authorization: basic(upstreamClient.clientId, upstreamClient.clientSecret!) });
    assert.equal(revoke.status, 200);
    const response = await token({ grant_type: 'client_credentials', client_id: downstreamClient.clientId, client_assertion_type: JWT_BEARER, client_assertion: inputToken });
    const event = await assertFailure(response, 'invalid_grant', /revoked/);
    assert.equal(event.context.rule, 'federated_provider');
  });

  test('is refused when the issuing provider is not listed', async () => {
    const { upstreamClient, inputToken } = await providerPair();
    void upstreamClient;
    const other = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, other, { type: 'PUBLIC' });
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: inputToken });
    await assertFailure(response, 'invalid_grant', /trusts no federated|not a federated provider/);
  });
});

// ---- scopes, grants, password ----

describe('scopes and grants', () => {
  test("a scope outside the client's allowed scopes is invalid_scope", async () => {
    const provider = await seedMachineProvider(t);
    const { clientId, clientSecret } = await seedMachineClient(t, provider, { allowedScopes: ['api:read'] });
    const ok = await token({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret!, scope: 'api:read' });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.scope, 'api:read');
    const refused = await token({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret!, scope: 'api:read api:write' });
    await assertFailure(refused, 'invalid_scope', /api:write/);
  });

  test('a client without the CLIENT_CREDENTIALS grant is unauthorized_client', async () => {
    const provider = await seedMachineProvider(t);
    const { clientId, clientSecret } = await seedMachineClient(t, provider, { grantTypes: ['DEVICE_CODE'] });
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret! });
    assert.equal(response.status, 400);
    assert.equal(response.body.error, 'unauthorized_client');
  });

  test('grant_type=password goes through the same rules (username + app password)', async () => {
    const provider = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC', grantTypes: ['PASSWORD'] });
    const svc = await seedUserWithAppPassword(t);
    const response = await token({ grant_type: 'password', client_id: clientId, username: svc.username, password: svc.appPassword, scope: 'openid' });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(decodeJwt(String(response.body.access_token)).sub, svc.user.id);
    assert.equal(typeof response.body.id_token, 'string');
    assert.equal(response.body.refresh_token, undefined);
    const event = await onlyEvent(response, 'LOGIN');
    assert.equal(event.context.grantType, 'password');
    const wrong = await token({ grant_type: 'password', client_id: clientId, username: svc.username, password: 'nope' });
    await assertFailure(wrong, 'invalid_grant', /wrong app password/);
  });

  test('grant_type=password needs the PASSWORD grant', async () => {
    const provider = await seedMachineProvider(t);
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC', grantTypes: ['CLIENT_CREDENTIALS'] });
    const response = await token({ grant_type: 'password', client_id: clientId, username: 'x', password: 'y' });
    assert.equal(response.body.error, 'unauthorized_client');
  });
});

// ---- policies and mappings on the client_credentials path ----

describe('policies and mappings', () => {
  test("a policy on the JWT's claims lets in only the tokens it names", async () => {
    const { key, clientId } = await federatedSetup();
    const client = (await t.server.services.clients.getByClientId(clientId))!;
    const policy = await t.server.services.policies.createPolicy({
      name: unique('only-acme-deploy'), expression: 'request.context.oauth_jwt.repository == "acme/deploy"',
    });
    await t.server.services.policies.bind({ policyId: policy.id, targetType: 'CLIENT', targetId: client.id });
    const allowed = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, { sub: 'repo:acme/deploy', repository: 'acme/deploy' }) });
    assert.equal(allowed.status, 200, JSON.stringify(allowed.body));
    const denied = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, { sub: 'repo:evil/fork', repository: 'evil/fork' }) });
    const event = (await eventsOf(denied.headers.get('x-request-id')!)).find((e) => e.action === 'LOGIN_FAILED');
    assert.equal(denied.body.error, 'invalid_grant');
    assert.match(String(event?.context.reason), /policy/);
  });

  test("a source property mapping adds attributes to the generated account, never replacing iss and sub", async () => {
    const { key, source, clientId } = await federatedSetup({ issuer: 'https://k8s.example' });
    await t.server.services.policies.createSourcePropertyMapping({
      federatedSourceId: source.id, name: 'namespace', expression: '{"kubernetes_namespace": claims["kubernetes.io"]["namespace"], "sub": "overridden"}',
    });
    const response = await token({
      grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER,
      client_assertion: await assertion(key, { iss: 'https://k8s.example', sub: 'pod-sa', 'kubernetes.io': { namespace: 'ci' } }),
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const account = await sourceAccount(source, 'pod-sa');
    assert.equal(account?.attributes.kubernetes_namespace, 'ci');
    assert.equal(account?.attributes.sub, 'pod-sa');
  });

  test('a scope mapping adds claims to the access token when its scope is granted', async () => {
    const provider = await seedMachineProvider(t);
    const { clientId, clientSecret } = await seedMachineClient(t, provider, { allowedScopes: ['api'] });
    await t.server.services.policies.createScopeMapping({ providerId: provider.id, scope: 'api', name: 'tier', expression: '{"tier": "machine"}' });
    const response = await token({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret!, scope: 'api' });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(decodeJwt(String(response.body.access_token)).tier, 'machine');
  });
});
