/**
 * Property: whatever a client sends to the token, introspection and revocation endpoints —
 * odd parameters, broken Basic headers, JWT-shaped garbage, validly signed JWTs with hostile
 * claims, raw bytes — the answer is never a 5xx, and every error is the contract's JSON.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { seedMachineClient, seedMachineProvider, seedUserWithAppPassword, unique } from '../helpers/seed.js';

let t: TestServer;
let confidential: { clientId: string; clientSecret: string };
let publicClientId: string;
let svc: { username: string; appPassword: string };
let signing: { kid: string; privateKey: CryptoKey };
let validAccessToken: string;

before(async () => {
  t = await startTestServer();
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  signing = { kid: unique('kid'), privateKey };
  const now = new Date();
  const slug = unique('fuzz');
  const source = await t.server.services.store.federatedSources.insert({
    id: crypto.randomUUID(), name: slug, slug, issuer: null, audience: null, jwksUrl: null, oidcDiscoveryUrl: null,
    jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: signing.kid, alg: 'ES256' }] }, keysFetchedAt: null, createdAt: now, updatedAt: now,
  });
  const provider = await seedMachineProvider(t, { federatedSourceIds: [source.id] });
  const c = await seedMachineClient(t, provider, { grantTypes: ['CLIENT_CREDENTIALS', 'PASSWORD'] });
  confidential = { clientId: c.clientId, clientSecret: c.clientSecret! };
  publicClientId = (await seedMachineClient(t, provider, { type: 'PUBLIC', grantTypes: ['CLIENT_CREDENTIALS', 'PASSWORD'] })).clientId;
  const u = await seedUserWithAppPassword(t);
  svc = { username: u.username, appPassword: u.appPassword };
  const issued = await fetch(`${t.url}/application/o/token/`, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: confidential.clientId, client_secret: confidential.clientSecret }),
  });
  validAccessToken = ((await issued.json()) as { access_token: string }).access_token;
});
after(async () => {
  await t.stop();
});

const b64url = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value) ?? 'null').toString('base64url');

const anyString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom('', ' ', '%', '%zz', '+', '=', ':', '\n', '\u0000', 'a'.repeat(9000), '{"$ne":null}', '[object Object]'),
);

const jwtShaped = fc.record({
  header: fc.oneof(
    fc.record({ alg: fc.constantFrom('none', 'HS256', 'RS256', 'ES256', 'EdDSA', 'PS512', 'nope', ''), kid: fc.option(fc.string({ maxLength: 10 }), { nil: undefined }) }),
    fc.jsonValue(),
  ),
  payload: fc.oneof(
    fc.record({
      sub: fc.option(anyString, { nil: undefined }),
      exp: fc.option(fc.oneof(fc.integer(), fc.double(), fc.string({ maxLength: 5 })), { nil: undefined }),
      iss: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
    }),
    fc.jsonValue(),
  ),
  signature: fc.string({ maxLength: 20 }).map(b64url),
}).map(({ header, payload, signature }) => `${b64url(header)}.${b64url(payload)}.${signature}`);

/** Validly signed by the trusted source, with hostile claims. */
const signedHostile = fc.record({
  sub: fc.oneof(anyString, fc.constant(undefined), fc.integer()),
  exp: fc.oneof(fc.integer({ min: -10, max: 4_000_000_000 }), fc.constant(Math.floor(Date.now() / 1000) + 300), fc.string({ maxLength: 4 })),
  nbf: fc.option(fc.integer(), { nil: undefined }),
  iat: fc.option(fc.oneof(fc.integer(), fc.string({ maxLength: 3 })), { nil: undefined }),
  aud: fc.option(fc.oneof(fc.string({ maxLength: 8 }), fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 })), { nil: undefined }),
  extra: fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
});

const credentialish = () => fc.oneof(
  anyString,
  jwtShaped,
  fc.constant(confidential.clientSecret),
  fc.constant(validAccessToken),
  fc.tuple(anyString, anyString).map(([u, p]) => Buffer.from(`${u}:${p}`).toString('base64')),
  fc.constant(Buffer.from(`${svc.username}:${svc.appPassword}\n`).toString('base64')),
  fc.constant(Buffer.from(`${svc.username}:${svc.appPassword}`).toString('base64')),
);

const PARAMS = ['grant_type', 'client_id', 'client_secret', 'username', 'password', 'scope', 'client_assertion_type', 'client_assertion', 'token', 'token_type_hint'];

function paramValue(name: string): fc.Arbitrary<string> {
  switch (name) {
    case 'grant_type': return fc.oneof(fc.constantFrom('client_credentials', 'password', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'), anyString);
    case 'client_id': return fc.oneof(fc.constant(confidential.clientId), fc.constant(publicClientId), anyString);
    case 'username': return fc.oneof(fc.constant(svc.username), anyString);
    case 'password': return fc.oneof(fc.constant(svc.appPassword), anyString);
    case 'scope': return fc.oneof(fc.constantFrom('openid', 'profile email', 'openid offline_access', 'x y z'), anyString);
    case 'client_assertion_type': return fc.oneof(fc.constant('urn:ietf:params:oauth:client-assertion-type:jwt-bearer'), anyString);
    case 'token_type_hint': return fc.oneof(fc.constantFrom('access_token', 'refresh_token'), anyString);
    default: return credentialish();
  }
}

const formArb = () => fc.uniqueArray(fc.constantFrom(...PARAMS), { maxLength: PARAMS.length })
  .chain((names) => fc.tuple(...names.map((n) => paramValue(n).map((v) => [n, v] as [string, string]))));

/** What an HTTP header can carry at all (fetch refuses the rest before sending). */
const headerSafe = (value: string) => value.replace(/[^\t\x20-\x7e\x80-\xff]/g, '').trim();

const authorizationArb = () => fc.option(fc.oneof(
  fc.tuple(fc.oneof(fc.constant(confidential.clientId), fc.constant(publicClientId), anyString), credentialish())
    .map(([id, secret]) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`),
  fc.tuple(fc.constant(confidential.clientId), credentialish()).map(([id, secret]) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`),
  anyString.map((s) => `Basic ${s}`),
  anyString,
).map(headerSafe), { nil: undefined });

const endpoint = fc.constantFrom('/application/o/token/', '/application/o/introspect/', '/application/o/revoke/', '/application/o/token', '/application/o/revoke');

async function send(path: string, body: string, auth: string | undefined, contentType = 'application/x-www-form-urlencoded') {
  const headers: Record<string, string> = { 'content-type': contentType };
  if (auth !== undefined) headers.authorization = auth;
  const response = await fetch(`${t.url}${path}`, { method: 'POST', headers, body });
  const text = await response.text();
  assert.ok(response.status < 500, `${path} answered ${response.status}: ${text}`);
  if (response.status >= 400) {
    const json = JSON.parse(text) as { error?: unknown; request_id?: unknown };
    assert.equal(typeof json.error, 'string', text);
    assert.equal(typeof json.request_id, 'string', text);
  }
}

describe('fuzzing the M2M endpoints', () => {
  test('structured parameters and headers never give a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(endpoint, formArb(), authorizationArb(), async (path, pairs, auth) => {
        await send(path, new URLSearchParams(pairs).toString(), auth);
      }),
      { numRuns: 400 },
    );
  });

  test('validly signed JWTs with hostile claims never give a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(signedHostile, fc.boolean(), async (claims, asSecret) => {
        const { extra, ...named } = claims;
        const payload: Record<string, unknown> = { ...extra };
        for (const [k, v] of Object.entries(named)) if (v !== undefined) payload[k] = v;
        const jwt = await new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid: signing.kid }).sign(signing.privateKey);
        const params: Record<string, string> = asSecret
          ? { grant_type: 'client_credentials', client_id: publicClientId, client_secret: jwt }
          : { grant_type: 'client_credentials', client_id: publicClientId, client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: jwt };
        await send('/application/o/token/', new URLSearchParams(params).toString(), undefined);
      }),
      { numRuns: 150 },
    );
  });

  test('raw bodies and content types never give a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        endpoint,
        fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 200 }), fc.constantFrom('a=1&a=2', '%', '=&=&', 'token=%ff', 'grant_type=client_credentials&client_id')),
        fc.constantFrom('application/x-www-form-urlencoded', 'application/json', 'text/plain', 'application/x-www-form-urlencoded; charset=latin1', ''),
        authorizationArb(),
        async (path, body, contentType, auth) => {
          await send(path, body, auth, contentType);
        },
      ),
      { numRuns: 200 },
    );
  });
});
