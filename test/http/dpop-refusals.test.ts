/**
 * DPoP proofs that must be refused (RFC 9449 §4.3, contract v2 "DPoP"), each hand-made to break
 * one rule: at the token endpoint a clear 400 invalid_dpop_proof and never a token; at userinfo
 * a 401 with the DPoP challenge. Proofs name the URL as clients see it (TESSERA_PUBLIC_URL),
 * while the requests reach the server on its own address, as behind a proxy.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, generateSecret } from 'jose';
import { SignJWT } from 'jose';
import { startTestServer, basic, postForm, rawExchange, type TestServer } from '../helpers/server.js';
import { seedMachineClient, seedMachineProvider, seedUser } from '../helpers/seed.js';
import { DEVICE_GRANT, decide, deviceAuthorization } from '../helpers/device.js';
import { makeProof, proofKey, rawJws, type ProofKey } from '../helpers/dpop.js';
import type { Provider } from '../../src/domain/model.js';

let server: TestServer;
let provider: Provider;
let credentials: { clientId: string; clientSecret: string };
let key: ProofKey;
let tokenUrl: string;
let userinfoUrl: string;

before(async () => {
  server = await startTestServer();
  provider = await seedMachineProvider(server);
  const made = await seedMachineClient(server, provider, { allowedScopes: ['profile'] });
  credentials = { clientId: made.clientId, clientSecret: made.clientSecret! };
  key = await proofKey('ES256');
  tokenUrl = `${server.server.services.config.publicUrl}/application/o/token/`;
  userinfoUrl = `${server.server.services.config.publicUrl}/application/o/userinfo/`;
});
after(async () => {
  await server.stop();
});

function requestToken(proof: string | undefined, form: Record<string, string> = {}) {
  return postForm(`${server.url}/application/o/token/`, { grant_type: 'client_credentials', ...form }, {
    authorization: basic(credentials.clientId, credentials.clientSecret),
    ...(proof !== undefined ? { dpop: proof } : {}),
  });
}

async function assertRefused(proof: string, description: RegExp) {
  const answer = await requestToken(proof);
  assert.equal(answer.status, 400, JSON.stringify(answer.body));
  assert.equal(answer.body.error, 'invalid_dpop_proof');
  assert.match(String(answer.body.error_description), description);
  assert.equal(answer.body.access_token, undefined);
}

describe('DPoP proofs refused at the token endpoint', () => {
  test('a good proof is accepted (the baseline the refusals break)', async () => {
    const answer = await requestToken(await makeProof(key, { htu: tokenUrl }));
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.token_type, 'DPoP');
  });

  test('htu: scheme and host compare case-insensitively, query and fragment are ignored', async () => {
    const shouting = tokenUrl.replace(/^http:\/\/localhost/, 'HTTP://LOCALHOST') + '?a=1#frag';
    const answer = await requestToken(await makeProof(key, { htu: shouting }));
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
  });

  test('expired: iat more than 60 s ago', async () => {
    await assertRefused(await makeProof(key, { htu: tokenUrl, iatOffset: -120 }), /iat/);
  });

  test('from the future: iat more than 60 s ahead', async () => {
    await assertRefused(await makeProof(key, { htu: tokenUrl, iatOffset: 120 }), /iat/);
  });

  test('replayed: the same proof twice, also twice at once', async () => {
    const proof = await makeProof(key, { htu: tokenUrl });
    assert.equal((await requestToken(proof)).status, 200);
    await assertRefused(proof, /used before/);
    const raced = await makeProof(key, { htu: tokenUrl });
    const answers = await Promise.all([requestToken(raced), requestToken(raced), requestToken(raced)]);
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 400, 400]);
  });

  test('for another URL (htu) or another method (htm)', async () => {
    await assertRefused(await makeProof(key, { htu: `${server.server.services.config.publicUrl}/application/o/introspect/` }), /htu/);
    await assertRefused(await makeProof(key, { htu: tokenUrl.replace('http://', 'https://') }), /htu/);
    await assertRefused(await makeProof(key, { htu: 'not a url' }), /htu/);
    await assertRefused(await makeProof(key, { htu: tokenUrl, htm: 'GET' }), /htm/);
    await assertRefused(await makeProof(key, { htu: tokenUrl, htm: 'post' }), /htm/);
  });

  test('alg none, and HS256 (a symmetric key in jwk)', async () => {
    const claims = { htm: 'POST', htu: tokenUrl, iat: Math.floor(Date.now() / 1000), jti: crypto.randomUUID() };
    await assertRefused(rawJws({ alg: 'none', typ: 'dpop+jwt', jwk: key.publicJwk }, claims, 'c2ln'), /alg/);
    const secret = await generateSecret('HS256', { extractable: true });
    const symmetric = await exportJWK(secret);
    const hs = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: symmetric } as never).sign(secret);
    await assertRefused(hs, /alg/);
  });

  test('an embedded private key', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const privateJwk = await exportJWK(privateKey);
    await assertRefused(await makeProof(key, { htu: tokenUrl, header: { jwk: privateJwk }, signWith: privateKey }), /public key/);
  });

  test('a jwk that does not match the signature', async () => {
    const other = await proofKey('ES256');
    await assertRefused(await makeProof(key, { htu: tokenUrl, signWith: other.privateKey }), /does not verify/);
  });

  test('typ other than dpop+jwt, no jwk, missing jti, htm or iat', async () => {
    await assertRefused(await makeProof(key, { htu: tokenUrl, header: { typ: 'JWT' } }), /typ/);
    await assertRefused(await makeProof(key, { htu: tokenUrl, header: { jwk: undefined } }), /jwk/);
    for (const claim of ['jti', 'htm', 'iat']) {
      await assertRefused(await makeProof(key, { htu: tokenUrl, claims: { [claim]: undefined } }), /does not verify|jti|htm|iat/);
    }
  });

  test('a 12 KB DPoP header: invalid_dpop_proof; a 100 KB one: 431 with the JSON error, never a token', async () => {
    await assertRefused(`${'a'.repeat(12_000)}.b.c`, /longer than/);
    const huge = await requestToken(`${'a'.repeat(100_000)}.b.c`).catch((error: unknown) => ({ status: 0, body: { error: String(error) } }));
    assert.equal(huge.status, 431);
    assert.equal(huge.body.error, 'invalid_request');
  });

  test('two DPoP headers', async () => {
    const first = await makeProof(key, { htu: tokenUrl });
    const second = await makeProof(key, { htu: tokenUrl });
    const form = 'grant_type=client_credentials';
    const answer = await rawExchange(server.url, (socket) => {
      socket.end([
        'POST /application/o/token/ HTTP/1.1', `Host: ${new URL(server.url).host}`, 'Content-Type: application/x-www-form-urlencoded',
        `Authorization: ${basic(credentials.clientId, credentials.clientSecret)}`, `DPoP: ${first}`, `DPoP: ${second}`,
        `Content-Length: ${form.length}`, 'Connection: close', '', form,
      ].join('\r\n'));
    });
    assert.equal(answer.status, 400, answer.body);
    const body = JSON.parse(answer.body) as Record<string, unknown>;
    assert.equal(body.error, 'invalid_dpop_proof');
    assert.match(String(body.error_description), /exactly one/);
  });

  test('a provider with dpopNonce: no nonce or a made-up one is use_dpop_nonce with DPoP-Nonce; that nonce works', async () => {
    const strict = await seedMachineProvider(server, { dpopNonce: true });
    const made = await seedMachineClient(server, strict);
    const ask = (proof: string) => postForm(`${server.url}/application/o/token/`, { grant_type: 'client_credentials' }, {
      authorization: basic(made.clientId, made.clientSecret!), dpop: proof,
    });
    const first = await ask(await makeProof(key, { htu: tokenUrl }));
    assert.equal(first.status, 400);
    assert.equal(first.body.error, 'use_dpop_nonce');
    const nonce = first.headers.get('dpop-nonce');
    assert.ok(nonce && nonce.length >= 22);
    const madeUp = await ask(await makeProof(key, { htu: tokenUrl, nonce: 'x'.repeat(43) }));
    assert.equal(madeUp.body.error, 'use_dpop_nonce');
    const good = await ask(await makeProof(key, { htu: tokenUrl, nonce }));
    assert.equal(good.status, 200, JSON.stringify(good.body));
    assert.equal(good.body.token_type, 'DPoP');
    assert.equal(good.headers.get('dpop-nonce'), nonce, 'the current nonce comes with every answer');
  });
});

describe('DPoP settings and parameters', () => {
  test('requireDpop and dpopNonce default to false, are set through the admin API and read back', async () => {
    const created = await server.gql<{ createProvider: { id: string; dpopNonce: boolean } }>(
      `mutation { createProvider(input: { name: "n", slug: "dpop-settings" }) { id dpopNonce } }`);
    assert.equal(created.createProvider.dpopNonce, false);
    const updated = await server.gql<{ updateProvider: { dpopNonce: boolean } }>(
      `mutation($id: ID!) { updateProvider(id: $id, input: { dpopNonce: true }) { dpopNonce } }`, { id: created.createProvider.id });
    assert.equal(updated.updateProvider.dpopNonce, true);
    const client = await server.gql<{ createClient: { client: { id: string; requireDpop: boolean } } }>(
      `mutation($p: ID!) { createClient(input: { providerId: $p, name: "c", type: PUBLIC, grantTypes: [DEVICE_CODE], requireDpop: true }) { client { id requireDpop } } }`,
      { p: created.createProvider.id });
    assert.equal(client.createClient.client.requireDpop, true);
    const read = await server.gql<{ client: { requireDpop: boolean } }>(`query($id: ID!) { client(id: $id) { requireDpop } }`, { id: client.createClient.client.id });
    assert.equal(read.client.requireDpop, true);
  });

  test('a dpop_jkt that is not a SHA-256 thumbprint is invalid_request at device authorization', async () => {
    const made = await seedMachineClient(server, provider, { type: 'PUBLIC', grantTypes: ['DEVICE_CODE'] });
    for (const dpopJkt of ['', 'short', 'a'.repeat(44), `${'a'.repeat(42)}=`]) {
      const answer = await postForm(`${server.url}/application/o/device/`, { client_id: made.clientId, dpop_jkt: dpopJkt });
      assert.equal(answer.status, 400, dpopJkt);
      assert.equal(answer.body.error, 'invalid_request');
    }
  });

  test("a confidential client's refresh token is not bound to the key (RFC 9449 §5): it refreshes without a proof", async () => {
    const made = await seedMachineClient(server, provider, { grantTypes: ['DEVICE_CODE', 'REFRESH_TOKEN'] });
    const person = await seedUser(server);
    const auth = { authorization: basic(made.clientId, made.clientSecret!) };
    const started = await deviceAuthorization(server, {}, auth);
    assert.equal(started.status, 200, JSON.stringify(started.body));
    assert.equal((await decide(server, person.username, person.appPassword, String(started.body.user_code), 'allow')).status, 200);
    const first = await postForm(`${server.url}/application/o/token/`, { grant_type: DEVICE_GRANT, device_code: String(started.body.device_code) }, {
      ...auth, dpop: await makeProof(key, { htu: tokenUrl }),
    });
    assert.equal(first.body.token_type, 'DPoP', JSON.stringify(first.body));
    assert.equal(typeof first.body.refresh_token, 'string');
    const refreshed = await postForm(`${server.url}/application/o/token/`, { grant_type: 'refresh_token', refresh_token: String(first.body.refresh_token) }, auth);
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    assert.equal(refreshed.body.token_type, 'Bearer');
  });
});

describe('a DPoP-bound token is no assertion', () => {
  test("a federated provider's bound access token as client_assertion is invalid_grant; the same token unbound is accepted", async () => {
    const downstream = await seedMachineProvider(server, { federatedProviderIds: [provider.id] });
    const relying = await seedMachineClient(server, downstream, { type: 'PUBLIC' });
    const exchange = (assertion: string) => postForm(`${server.url}/application/o/token/`, {
      grant_type: 'client_credentials', client_id: relying.clientId,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion,
    });
    const bound = String((await requestToken(await makeProof(key, { htu: tokenUrl }))).body.access_token);
    const refused = await exchange(bound);
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body.error, 'invalid_grant');
    assert.equal(refused.body.access_token, undefined);
    const unbound = String((await requestToken(undefined)).body.access_token);
    assert.equal((await exchange(unbound)).status, 200);
  });
});

describe('DPoP at userinfo: 401 with the DPoP challenge', () => {
  let token: string;
  before(async () => {
    const answer = await requestToken(await makeProof(key, { htu: tokenUrl }), { scope: 'profile' });
    token = String(answer.body.access_token);
  });

  async function assertChallenged(headers: Record<string, string>, description: RegExp) {
    const answer = await fetch(`${server.url}/application/o/userinfo/`, { headers });
    assert.equal(answer.status, 401);
    const challenge = answer.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /^DPoP algs="[^"]*ES256[^"]*", error="invalid_token"/);
    assert.match(challenge, description);
  }

  test('with its proof (ath) the token is accepted', async () => {
    const answer = await fetch(`${server.url}/application/o/userinfo/`, {
      headers: { authorization: `DPoP ${token}`, dpop: await makeProof(key, { htu: userinfoUrl, htm: 'GET', accessToken: token }) },
    });
    assert.equal(answer.status, 200, await answer.text());
  });

  test('as Bearer, without a proof, without ath, with a wrong ath, by another key, for another URL', async () => {
    await assertChallenged({ authorization: `Bearer ${token}` }, /bound to a DPoP key/);
    await assertChallenged({ authorization: `DPoP ${token}` }, /proof is required/);
    await assertChallenged({ authorization: `DPoP ${token}`, dpop: await makeProof(key, { htu: userinfoUrl, htm: 'GET' }) }, /ath/);
    await assertChallenged({ authorization: `DPoP ${token}`, dpop: await makeProof(key, { htu: userinfoUrl, htm: 'GET', accessToken: `${token}x` }) }, /ath/);
    const other = await proofKey('ES256');
    await assertChallenged({ authorization: `DPoP ${token}`, dpop: await makeProof(other, { htu: userinfoUrl, htm: 'GET', accessToken: token }) }, /another key/);
    await assertChallenged({ authorization: `DPoP ${token}`, dpop: await makeProof(key, { htu: tokenUrl, htm: 'GET', accessToken: token }) }, /htu/);
  });

  test('an unbound token sent as DPoP is refused', async () => {
    const plain = await requestToken(undefined);
    const bearer = String(plain.body.access_token);
    await assertChallenged({ authorization: `DPoP ${bearer}`, dpop: await makeProof(key, { htu: userinfoUrl, htm: 'GET', accessToken: bearer }) }, /not DPoP-bound/);
  });
});
