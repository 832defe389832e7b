/**
 * GET/POST /application/o/userinfo/ (OpenID Connect Core §5.3, RFC 6750): the claims of the
 * granted scopes, Bearer in the header or the form, and RFC 6750 errors with WWW-Authenticate.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { seedClient, seedProvider, seedUser, type SeededProvider, type SeededUser } from '../helpers/seed.js';
import { decide, jwtPayload, poll, startDevice } from '../helpers/device.js';

let server: TestServer;
let provider: SeededProvider;
let clientId: string;
let carol: SeededUser;

before(async () => {
  server = await startTestServer();
  provider = await seedProvider(server);
  clientId = (await seedClient(server, { providerId: provider.id, allowedScopes: ['openid', 'profile', 'email'] })).clientId;
  carol = await seedUser(server, { name: 'Carol Danvers', email: 'carol@example.com', attributes: { email_verified: true } });
});
after(async () => {
  await server.stop();
});

async function accessToken(scope: string, user: SeededUser = carol): Promise<string> {
  const codes = await startDevice(server, clientId, { scope });
  assert.equal((await decide(server, user.username, user.appPassword, codes.user_code, 'allow')).status, 200);
  const answer = await poll(server, clientId, codes.device_code);
  assert.equal(answer.status, 200);
  return String(answer.body.access_token);
}

async function userinfo(init: { method?: string; headers?: Record<string, string>; body?: string } = {}, path = '/application/o/userinfo/') {
  const response = await fetch(`${server.url}${path}`, { method: init.method ?? 'GET', headers: init.headers, body: init.body });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
}

describe('userinfo', () => {
  test('GET with a Bearer token answers the claims of the granted scopes', async () => {
    const token = await accessToken('openid profile email');
    const { status, headers, body } = await userinfo({ headers: { authorization: `Bearer ${token}` } });
    assert.equal(status, 200);
    assert.equal(headers.get('cache-control'), 'no-store');
    assert.deepEqual(body, {
      sub: carol.user.id, name: 'Carol Danvers', preferred_username: carol.username, email: 'carol@example.com', email_verified: true,
    });
  });

  test('only the granted scopes: profile without email', async () => {
    const token = await accessToken('openid profile');
    const { body } = await userinfo({ headers: { authorization: `Bearer ${token}` } });
    assert.deepEqual(body, { sub: carol.user.id, name: 'Carol Danvers', preferred_username: carol.username });
  });

  test('openid alone answers just sub', async () => {
    const token = await accessToken('openid');
    assert.deepEqual((await userinfo({ headers: { authorization: `Bearer ${token}` } })).body, { sub: carol.user.id });
  });

  test('POST with a Bearer header answers the same', async () => {
    const token = await accessToken('openid email');
    const { status, body } = await userinfo({ method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.equal(status, 200);
    assert.equal(body.email, 'carol@example.com');
  });

  test('POST with access_token in the form body (RFC 6750 §2.2)', async () => {
    const token = await accessToken('openid email');
    const { status, body } = await userinfo({
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `access_token=${token}`,
    });
    assert.equal(status, 200);
    assert.equal(body.sub, carol.user.id);
  });

  test('the path answers without its trailing slash', async () => {
    const token = await accessToken('openid');
    assert.equal((await userinfo({ headers: { authorization: `Bearer ${token}` } }, '/application/o/userinfo')).status, 200);
  });

  test('the claims are read from the user as it is now', async () => {
    const dave = await seedUser(server, { name: 'Dave' });
    const token = await accessToken('profile', dave);
    await server.server.services.users.update(dave.user.id, { name: 'David' });
    assert.equal((await userinfo({ headers: { authorization: `Bearer ${token}` } })).body.name, 'David');
  });

  test('no token: 401 with WWW-Authenticate: Bearer realm (and no error code, RFC 6750 §3.1)', async () => {
    const { status, headers, body } = await userinfo();
    assert.equal(status, 401);
    assert.equal(headers.get('www-authenticate'), 'Bearer realm="tessera"');
    assert.equal(body.error, 'invalid_token');
    assert.equal(headers.get('cache-control'), 'no-store');
  });

  test('a bad token: 401 invalid_token, named in WWW-Authenticate', async () => {
    const { status, headers, body } = await userinfo({ headers: { authorization: 'Bearer abc.def.ghi' } });
    assert.equal(status, 401);
    assert.equal(body.error, 'invalid_token');
    assert.match(headers.get('www-authenticate') ?? '', /^Bearer realm="tessera", error="invalid_token"/);
  });

  test('a revoked token is invalid_token', async () => {
    const token = await accessToken('openid');
    const claims = jwtPayload(token) as { jti: string; exp: number };
    await server.server.services.tokens.revokeAccessToken(claims);
    assert.equal((await userinfo({ headers: { authorization: `Bearer ${token}` } })).status, 401);
  });

  test('a deactivated user: invalid_token', async () => {
    const erin = await seedUser(server);
    const token = await accessToken('openid', erin);
    await server.server.services.users.update(erin.user.id, { isActive: false });
    const { status, body } = await userinfo({ headers: { authorization: `Bearer ${token}` } });
    assert.equal(status, 401);
    assert.equal(body.error, 'invalid_token');
  });

  test('a token in the header and the body together is invalid_request (400)', async () => {
    const token = await accessToken('openid');
    const { status, headers, body } = await userinfo({
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' }, body: `access_token=${token}`,
    });
    assert.equal(status, 400);
    assert.equal(body.error, 'invalid_request');
    assert.match(headers.get('www-authenticate') ?? '', /error="invalid_request"/);
  });

  test('a Basic header is not a Bearer token: 401', async () => {
    const { status, headers } = await userinfo({ headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    assert.equal(status, 401);
    assert.equal(headers.get('www-authenticate'), 'Bearer realm="tessera"');
  });

  test("another provider's token works too (userinfo is global)", async () => {
    const other = await seedProvider(server);
    const otherClient = (await seedClient(server, { providerId: other.id })).clientId;
    const codes = await startDevice(server, otherClient, { scope: 'profile' });
    await decide(server, carol.username, carol.appPassword, codes.user_code, 'allow');
    const token = String((await poll(server, otherClient, codes.device_code)).body.access_token);
    assert.equal((await userinfo({ headers: { authorization: `Bearer ${token}` } })).body.preferred_username, carol.username);
    assert.notEqual(other.issuer, provider.issuer);
  });
});
