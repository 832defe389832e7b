/** Admin API: federated sources — raw JWKS validated, jwksUrl / oidcDiscoveryUrl fetched, links to providers. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { configEvents, expectGqlError } from '../helpers/admin.js';

let server: TestServer;
let keyServer: http.Server;
let keyUrl: string;
/** What the local key server answers on /jwks; tests change it to simulate rotation. */
let servedJwks: unknown;
let rawJwks: { keys: Record<string, unknown>[] };
let privateJwk: Record<string, unknown>;

async function publicJwk(kid: string) {
  const { publicKey } = await generateKeyPair('ES256', { extractable: true });
  return { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
}

before(async () => {
  server = await startTestServer();
  rawJwks = { keys: [await publicJwk('raw-1')] };
  servedJwks = { keys: [await publicJwk('served-1')] };
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  privateJwk = { ...(await exportJWK(privateKey)) };
  keyServer = http.createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    };
    if (req.url === '/jwks') return send(200, servedJwks);
    if (req.url === '/.well-known/openid-configuration') return send(200, { issuer: keyUrl, jwks_uri: `${keyUrl}/jwks` });
    if (req.url === '/no-jwks-uri') return send(200, { issuer: keyUrl });
    if (req.url === '/not-json') return send(200, '<html>');
    if (req.url === '/huge') return send(200, { keys: [], pad: 'x'.repeat(600 * 1024) });
    return send(404, { error: 'not found' });
  });
  await new Promise<void>((resolve) => keyServer.listen(0, '127.0.0.1', resolve));
  keyUrl = `http://127.0.0.1:${(keyServer.address() as AddressInfo).port}`;
});
after(async () => {
  await server?.stop();
  keyServer?.close();
});

const FIELDS = 'id name slug issuer audience jwksUrl oidcDiscoveryUrl jwks keysFetchedAt createdAt';
const CREATE = `mutation ($input: CreateFederatedSourceInput!) { createFederatedSource(input: $input) { ${FIELDS} } }`;
const UPDATE = `mutation ($id: ID!, $input: UpdateFederatedSourceInput!) { updateFederatedSource(id: $id, input: $input) { ${FIELDS} } }`;
const REFRESH = `mutation ($id: ID!) { refreshFederatedSourceKeys(id: $id) { ${FIELDS} } }`;
const DELETE = 'mutation ($id: ID!) { deleteFederatedSource(id: $id) }';

interface SourceData { id: string; slug: string; issuer: string | null; audience: string | null; jwksUrl: string | null; oidcDiscoveryUrl: string | null; jwks: { keys: { kid: string }[] } | null; keysFetchedAt: string | null }

async function create(input: Record<string, unknown>): Promise<SourceData> {
  return (await server.gql<{ createFederatedSource: SourceData }>(CREATE, { input })).createFederatedSource;
}

test('a source with raw JWKS keeps those keys; it was fetched from nowhere', async () => {
  const source = await create({ name: 'Cluster', slug: 'cluster', issuer: 'https://kubernetes.default.svc', audience: 'tessera', jwks: rawJwks });
  assert.deepEqual(source.jwks?.keys.map((k) => k.kid), ['raw-1']);
  assert.equal(source.keysFetchedAt, null);
  assert.equal(source.issuer, 'https://kubernetes.default.svc');
  assert.equal(source.audience, 'tessera');
});

test('a jwksUrl is fetched on create; refreshFederatedSourceKeys fetches it again', async () => {
  const source = await create({ name: 'By URL', slug: 'by-url', jwksUrl: `${keyUrl}/jwks` });
  assert.deepEqual(source.jwks?.keys.map((k) => k.kid), ['served-1']);
  assert.ok(source.keysFetchedAt);
  const previous = servedJwks;
  servedJwks = { keys: [await publicJwk('served-2')] };
  try {
    const refreshed = (await server.gql<{ refreshFederatedSourceKeys: SourceData }>(REFRESH, { id: source.id })).refreshFederatedSourceKeys;
    assert.deepEqual(refreshed.jwks?.keys.map((k) => k.kid), ['served-2']);
    assert.ok(Date.parse(refreshed.keysFetchedAt!) >= Date.parse(source.keysFetchedAt!));
  } finally {
    servedJwks = previous;
  }
  assert.equal((await configEvents(server, 'refreshFederatedSourceKeys')).filter((e) => e.context.id === source.id).length, 1);
});

test('an oidcDiscoveryUrl is followed to its jwks_uri', async () => {
  const source = await create({ name: 'OIDC', slug: 'oidc', oidcDiscoveryUrl: `${keyUrl}/.well-known/openid-configuration` });
  assert.deepEqual(source.jwks?.keys.map((k) => k.kid), ['served-1']);
  assert.ok(source.keysFetchedAt);
});

test('keys that cannot be fetched are BAD_USER_INPUT naming the field, "could not fetch keys", and not the URL', async () => {
  for (const [input, field, url] of [
    [{ jwksUrl: `${keyUrl}/missing` }, 'jwksUrl', `${keyUrl}/missing`],
    [{ jwksUrl: `${keyUrl}/not-json` }, 'jwksUrl', `${keyUrl}/not-json`],
    [{ jwksUrl: `${keyUrl}/huge` }, 'jwksUrl', `${keyUrl}/huge`],
    [{ oidcDiscoveryUrl: `${keyUrl}/no-jwks-uri` }, 'oidcDiscoveryUrl', `${keyUrl}/no-jwks-uri`],
    [{ jwksUrl: 'http://127.0.0.1:1/jwks' }, 'jwksUrl', 'http://127.0.0.1:1/jwks'],
  ] as const) {
    const message = await expectGqlError(server, CREATE, { input: { name: 'Broken', slug: 'broken', ...input } }, 'BAD_USER_INPUT', field);
    assert.match(message, /could not fetch keys/);
    assert.ok(!message.includes(url) && !message.includes('127.0.0.1'), message);
  }
  assert.equal((await server.gql<{ federatedSource: null }>('{ federatedSource(slug: "broken") { id } }')).federatedSource, null, 'nothing was saved');
});

test('a discovery document for another issuer than the source\'s is refused on create and on update', async () => {
  const discovery = `${keyUrl}/.well-known/openid-configuration`;
  const message = await expectGqlError(server, CREATE, {
    input: { name: 'Wrong issuer', slug: 'wrong-issuer', issuer: 'https://someone.else.example', oidcDiscoveryUrl: discovery },
  }, 'BAD_USER_INPUT', 'oidcDiscoveryUrl');
  assert.match(message, /could not fetch keys: oidcDiscoveryUrl answered a discovery document for another issuer/);
  const source = await create({ name: 'Right issuer', slug: 'right-issuer', issuer: keyUrl, oidcDiscoveryUrl: discovery });
  assert.deepEqual(source.jwks?.keys.map((k) => k.kid), ['served-1']);
  await expectGqlError(server, UPDATE, { id: source.id, input: { issuer: 'https://someone.else.example' } }, 'BAD_USER_INPUT', 'oidcDiscoveryUrl');
});

test('raw JWKS must be a JWKS of public keys', async () => {
  for (const jwks of [{ nokeys: true }, [1, 2], 'text', { keys: [{ kid: 'x' }] }, { keys: [privateJwk] }, { keys: [{ kty: 'EC', crv: 'P-256' }] }]) {
    await expectGqlError(server, CREATE, { input: { name: 'Bad keys', slug: 'bad-keys', jwks } }, 'BAD_USER_INPUT', 'jwks');
  }
});

test('a source needs jwks, jwksUrl or oidcDiscoveryUrl; URLs must be URLs; name and slug are checked; slugs are unique', async () => {
  await expectGqlError(server, CREATE, { input: { name: 'Keyless', slug: 'keyless' } }, 'BAD_USER_INPUT', 'jwks');
  await expectGqlError(server, CREATE, { input: { name: 'x', slug: 'bad-url', jwksUrl: 'not a url' } }, 'BAD_USER_INPUT', 'jwksUrl');
  await expectGqlError(server, CREATE, { input: { name: 'x', slug: 'bad-url', oidcDiscoveryUrl: 'file:///etc/passwd' } }, 'BAD_USER_INPUT', 'oidcDiscoveryUrl');
  await expectGqlError(server, CREATE, { input: { name: '', slug: 'no-name', jwks: rawJwks } }, 'BAD_USER_INPUT', 'name');
  await expectGqlError(server, CREATE, { input: { name: 'x', slug: 'Bad Slug', jwks: rawJwks } }, 'BAD_USER_INPUT', 'slug');
  await create({ name: 'Taken', slug: 'taken', jwks: rawJwks });
  await expectGqlError(server, CREATE, { input: { name: 'Taken again', slug: 'taken', jwks: rawJwks } }, 'CONFLICT', 'slug');
});

test('updateFederatedSource changes fields, fetches a new URL, and clears with null', async () => {
  const source = await create({ name: 'Upd', slug: 'upd', issuer: 'https://a.example', jwks: rawJwks });
  const moved = (await server.gql<{ updateFederatedSource: SourceData }>(UPDATE, {
    id: source.id, input: { name: 'Updated', issuer: null, audience: 'aud', jwksUrl: `${keyUrl}/jwks` },
  })).updateFederatedSource;
  assert.equal(moved.issuer, null);
  assert.equal(moved.audience, 'aud');
  assert.equal(moved.jwksUrl, `${keyUrl}/jwks`);
  assert.deepEqual(moved.jwks?.keys.map((k) => k.kid), ['served-1'], 'with a URL, the keys in use are the fetched ones');
  assert.ok(moved.keysFetchedAt);
  // Back to raw keys: the URL goes, the fetched keys with it.
  const raw = (await server.gql<{ updateFederatedSource: SourceData }>(UPDATE, { id: source.id, input: { jwksUrl: null, jwks: rawJwks } })).updateFederatedSource;
  assert.equal(raw.jwksUrl, null);
  assert.deepEqual(raw.jwks?.keys.map((k) => k.kid), ['raw-1']);
  assert.equal(raw.keysFetchedAt, null);
  await expectGqlError(server, UPDATE, { id: source.id, input: { jwks: null } }, 'BAD_USER_INPUT', 'jwks');
  await expectGqlError(server, UPDATE, { id: source.id, input: { jwksUrl: `${keyUrl}/missing` } }, 'BAD_USER_INPUT', 'jwksUrl');
  await expectGqlError(server, UPDATE, { id: source.id, input: { name: ' ' } }, 'BAD_USER_INPUT', 'name');
  await expectGqlError(server, UPDATE, { id: 'missing', input: { name: 'x' } }, 'NOT_FOUND');
});

test('refreshing a source without a URL is BAD_USER_INPUT; a missing source is NOT_FOUND', async () => {
  const source = await create({ name: 'Raw only', slug: 'raw-only', jwks: rawJwks });
  await expectGqlError(server, REFRESH, { id: source.id }, 'BAD_USER_INPUT', 'jwksUrl');
  await expectGqlError(server, REFRESH, { id: 'missing' }, 'NOT_FOUND');
});

test('federatedSource(id|slug) and federatedSources find sources; a missing one is null', async () => {
  const source = await create({ name: 'Find me', slug: 'find-me', jwks: rawJwks });
  const data = await server.gql<{ a: { slug: string }; b: { id: string }; c: null; all: { id: string }[] }>(
    'query ($id: ID) { a: federatedSource(id: $id) { slug } b: federatedSource(slug: "find-me") { id } c: federatedSource(slug: "nope") { id } all: federatedSources { id } }',
    { id: source.id },
  );
  assert.equal(data.a.slug, 'find-me');
  assert.equal(data.b.id, source.id);
  assert.equal(data.c, null);
  assert.ok(data.all.some((s) => s.id === source.id));
});

test('Provider.federatedSources links sources; deleting a source unlinks it from providers', async () => {
  const source = await create({ name: 'Linked', slug: 'linked', jwks: rawJwks });
  const provider = (await server.gql<{ createProvider: { id: string; federatedSources: { slug: string }[] } }>(
    'mutation ($ids: [ID!]) { createProvider(input: { name: "P", slug: "fed-p", federatedSourceIds: $ids }) { id federatedSources { slug } } }', { ids: [source.id] },
  )).createProvider;
  assert.deepEqual(provider.federatedSources.map((s) => s.slug), ['linked']);
  assert.equal((await server.gql<{ deleteFederatedSource: boolean }>(DELETE, { id: source.id })).deleteFederatedSource, true);
  const after = await server.gql<{ provider: { federatedSources: unknown[] } }>('query ($id: ID) { provider(id: $id) { federatedSources { slug } } }', { id: provider.id });
  assert.deepEqual(after.provider.federatedSources, []);
  const stored = await server.server.services.store.providers.findOne({ id: provider.id });
  assert.deepEqual(stored?.federatedSourceIds, [], 'the id is gone from the provider, not just hidden');
  await expectGqlError(server, DELETE, { id: source.id }, 'NOT_FOUND');
  const ops = (await configEvents(server)).filter((e) => e.context.id === source.id).map((e) => e.context.operation).sort();
  assert.deepEqual(ops, ['createFederatedSource', 'deleteFederatedSource']);
});
