/**
 * Federated sources known by a JWKS URL or an OIDC discovery URL, against a real local HTTP server
 * this test starts: first fetch and storing the keys back, key rotation, the once-a-minute refetch
 * limit, and sources that hang, refuse connections or send too much.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { freePort, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { seedMachineClient, seedMachineProvider, unique } from '../helpers/seed.js';
import { LoopbackServer } from '../helpers/federation.js';
import type { FederatedSource } from '../../src/domain/model.js';

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

interface Key { kid: string; privateKey: CryptoKey; publicJwk: JWK }
async function newKey(): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const kid = unique('kid');
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

/** A JWKS host: serves `keys` at /jwks, a discovery document, a path that never answers, and a huge one. */
class JwksHost extends LoopbackServer {
  keys: JWK[] = [];
  fetches = 0;
  /** Where /away redirects to (another origin in the tests). */
  redirectAwayTo = '';
  constructor() {
    super((req, res) => this.answer(req, res));
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.url === '/jwks') {
      this.fetches += 1;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: this.keys }));
    } else if (req.url === '/.well-known/openid-configuration') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ issuer: this.url, jwks_uri: `${this.url}/jwks` }));
    } else if (req.url === '/other/.well-known/openid-configuration') {
      // Names the host's issuer, not https://host/other (the issuer this URL is built from).
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ issuer: this.url, jwks_uri: `${this.url}/jwks` }));
    } else if (req.url === '/moved') {
      res.writeHead(302, { location: '/jwks' }).end();
    } else if (req.url === '/loop') {
      res.writeHead(302, { location: '/loop' }).end();
    } else if (req.url === '/away') {
      res.writeHead(302, { location: this.redirectAwayTo }).end();
    } else if (req.url === '/error') {
      res.writeHead(500, { 'content-type': 'text/plain' }).end('db at 10.1.2.3:5432 refused: password for tessera_ro');
    } else if (req.url === '/hang') {
      // Never answers.
    } else if (req.url === '/huge') {
      res.setHeader('content-type', 'application/json');
      res.end(`{"keys":[],"padding":"${'x'.repeat(1024 * 1024)}"}`);
    } else {
      res.statusCode = 404;
      res.end();
    }
  }
}

let t: TestServer;
const host = new JwksHost();
/** A second origin (another port) that also serves keys: redirects to it are refused. */
const elsewhere = new JwksHost();
before(async () => {
  t = await startTestServer();
  await host.start();
  await elsewhere.start();
  host.redirectAwayTo = `${elsewhere.url}/jwks`;
});
after(async () => {
  await host.stop();
  await elsewhere.stop();
  await t.stop();
});

async function sourceAndClient(fields: Partial<FederatedSource>) {
  const now = new Date();
  const slug = unique('remote');
  const source = await t.server.services.store.federatedSources.insert({
    id: crypto.randomUUID(), name: slug, slug, issuer: null, audience: null, jwksUrl: null, oidcDiscoveryUrl: null,
    jwks: null, keysFetchedAt: null, createdAt: now, updatedAt: now, ...fields,
  });
  const provider = await seedMachineProvider(t);
  await t.server.services.providers.update(provider.id, { federatedSourceIds: [source.id] });
  const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
  return { source, clientId };
}

async function jwtOf(key: Key, sub: string, iss?: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  // No audience on these sources: aud names the token endpoint (RFC 7523 §3).
  const aud = `${t.server.services.config.publicUrl}/application/o/token/`;
  return new SignJWT(iss ? { sub, iss, aud } : { sub, aud }).setProtectedHeader({ alg: 'ES256', kid: key.kid }).setIssuedAt(now).setExpirationTime(now + 300).sign(key.privateKey);
}

function exchange(clientId: string, jwt: string) {
  return postForm(`${t.url}/application/o/token/`, { grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: jwt });
}

async function failureReason(response: { headers: Headers }): Promise<string> {
  await t.server.services.events.flush();
  const [event] = await t.server.services.store.events.find({ requestId: response.headers.get('x-request-id')! });
  return String(event?.context.reason);
}

describe('federated sources with remote keys', () => {
  test('an OIDC discovery URL: keys are fetched on first use and stored back on the source', async () => {
    const key = await newKey();
    host.keys = [key.publicJwk];
    const { source, clientId } = await sourceAndClient({ oidcDiscoveryUrl: `${host.url}/.well-known/openid-configuration` });
    const before = host.fetches;
    const response = await exchange(clientId, await jwtOf(key, 'pod-a', host.url));
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(host.fetches, before + 1);
    const stored = await t.server.services.store.federatedSources.findOne({ id: source.id });
    assert.ok(stored?.keysFetchedAt, 'keysFetchedAt is set');
    assert.deepEqual(stored.jwks?.keys.map((k) => k.kid), [key.kid]);
    // Known keys are used as they are: no fetch per request.
    const again = await exchange(clientId, await jwtOf(key, 'pod-b', host.url));
    assert.equal(again.status, 200);
    assert.equal(host.fetches, before + 1);
  });

  test('key rotation: a JWT with a new kid makes the source be fetched again and is accepted', async () => {
    const oldKey = await newKey();
    const newer = await newKey();
    // Keys fetched two minutes ago (by any process); the host has rotated since.
    const { source, clientId } = await sourceAndClient({
      jwksUrl: `${host.url}/jwks`, jwks: { keys: [oldKey.publicJwk] }, keysFetchedAt: new Date(Date.now() - 120_000),
    });
    host.keys = [newer.publicJwk];
    const before = host.fetches;
    const response = await exchange(clientId, await jwtOf(newer, 'rotated'));
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(host.fetches, before + 1);
    const stored = await t.server.services.store.federatedSources.findOne({ id: source.id });
    assert.deepEqual(stored?.jwks?.keys.map((k) => k.kid), [newer.kid]);

    // Within the minute, another unknown kid does not make it fetch again: refused, no request to the host.
    const newest = await newKey();
    host.keys = [newest.publicJwk];
    const throttled = await exchange(clientId, await jwtOf(newest, 'rotated'));
    assert.equal(throttled.status, 400);
    assert.equal(throttled.body.error, 'invalid_grant');
    assert.equal(host.fetches, before + 1, 'at most one fetch per minute per source');
    assert.match(await failureReason(throttled), /less than a minute ago/);
  });

  test('a source that hangs fails fast, and later requests do not wait again', async () => {
    const key = await newKey();
    const { clientId } = await sourceAndClient({ jwksUrl: `${host.url}/hang` });
    const started = performance.now();
    const response = await exchange(clientId, await jwtOf(key, 'x'));
    const elapsed = performance.now() - started;
    assert.equal(response.status, 400);
    assert.equal(response.body.error, 'invalid_grant');
    assert.ok(elapsed < 5_000, `answered in ${Math.round(elapsed)} ms`);
    assert.match(await failureReason(response), /did not answer within/);
    const second = performance.now();
    const again = await exchange(clientId, await jwtOf(key, 'x'));
    assert.equal(again.body.error, 'invalid_grant');
    assert.ok(performance.now() - second < 1_500, 'the failed fetch counts: no second wait within the minute');
  });

  test('several hanging sources are waited for side by side, not one after another', async () => {
    const key = await newKey();
    const now = new Date();
    const ids: string[] = [];
    for (let i = 0; i < 3; i += 1) {
      const slug = unique('hang');
      ids.push((await t.server.services.store.federatedSources.insert({
        id: crypto.randomUUID(), name: slug, slug, issuer: null, audience: null, jwksUrl: `${host.url}/hang`, oidcDiscoveryUrl: null,
        jwks: null, keysFetchedAt: null, createdAt: now, updatedAt: now,
      })).id);
    }
    const provider = await seedMachineProvider(t, { federatedSourceIds: ids });
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    const started = performance.now();
    const response = await exchange(clientId, await jwtOf(key, 'x'));
    const elapsed = performance.now() - started;
    assert.equal(response.body.error, 'invalid_grant');
    assert.ok(elapsed < 5_000, `answered in ${Math.round(elapsed)} ms`);
  });

  test('a source that refuses connections fails at once with the reason logged', async () => {
    const key = await newKey();
    const { clientId } = await sourceAndClient({ jwksUrl: `http://127.0.0.1:${await freePort()}/jwks` });
    const response = await exchange(clientId, await jwtOf(key, 'x'));
    assert.equal(response.body.error, 'invalid_grant');
    const reason = await failureReason(response);
    assert.match(reason, /could not fetch keys: jwksUrl could not be reached/);
    assert.doesNotMatch(reason, /ECONNREFUSED|127\.0\.0\.1|fetch failed/, 'the network error and the address stay out');
  });

  test('stored keys keep working while the source is down', async () => {
    const key = await newKey();
    const { clientId } = await sourceAndClient({
      jwksUrl: `http://127.0.0.1:${await freePort()}/jwks`, jwks: { keys: [key.publicJwk] }, keysFetchedAt: new Date(),
    });
    const response = await exchange(clientId, await jwtOf(key, 'x'));
    assert.equal(response.status, 200, JSON.stringify(response.body));
  });

  test('a JWKS larger than the size limit is refused', async () => {
    const key = await newKey();
    const { clientId } = await sourceAndClient({ jwksUrl: `${host.url}/huge` });
    const response = await exchange(clientId, await jwtOf(key, 'x'));
    assert.equal(response.body.error, 'invalid_grant');
    assert.match(await failureReason(response), /could not fetch keys: jwksUrl answered more than 524288 bytes/);
  });
});

describe('what fetching keys refuses', () => {
  test('a discovery document naming another issuer than the one its URL is built from (OIDC Discovery §4.3)', async () => {
    const key = await newKey();
    host.keys = [key.publicJwk];
    const { clientId } = await sourceAndClient({ oidcDiscoveryUrl: `${host.url}/other/.well-known/openid-configuration` });
    const before = host.fetches;
    const response = await exchange(clientId, await jwtOf(key, 'x', `${host.url}/other`));
    assert.equal(response.body.error, 'invalid_grant');
    assert.match(await failureReason(response), /could not fetch keys: oidcDiscoveryUrl answered a discovery document for another issuer/);
    assert.equal(host.fetches, before, 'its jwks_uri was not fetched');
  });

  test('a discovery source without an issuer of its own requires the issuer its URL names in iss', async () => {
    const key = await newKey();
    host.keys = [key.publicJwk];
    const { clientId } = await sourceAndClient({ oidcDiscoveryUrl: `${host.url}/.well-known/openid-configuration` });
    for (const iss of [undefined, 'https://someone.else.example', `${host.url}/`]) {
      const refused = await exchange(clientId, await jwtOf(key, 'x', iss));
      assert.equal(refused.body.error, 'invalid_grant', String(iss));
      assert.match(await failureReason(refused), /iss/, String(iss));
    }
    const accepted = await exchange(clientId, await jwtOf(key, 'x', host.url));
    assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
  });

  test('a discovery document naming another issuer than the source\'s issuer', async () => {
    const key = await newKey();
    host.keys = [key.publicJwk];
    const discovery = `${host.url}/.well-known/openid-configuration`;
    const wrong = await sourceAndClient({ oidcDiscoveryUrl: discovery, issuer: 'https://someone.else.example' });
    const refused = await exchange(wrong.clientId, await jwtOf(key, 'x', 'https://someone.else.example'));
    assert.equal(refused.body.error, 'invalid_grant');
    assert.match(await failureReason(refused), /for another issuer/);
    const right = await sourceAndClient({ oidcDiscoveryUrl: discovery, issuer: host.url });
    const accepted = await exchange(right.clientId, await jwtOf(key, 'x', host.url));
    assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
  });

  test('a redirect to another origin is not followed', async () => {
    const key = await newKey();
    elsewhere.keys = [key.publicJwk];
    const { clientId } = await sourceAndClient({ jwksUrl: `${host.url}/away` });
    const before = elsewhere.fetches;
    const response = await exchange(clientId, await jwtOf(key, 'x'));
    assert.equal(response.body.error, 'invalid_grant');
    const reason = await failureReason(response);
    assert.match(reason, /could not fetch keys: jwksUrl redirected to another origin \(refused\)/);
    assert.ok(!reason.includes(elsewhere.url), 'the redirect target is not echoed');
    assert.equal(elsewhere.fetches, before, 'the other origin was never asked');
  });

  test('a redirect within the origin is followed; a loop is cut after 3', async () => {
    const key = await newKey();
    host.keys = [key.publicJwk];
    const moved = await sourceAndClient({ jwksUrl: `${host.url}/moved` });
    assert.equal((await exchange(moved.clientId, await jwtOf(key, 'x'))).status, 200);
    const loop = await sourceAndClient({ jwksUrl: `${host.url}/loop` });
    const response = await exchange(loop.clientId, await jwtOf(key, 'x'));
    assert.equal(response.body.error, 'invalid_grant');
    assert.match(await failureReason(response), /could not fetch keys: jwksUrl redirected more than 3 times/);
  });

  test('an error answer is reported by its status class, never its body or address', async () => {
    const key = await newKey();
    const { clientId } = await sourceAndClient({ jwksUrl: `${host.url}/error` });
    const response = await exchange(clientId, await jwtOf(key, 'x'));
    assert.equal(response.body.error, 'invalid_grant');
    const reason = await failureReason(response);
    assert.match(reason, /could not fetch keys: jwksUrl answered HTTP 5xx/);
    assert.doesNotMatch(reason, /10\.1\.2\.3|password|500|127\.0\.0\.1/);
  });
});
