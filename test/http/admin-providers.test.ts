/** Admin API: providers, their device-flow settings, federation links and clients (contract: admin.graphql). */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { configEvents, expectGqlError } from '../helpers/admin.js';

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server?.stop();
});

const PROVIDER_FIELDS = `id name slug issuer accessTokenLifetimeSeconds refreshTokenLifetimeSeconds signingAlgorithm createdAt
  deviceFlow { userCodeCharset userCodeAlphabet userCodeLength codeLifetimeSeconds pollIntervalSeconds verificationUri requirePkce }
  federatedSources { id slug } federatedProviders { id slug } clients { id clientId }`;

interface ProviderData {
  id: string; name: string; slug: string; issuer: string; accessTokenLifetimeSeconds: number; refreshTokenLifetimeSeconds: number;
  signingAlgorithm: string; createdAt: string;
  deviceFlow: { userCodeCharset: string; userCodeAlphabet: string | null; userCodeLength: number; codeLifetimeSeconds: number; pollIntervalSeconds: number; verificationUri: string | null; requirePkce: boolean };
  federatedSources: { id: string; slug: string }[]; federatedProviders: { id: string; slug: string }[]; clients: { id: string; clientId: string }[];
}

const CREATE = `mutation ($input: CreateProviderInput!) { createProvider(input: $input) { ${PROVIDER_FIELDS} } }`;
const UPDATE = `mutation ($id: ID!, $input: UpdateProviderInput!) { updateProvider(id: $id, input: $input) { ${PROVIDER_FIELDS} } }`;

async function createProvider(input: Record<string, unknown>): Promise<ProviderData> {
  return (await server.gql<{ createProvider: ProviderData }>(CREATE, { input })).createProvider;
}

test('createProvider applies the contract defaults and builds the issuer from the public URL', async () => {
  const p = await createProvider({ name: 'Defaults', slug: 'defaults' });
  assert.equal(p.issuer, `${server.server.services.config.publicUrl}/application/o/defaults/`);
  assert.equal(p.accessTokenLifetimeSeconds, 600);
  assert.equal(p.refreshTokenLifetimeSeconds, 2_592_000);
  assert.equal(p.signingAlgorithm, 'RS256');
  assert.deepEqual(p.deviceFlow, {
    userCodeCharset: 'BASE20', userCodeAlphabet: null, userCodeLength: 8, codeLifetimeSeconds: 600, pollIntervalSeconds: 5, verificationUri: null, requirePkce: false,
  });
  assert.deepEqual(p.clients, []);
  assert.ok(!Number.isNaN(Date.parse(p.createdAt)));
});

test('provider(id) and provider(slug) find it; a missing one is null, not an error', async () => {
  const p = await createProvider({ name: 'Lookup', slug: 'lookup' });
  const data = await server.gql<Record<string, { slug: string } | null>>(
    `query ($id: ID, $slug: String) { byId: provider(id: $id) { slug } bySlug: provider(slug: $slug) { slug } missing: provider(slug: "nope") { slug } missingId: provider(id: "00000000-0000-0000-0000-000000000000") { slug } }`,
    { id: p.id, slug: 'lookup' },
  );
  assert.equal(data.byId?.slug, 'lookup');
  assert.equal(data.bySlug?.slug, 'lookup');
  assert.equal(data.missing, null);
  assert.equal(data.missingId, null);
  const list = await server.gql<{ providers: { slug: string }[] }>('{ providers { slug } }');
  assert.ok(list.providers.some((x) => x.slug === 'lookup'));
});

test('a slug outside [a-z0-9-] is BAD_USER_INPUT naming slug', async () => {
  for (const slug of ['Upper', 'with space', 'under_score', '', 'a'.repeat(65)]) {
    await expectGqlError(server, CREATE, { input: { name: 'x', slug } }, 'BAD_USER_INPUT', 'slug');
  }
});

test('an empty name is BAD_USER_INPUT naming name', async () => {
  await expectGqlError(server, CREATE, { input: { name: '  ', slug: 'empty-name' } }, 'BAD_USER_INPUT', 'name');
});

test('a duplicate slug is CONFLICT', async () => {
  await createProvider({ name: 'Dup', slug: 'dup' });
  await expectGqlError(server, CREATE, { input: { name: 'Dup again', slug: 'dup' } }, 'CONFLICT', 'slug');
});

test('token lifetimes must be positive and bounded', async () => {
  for (const [field, value] of [
    ['accessTokenLifetimeSeconds', 0], ['accessTokenLifetimeSeconds', 86_401], ['accessTokenLifetimeSeconds', -5],
    ['refreshTokenLifetimeSeconds', 0], ['refreshTokenLifetimeSeconds', 31_536_001],
  ] as const) {
    await expectGqlError(server, CREATE, { input: { name: 'x', slug: `lt-${field.length}-${value}`.replace('--', '-m'), [field]: value } }, 'BAD_USER_INPUT', field);
  }
});

test('device-flow intervals and lifetimes outside the contract ranges are BAD_USER_INPUT', async () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ pollIntervalSeconds: 0 }, 'deviceFlow.pollIntervalSeconds'],
    [{ pollIntervalSeconds: 61 }, 'deviceFlow.pollIntervalSeconds'],
    [{ codeLifetimeSeconds: 0 }, 'deviceFlow.codeLifetimeSeconds'],
    [{ codeLifetimeSeconds: 86_401 }, 'deviceFlow.codeLifetimeSeconds'],
    [{ userCodeLength: 3 }, 'deviceFlow.userCodeLength'],
    [{ userCodeLength: 33 }, 'deviceFlow.userCodeLength'],
    [{ verificationUri: 'not a url' }, 'deviceFlow.verificationUri'],
    [{ verificationUri: 'ftp://example.com/device' }, 'deviceFlow.verificationUri'],
    [{ userCodeCharset: 'CUSTOM' }, 'deviceFlow.userCodeAlphabet'],
    [{ userCodeCharset: 'CUSTOM', userCodeAlphabet: 'AAB' }, 'deviceFlow.userCodeAlphabet'],
  ];
  for (const [deviceFlow, field] of cases) {
    await expectGqlError(server, CREATE, { input: { name: 'x', slug: 'df-range', deviceFlow } }, 'BAD_USER_INPUT', field);
  }
});

test('user-code settings with less than 20 bits of entropy are refused, and the message says the bits (RFC 8628 §5.1)', async () => {
  // 5 digits: 5 × log2(10) = 16.6 bits.
  const message = await expectGqlError(server, CREATE, {
    input: { name: 'Weak', slug: 'weak', deviceFlow: { userCodeCharset: 'NUMERIC', userCodeLength: 5 } },
  }, 'BAD_USER_INPUT', 'deviceFlow.userCodeLength');
  assert.match(message, /16\.6 bits/);
  assert.match(message, /20 bits/);
  // 6 digits: 19.9 bits, still too few; 7 digits: 23.3 bits, fine.
  await expectGqlError(server, CREATE, { input: { name: 'Weak', slug: 'weak', deviceFlow: { userCodeCharset: 'NUMERIC', userCodeLength: 6 } } }, 'BAD_USER_INPUT', 'deviceFlow.userCodeLength');
  const ok = await createProvider({ name: 'Digits', slug: 'digits', deviceFlow: { userCodeCharset: 'NUMERIC', userCodeLength: 7 } });
  assert.equal(ok.deviceFlow.userCodeLength, 7);
});

test('updateProvider changes only what it is given and validates the merged device-flow settings', async () => {
  const p = await createProvider({ name: 'Upd', slug: 'upd', deviceFlow: { requirePkce: true } });
  const updated = (await server.gql<{ updateProvider: ProviderData }>(UPDATE, {
    id: p.id, input: { name: 'Updated', accessTokenLifetimeSeconds: 120, deviceFlow: { pollIntervalSeconds: 10, verificationUri: 'https://example.com/activate' } },
  })).updateProvider;
  assert.equal(updated.name, 'Updated');
  assert.equal(updated.slug, 'upd');
  assert.equal(updated.accessTokenLifetimeSeconds, 120);
  assert.equal(updated.deviceFlow.pollIntervalSeconds, 10);
  assert.equal(updated.deviceFlow.requirePkce, true, 'settings not given are kept');
  assert.equal(updated.deviceFlow.verificationUri, 'https://example.com/activate');
  await expectGqlError(server, UPDATE, { id: p.id, input: { deviceFlow: { userCodeCharset: 'NUMERIC', userCodeLength: 4 } } }, 'BAD_USER_INPUT', 'deviceFlow.userCodeLength');
  await expectGqlError(server, UPDATE, { id: p.id, input: { name: '' } }, 'BAD_USER_INPUT', 'name');
});

test('changing the signing algorithm publishes a key of the new algorithm', async () => {
  const p = await createProvider({ name: 'Alg', slug: 'alg' });
  const updated = (await server.gql<{ updateProvider: ProviderData }>(UPDATE, { id: p.id, input: { signingAlgorithm: 'ES256' } })).updateProvider;
  assert.equal(updated.signingAlgorithm, 'ES256');
  const jwks = (await (await fetch(`${server.url}/application/o/alg/jwks/`)).json()) as { keys: { alg?: string; kty: string }[] };
  assert.ok(jwks.keys.some((k) => k.kty === 'EC'));
});

test('updateProvider and deleteProvider of a missing provider are NOT_FOUND', async () => {
  const missing = '00000000-0000-0000-0000-000000000000';
  await expectGqlError(server, UPDATE, { id: missing, input: { name: 'x' } }, 'NOT_FOUND');
  await expectGqlError(server, 'mutation ($id: ID!) { deleteProvider(id: $id) }', { id: missing }, 'NOT_FOUND');
});

test('federatedProviders links other providers; a provider cannot federate with itself or a missing one', async () => {
  const a = await createProvider({ name: 'Fed A', slug: 'fed-a' });
  const b = await createProvider({ name: 'Fed B', slug: 'fed-b', federatedProviderIds: [a.id] });
  assert.deepEqual(b.federatedProviders.map((p) => p.slug), ['fed-a']);
  await expectGqlError(server, UPDATE, { id: b.id, input: { federatedProviderIds: [b.id] } }, 'BAD_USER_INPUT', 'federatedProviderIds');
  await expectGqlError(server, CREATE, { input: { name: 'x', slug: 'fed-x', federatedProviderIds: ['nope'] } }, 'BAD_USER_INPUT', 'federatedProviderIds');
  await expectGqlError(server, CREATE, { input: { name: 'x', slug: 'fed-y', federatedSourceIds: ['nope'] } }, 'BAD_USER_INPUT', 'federatedSourceIds');
  // Deleting A unlinks it from B.
  await server.gql('mutation ($id: ID!) { deleteProvider(id: $id) }', { id: a.id });
  const after = await server.gql<{ provider: ProviderData }>(`query ($id: ID) { provider(id: $id) { ${PROVIDER_FIELDS} } }`, { id: b.id });
  assert.deepEqual(after.provider.federatedProviders, []);
});

test('deleting a provider deletes its clients (documented on deleteProvider), so no client dangles', async () => {
  const p = await createProvider({ name: 'Doomed', slug: 'doomed' });
  const created = await server.gql<{ createClient: { client: { id: string; clientId: string } } }>(
    'mutation ($input: CreateClientInput!) { createClient(input: $input) { client { id clientId } } }',
    { input: { providerId: p.id, name: 'c', type: 'PUBLIC', grantTypes: ['DEVICE_CODE'] } },
  );
  const { id, clientId } = created.createClient.client;
  const deleted = await server.gql<{ deleteProvider: boolean }>('mutation ($id: ID!) { deleteProvider(id: $id) }', { id: p.id });
  assert.equal(deleted.deleteProvider, true);
  const data = await server.gql<{ client: unknown; byClientId: unknown; provider: unknown }>(
    'query ($id: ID, $clientId: String, $pid: ID) { client(id: $id) { id } byClientId: client(clientId: $clientId) { id } provider(id: $pid) { id } }',
    { id, clientId, pid: p.id },
  );
  assert.equal(data.client, null);
  assert.equal(data.byClientId, null);
  assert.equal(data.provider, null);
  assert.equal(await server.server.services.store.clients.count({ providerId: p.id }), 0);
  assert.equal(await server.server.services.store.signingKeys.count({ providerId: p.id }), 0);
  const sdl = await server.gql<{ __schema: { mutationType: { fields: { name: string; description: string | null }[] } } }>(
    '{ __schema { mutationType { fields { name description } } } }',
  );
  const description = sdl.__schema.mutationType.fields.find((f) => f.name === 'deleteProvider')?.description ?? '';
  assert.match(description, /clients/);
});

test('every provider mutation writes a CONFIG_CHANGED event naming the admin', async () => {
  const p = await createProvider({ name: 'Audited', slug: 'audited' });
  await server.gql(UPDATE, { id: p.id, input: { name: 'Audited 2' } });
  await server.gql('mutation ($id: ID!) { deleteProvider(id: $id) }', { id: p.id });
  for (const operation of ['createProvider', 'updateProvider', 'deleteProvider']) {
    const events = (await configEvents(server, operation)).filter((e) => e.context.providerId === p.id);
    assert.equal(events.length, 1, operation);
    if (operation === 'updateProvider') assert.deepEqual(events[0]!.context.fields, ['name'], 'names only the fields the admin set');
    assert.equal(events[0]!.username, 'admin');
    assert.ok(events[0]!.requestId);
  }
});

test('providers { clients { provider { name } } } costs a bounded number of store calls however many providers and clients (DataLoader)', async () => {
  const store = server.server.services.store;
  for (let i = 0; i < 6; i++) {
    const p = await createProvider({ name: `N+1 ${i}`, slug: `nplus1-${i}` });
    for (let j = 0; j < 3; j++) {
      await server.gql('mutation ($input: CreateClientInput!) { createClient(input: $input) { client { id } } }', {
        input: { providerId: p.id, name: `c${j}`, type: 'PUBLIC', grantTypes: ['DEVICE_CODE'] },
      });
    }
  }
  const calls: string[] = [];
  const originals: [object, string, unknown][] = [];
  for (const collection of ['providers', 'clients', 'federatedSources', 'users'] as const) {
    const target = store[collection] as unknown as Record<string, (...args: unknown[]) => unknown>;
    for (const method of ['find', 'findOne', 'count']) {
      const original = target[method]!;
      originals.push([target, method, original]);
      target[method] = function (this: unknown, ...args: unknown[]) {
        calls.push(`${collection}.${method}`);
        return original.apply(this, args);
      };
    }
  }
  let data: { providers: { clients: { provider: { name: string } }[] }[] };
  try {
    calls.length = 0;
    data = await server.gql('{ providers { name clients { clientId provider { name } } federatedSources { slug } federatedProviders { name } } }');
  } finally {
    for (const [target, method, original] of originals) (target as Record<string, unknown>)[method] = original;
  }
  const clientCount = data.providers.reduce((n, p) => n + p.clients.length, 0);
  assert.ok(clientCount >= 18);
  // providers.find (list) + clients.find (one batch) + providers.find (one batch for client.provider), federatedProviders at most one more.
  assert.ok(calls.length <= 5, `store calls: ${calls.join(', ')}`);
  assert.equal(calls.filter((c) => c === 'clients.find').length, 1, calls.join(', '));
});
