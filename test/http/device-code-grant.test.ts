/**
 * grant_type=urn:ietf:params:oauth:grant-type:device_code (RFC 8628 §3.4–3.5, contract "Token
 * endpoint: device_code"): each answer in the contract's order, the pitfalls other servers
 * shipped, PKCE, the tokens issued, success exactly once under concurrent polls, and events.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { basic, startTestServer, type TestServer } from '../helpers/server.js';
import { seedClient, seedProvider, seedUser, type SeededProvider, type SeededUser } from '../helpers/seed.js';
import { decide, deviceAuthorization, jwtHeader, jwtPayload, poll, sleep, startDevice } from '../helpers/device.js';
import { withTempDir } from '../helpers/temp-dir.js';

let server: TestServer;
let provider: SeededProvider;
let fast: SeededProvider;
let clientId: string;
let fastClientId: string;
let alice: SeededUser;

before(async () => {
  server = await startTestServer();
  provider = await seedProvider(server);
  fast = await seedProvider(server, { deviceFlow: { pollIntervalSeconds: 1, codeLifetimeSeconds: 2 } });
  clientId = (await seedClient(server, { providerId: provider.id, allowedScopes: ['openid', 'profile', 'email'] })).clientId;
  fastClientId = (await seedClient(server, { providerId: fast.id })).clientId;
  alice = await seedUser(server, { name: 'Alice Liddell', email: 'alice@example.com', attributes: { email_verified: true } });
});
after(async () => {
  await server.stop();
});

const sha256 = (v: string) => createHash('sha256').update(v).digest('hex');
const s256 = (v: string) => createHash('sha256').update(v).digest('base64url');

async function approved(client = clientId, form: Record<string, string> = {}) {
  const codes = await startDevice(server, client, form);
  const decision = await decide(server, alice.username, alice.appPassword, codes.user_code, 'allow');
  assert.equal(decision.status, 200);
  return codes;
}

describe('polling answers, in the contract order', () => {
  test('the first poll is never slow_down: it is authorization_pending', async () => {
    const codes = await startDevice(server, clientId);
    const { status, headers, body } = await poll(server, clientId, codes.device_code);
    assert.equal(status, 400);
    assert.equal(body.error, 'authorization_pending');
    assert.equal(headers.get('cache-control'), 'no-store');
  });

  test('a poll sooner than the interval is slow_down, and adds 5 s to that code interval', async () => {
    const codes = await startDevice(server, clientId);
    assert.equal((await poll(server, clientId, codes.device_code)).body.error, 'authorization_pending');
    const second = await poll(server, clientId, codes.device_code);
    assert.equal(second.status, 400);
    assert.equal(second.body.error, 'slow_down');
    const stored = await server.server.services.store.deviceAuthorizations.findOne({ deviceCodeHash: sha256(codes.device_code) });
    assert.equal(stored?.intervalSeconds, 10);
  });

  test('a slow_down poll does not move the poll clock (it only adds 5 s to it)', async () => {
    const codes = await startDevice(server, fastClientId);
    const store = server.server.services.store.deviceAuthorizations;
    assert.equal((await poll(server, fastClientId, codes.device_code)).body.error, 'authorization_pending');
    const afterFirst = await store.findOne({ deviceCodeHash: sha256(codes.device_code) });
    await sleep(100);
    assert.equal((await poll(server, fastClientId, codes.device_code)).body.error, 'slow_down');
    const afterSlowDown = await store.findOne({ deviceCodeHash: sha256(codes.device_code) });
    // Measured from the last accepted poll: exactly +5 s, not "slow_down time + new interval".
    assert.equal(afterSlowDown!.nextPollAt! - afterFirst!.nextPollAt!, 5000);
    assert.equal(afterSlowDown!.intervalSeconds, 6);
  });

  test('slow_down counts for every later poll: a poll after the old interval is still too early', async () => {
    const codes = await startDevice(server, fastClientId);
    await poll(server, fastClientId, codes.device_code);
    assert.equal((await poll(server, fastClientId, codes.device_code)).body.error, 'slow_down');
    await sleep(1100); // the provider interval (1 s) has passed, the code's (6 s) has not
    assert.equal((await poll(server, fastClientId, codes.device_code)).body.error, 'slow_down');
  });

  test('expiry is checked before pending: an expired code is expired_token, never authorization_pending', async () => {
    const codes = await startDevice(server, fastClientId);
    await sleep(2100);
    const { status, headers, body } = await poll(server, fastClientId, codes.device_code);
    assert.equal(status, 400);
    assert.equal(body.error, 'expired_token');
    assert.equal(headers.get('cache-control'), 'no-store');
  });

  test('a denied code is access_denied', async () => {
    const codes = await startDevice(server, clientId);
    assert.equal((await decide(server, alice.username, alice.appPassword, codes.user_code, 'deny')).body.status, 'denied');
    const { status, body } = await poll(server, clientId, codes.device_code);
    assert.equal(status, 400);
    assert.equal(body.error, 'access_denied');
  });

  test('an unknown device code is invalid_grant', async () => {
    const { status, body } = await poll(server, clientId, 'not-a-device-code');
    assert.equal(status, 400);
    assert.equal(body.error, 'invalid_grant');
  });

  test('a missing device_code is invalid_request', async () => {
    const { status, body } = await poll(server, clientId, '');
    assert.equal(status, 400);
    assert.equal(body.error, 'invalid_request');
  });

  test("another client's device code is invalid_grant", async () => {
    const codes = await approved();
    const other = (await seedClient(server, { providerId: provider.id })).clientId;
    const { body } = await poll(server, other, codes.device_code);
    assert.equal(body.error, 'invalid_grant');
    // The rightful client still gets its token.
    assert.equal((await poll(server, clientId, codes.device_code)).status, 200);
  });

  test('a code already exchanged is invalid_grant', async () => {
    const codes = await approved();
    assert.equal((await poll(server, clientId, codes.device_code)).status, 200);
    const again = await poll(server, clientId, codes.device_code);
    assert.equal(again.status, 400);
    assert.equal(again.body.error, 'invalid_grant');
  });

  test('a client without the DEVICE_CODE grant is unauthorized_client', async () => {
    const { clientId: m2m, clientSecret } = await seedClient(server, { providerId: provider.id, type: 'CONFIDENTIAL', grantTypes: ['CLIENT_CREDENTIALS'] });
    const { status, body } = await poll(server, m2m, 'whatever', { client_secret: clientSecret! });
    assert.equal(status, 400);
    assert.equal(body.error, 'unauthorized_client');
  });

  test('a confidential client must prove its secret when polling', async () => {
    const { clientId: tv, clientSecret } = await seedClient(server, { providerId: provider.id, type: 'CONFIDENTIAL' });
    const codes = await startDevice(server, tv, { client_secret: clientSecret! });
    const without = await poll(server, tv, codes.device_code);
    assert.equal(without.status, 401);
    assert.equal(without.body.error, 'invalid_client');
    const withBasic = await poll(server, tv, codes.device_code, {}, { authorization: basic(tv, clientSecret!) });
    // client_id in the body equals the Basic one: allowed; the code is still pending.
    assert.equal(withBasic.body.error, 'authorization_pending');
  });
});

describe('the tokens', () => {
  test('success carries a Bearer RFC 9068 access token signed with the provider key', async () => {
    const codes = await approved(clientId, { scope: 'openid profile email' });
    const { status, headers, body } = await poll(server, clientId, codes.device_code);
    assert.equal(status, 200);
    assert.equal(headers.get('cache-control'), 'no-store');
    assert.equal(body.token_type, 'Bearer');
    assert.equal(body.scope, 'openid profile email');
    assert.equal(typeof body.expires_in, 'number');
    const token = String(body.access_token);
    assert.equal(jwtHeader(token).typ, 'at+jwt');
    assert.ok(jwtHeader(token).kid);
    const jwks = createRemoteJWKSet(new URL(`${server.url}/application/o/${provider.slug}/jwks/`));
    const { payload } = await jwtVerify(token, jwks, { issuer: provider.issuer, audience: clientId, typ: 'at+jwt' });
    assert.equal(payload.sub, alice.user.id);
    assert.equal(payload.client_id, clientId);
    assert.equal(payload.scope, 'openid profile email');
    assert.ok(payload.jti && payload.iat && payload.exp);
    assert.equal(payload.preferred_username, alice.username);
    assert.equal(payload.name, 'Alice Liddell');
    assert.equal(payload.email, 'alice@example.com');
    assert.equal(payload.email_verified, true);
  });

  test('an id_token comes when openid was granted, and not otherwise', async () => {
    const withOpenid = await approved(clientId, { scope: 'openid' });
    const a = await poll(server, clientId, withOpenid.device_code);
    const idToken = jwtPayload(String(a.body.id_token));
    assert.equal(idToken.sub, alice.user.id);
    assert.equal(idToken.aud, clientId);
    assert.equal(idToken.iss, provider.issuer);
    const withoutOpenid = await approved(clientId, { scope: 'profile' });
    const b = await poll(server, clientId, withoutOpenid.device_code);
    assert.equal(b.status, 200);
    assert.equal(b.body.id_token, undefined);
  });

  test('no refresh_token unless the client has the REFRESH_TOKEN grant', async () => {
    const codes = await approved();
    const { body } = await poll(server, clientId, codes.device_code);
    assert.equal(body.refresh_token, undefined);
  });

  test('a refresh_token when the client has the REFRESH_TOKEN grant', async () => {
    const { clientId: tv } = await seedClient(server, { providerId: provider.id, grantTypes: ['DEVICE_CODE', 'REFRESH_TOKEN'] });
    const codes = await approved(tv);
    const { status, body } = await poll(server, tv, codes.device_code);
    assert.equal(status, 200);
    assert.equal(typeof body.refresh_token, 'string');
    assert.ok(String(body.refresh_token).length >= 43);
  });

  test('success exactly once under concurrent polls', async () => {
    const codes = await approved();
    const answers = await Promise.all(Array.from({ length: 10 }, () => poll(server, clientId, codes.device_code)));
    const statuses = answers.map((a) => a.status);
    assert.equal(statuses.filter((s) => s === 200).length, 1, `statuses: ${statuses.join(',')}`);
    assert.ok(statuses.every((s) => s === 200 || s === 400), `statuses: ${statuses.join(',')}`);
    for (const a of answers.filter((x) => x.status === 400)) assert.ok(['slow_down', 'invalid_grant'].includes(String(a.body.error)));
  });

  test('TOKEN_ISSUED and DEVICE_AUTHORIZED are recorded with their request ids', async () => {
    const codes = await startDevice(server, clientId);
    const decision = await decide(server, alice.username, alice.appPassword, codes.user_code, 'allow');
    const token = await poll(server, clientId, codes.device_code);
    await server.server.services.events.flush();
    const events = server.server.services.store.events;
    const authorized = await events.findOne({ requestId: decision.headers.get('x-request-id')! });
    assert.equal(authorized?.action, 'DEVICE_AUTHORIZED');
    assert.equal(authorized?.clientId, clientId);
    assert.equal(authorized?.username, alice.username);
    const issued = await events.findOne({ requestId: token.headers.get('x-request-id')! });
    assert.equal(issued?.action, 'TOKEN_ISSUED');
    assert.equal(issued?.clientId, clientId);
    assert.equal(issued?.username, alice.username);
  });

  test('DEVICE_DENIED is recorded with its request id', async () => {
    const codes = await startDevice(server, clientId);
    const decision = await decide(server, alice.username, alice.appPassword, codes.user_code, 'deny');
    await server.server.services.events.flush();
    const denied = await server.server.services.store.events.findOne({ requestId: decision.headers.get('x-request-id')! });
    assert.equal(denied?.action, 'DEVICE_DENIED');
  });
});

describe('PKCE when polling', () => {
  const verifier = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';

  test('S256: the right verifier gets the token', async () => {
    const codes = await approved(clientId, { code_challenge: s256(verifier), code_challenge_method: 'S256' });
    const { status } = await poll(server, clientId, codes.device_code, { code_verifier: verifier });
    assert.equal(status, 200);
  });

  test('S256: a wrong verifier is invalid_grant', async () => {
    const codes = await approved(clientId, { code_challenge: s256(verifier), code_challenge_method: 'S256' });
    const { status, headers, body } = await poll(server, clientId, codes.device_code, { code_verifier: `${verifier.slice(0, -1)}Y` });
    assert.equal(status, 400);
    assert.equal(body.error, 'invalid_grant');
    assert.equal(headers.get('cache-control'), 'no-store');
  });

  test('a missing verifier is invalid_grant', async () => {
    const codes = await approved(clientId, { code_challenge: s256(verifier), code_challenge_method: 'S256' });
    assert.equal((await poll(server, clientId, codes.device_code)).body.error, 'invalid_grant');
  });

  test('a wrong verifier is invalid_grant even before the user decided (invalid_grant comes first)', async () => {
    const codes = await startDevice(server, clientId, { code_challenge: s256(verifier), code_challenge_method: 'S256' });
    assert.equal((await poll(server, clientId, codes.device_code, { code_verifier: 'x'.repeat(43) })).body.error, 'invalid_grant');
  });

  test('plain: the verifier equal to the challenge gets the token', async () => {
    const codes = await approved(clientId, { code_challenge: verifier, code_challenge_method: 'plain' });
    assert.equal((await poll(server, clientId, codes.device_code, { code_verifier: verifier })).status, 200);
  });

  test('plain: the S256 form of the verifier is wrong (no method confusion)', async () => {
    const codes = await approved(clientId, { code_challenge: verifier });
    assert.equal((await poll(server, clientId, codes.device_code, { code_verifier: s256(verifier) })).body.error, 'invalid_grant');
  });

  test('a challenge sent in the query string is checked when polling', async () => {
    const started = await deviceAuthorization(server, { client_id: clientId }, {}, `?code_challenge=${s256(verifier)}&code_challenge_method=S256`);
    const userCode = String(started.body.user_code);
    await decide(server, alice.username, alice.appPassword, userCode, 'allow');
    assert.equal((await poll(server, clientId, String(started.body.device_code), { code_verifier: 'z'.repeat(43) })).body.error, 'invalid_grant');
    assert.equal((await poll(server, clientId, String(started.body.device_code), { code_verifier: verifier })).status, 200);
  });

  test('a verifier for a code sent without a challenge is invalid_grant (no PKCE downgrade)', async () => {
    const codes = await approved();
    assert.equal((await poll(server, clientId, codes.device_code, { code_verifier: verifier })).body.error, 'invalid_grant');
  });
});

describe('a restart', () => {
  test('a pending device code survives a restart of the server, and is then approved and exchanged', async () => {
    await withTempDir('tessera-device-restart-', async (dataDir) => {
      let node = await startTestServer({}, dataDir);
      const p = await seedProvider(node);
      const tv = (await seedClient(node, { providerId: p.id })).clientId;
      const user = await seedUser(node);
      const codes = await startDevice(node, tv);
      assert.equal((await poll(node, tv, codes.device_code)).body.error, 'authorization_pending');
      await node.stop();

      node = await startTestServer({}, dataDir);
      try {
        assert.equal((await decide(node, user.username, user.appPassword, codes.user_code, 'allow')).status, 200);
        // The poll clock survived too: a poll right away is still too early.
        assert.equal((await poll(node, tv, codes.device_code)).body.error, 'slow_down');
        const stored = await node.server.services.store.deviceAuthorizations.findOne({ deviceCodeHash: sha256(codes.device_code) });
        await node.server.services.store.deviceAuthorizations.updateOne({ id: stored!.id }, { $set: { nextPollAt: Date.now() - 1 } });
        assert.equal((await poll(node, tv, codes.device_code)).status, 200);
      } finally {
        await node.stop();
      }
    });
  });
});
