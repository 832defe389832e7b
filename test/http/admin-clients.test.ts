/** Admin API: clients. Secrets are returned once by createClient / rotateClientSecret and stored hashed. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { configEvents, expectGqlError } from '../helpers/admin.js';

let server: TestServer;
let providerId: string;
before(async () => {
  server = await startTestServer();
  const data = await server.gql<{ createProvider: { id: string } }>('mutation { createProvider(input: { name: "Clients", slug: "clients" }) { id } }');
  providerId = data.createProvider.id;
});
after(async () => {
  await server?.stop();
});

const CLIENT_FIELDS = 'id name clientId type grantTypes allowedScopes createdAt provider { id slug name }';
const CREATE = `mutation ($input: CreateClientInput!) { createClient(input: $input) { clientSecret client { ${CLIENT_FIELDS} } } }`;
const UPDATE = `mutation ($id: ID!, $input: UpdateClientInput!) { updateClient(id: $id, input: $input) { ${CLIENT_FIELDS} } }`;
const ROTATE = `mutation ($id: ID!) { rotateClientSecret(id: $id) { clientSecret client { id clientId } } }`;

interface ClientData { id: string; name: string; clientId: string; type: string; grantTypes: string[]; allowedScopes: string[]; provider: { id: string; slug: string } }

async function createClient(input: Record<string, unknown>): Promise<{ client: ClientData; clientSecret: string | null }> {
  return (await server.gql<{ createClient: { client: ClientData; clientSecret: string | null } }>(CREATE, { input: { providerId, ...input } })).createClient;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

test('a confidential client gets its secret once; the store keeps only its SHA-256', async () => {
  const { client, clientSecret } = await createClient({ name: 'M2M', type: 'CONFIDENTIAL', grantTypes: ['CLIENT_CREDENTIALS'], allowedScopes: ['read', 'write'] });
  assert.ok(clientSecret && clientSecret.length >= 32);
  assert.match(clientSecret, /^[A-Za-z0-9_-]+$/, 'URL-safe');
  assert.equal(client.type, 'CONFIDENTIAL');
  assert.deepEqual(client.grantTypes, ['CLIENT_CREDENTIALS']);
  assert.deepEqual(client.allowedScopes, ['read', 'write']);
  assert.equal(client.provider.id, providerId);
  const stored = await server.server.services.store.clients.findOne({ id: client.id });
  assert.equal(stored?.secretHash, sha256(clientSecret));
  assert.ok(!JSON.stringify(stored).includes(clientSecret));
  // No field of the schema reads it back.
  const { body } = await server.gqlRaw('query ($id: ID) { client(id: $id) { clientSecret } }', { id: client.id });
  assert.equal(body.errors?.[0]?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
});

test('a public client has no secret', async () => {
  const { client, clientSecret } = await createClient({ name: 'TV', type: 'PUBLIC', grantTypes: ['DEVICE_CODE', 'REFRESH_TOKEN'] });
  assert.equal(clientSecret, null);
  assert.equal(client.type, 'PUBLIC');
  await expectGqlError(server, ROTATE, { id: client.id }, 'BAD_USER_INPUT');
});

test('a fixed clientId is kept; a duplicate clientId is CONFLICT', async () => {
  const { client } = await createClient({ name: 'Fixed', type: 'PUBLIC', grantTypes: ['DEVICE_CODE'], clientId: 'fixed-client' });
  assert.equal(client.clientId, 'fixed-client');
  await expectGqlError(server, CREATE, { input: { providerId, name: 'Again', type: 'PUBLIC', grantTypes: ['DEVICE_CODE'], clientId: 'fixed-client' } }, 'CONFLICT', 'clientId');
});

test('client input validation: name, clientId characters, scopes without spaces, at least one grant type', async () => {
  const base = { providerId, name: 'v', type: 'PUBLIC', grantTypes: ['DEVICE_CODE'] };
  await expectGqlError(server, CREATE, { input: { ...base, name: ' ' } }, 'BAD_USER_INPUT', 'name');
  await expectGqlError(server, CREATE, { input: { ...base, clientId: 'tab\there' } }, 'BAD_USER_INPUT', 'clientId');
  await expectGqlError(server, CREATE, { input: { ...base, allowedScopes: ['read write'] } }, 'BAD_USER_INPUT', 'allowedScopes');
  await expectGqlError(server, CREATE, { input: { ...base, allowedScopes: ['quo"te'] } }, 'BAD_USER_INPUT', 'allowedScopes');
  await expectGqlError(server, CREATE, { input: { ...base, grantTypes: [] } }, 'BAD_USER_INPUT', 'grantTypes');
  // An unknown enum value is refused by GraphQL itself.
  const { body } = await server.gqlRaw(CREATE, { input: { ...base, grantTypes: ['IMPLICIT'] } });
  assert.equal(body.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
});

test('createClient for a missing provider is NOT_FOUND', async () => {
  await expectGqlError(server, CREATE, { input: { providerId: 'missing', name: 'x', type: 'PUBLIC', grantTypes: ['DEVICE_CODE'] } }, 'NOT_FOUND');
});

test('updateClient changes name, grant types and scopes, and validates them', async () => {
  const { client } = await createClient({ name: 'Before', type: 'CONFIDENTIAL', grantTypes: ['CLIENT_CREDENTIALS'] });
  const updated = (await server.gql<{ updateClient: ClientData }>(UPDATE, {
    id: client.id, input: { name: 'After', grantTypes: ['CLIENT_CREDENTIALS', 'PASSWORD'], allowedScopes: ['a:b'] },
  })).updateClient;
  assert.equal(updated.name, 'After');
  assert.deepEqual(updated.grantTypes, ['CLIENT_CREDENTIALS', 'PASSWORD']);
  assert.deepEqual(updated.allowedScopes, ['a:b']);
  assert.equal(updated.clientId, client.clientId);
  await expectGqlError(server, UPDATE, { id: client.id, input: { allowedScopes: ['a b'] } }, 'BAD_USER_INPUT', 'allowedScopes');
  await expectGqlError(server, UPDATE, { id: client.id, input: { name: '' } }, 'BAD_USER_INPUT', 'name');
  await expectGqlError(server, UPDATE, { id: 'missing', input: { name: 'x' } }, 'NOT_FOUND');
});

test('rotateClientSecret returns a new secret once and the old one stops matching', async () => {
  const { client, clientSecret } = await createClient({ name: 'Rotate', type: 'CONFIDENTIAL', grantTypes: ['CLIENT_CREDENTIALS'] });
  const rotated = (await server.gql<{ rotateClientSecret: { clientSecret: string; client: { id: string } } }>(ROTATE, { id: client.id })).rotateClientSecret;
  assert.ok(rotated.clientSecret);
  assert.notEqual(rotated.clientSecret, clientSecret);
  const stored = await server.server.services.store.clients.findOne({ id: client.id });
  assert.equal(stored?.secretHash, sha256(rotated.clientSecret));
  await expectGqlError(server, ROTATE, { id: 'missing' }, 'NOT_FOUND');
});

test('clients(providerId) lists a provider\'s clients; client(id|clientId) finds one; a missing one is null', async () => {
  const { client } = await createClient({ name: 'Listed', type: 'PUBLIC', grantTypes: ['DEVICE_CODE'] });
  const data = await server.gql<{ all: { id: string }[]; mine: { id: string }[]; none: unknown[]; byId: { name: string }; byClientId: { name: string }; missing: null }>(
    `query ($pid: ID, $id: ID, $cid: String) { all: clients { id } mine: clients(providerId: $pid) { id } none: clients(providerId: "nope") { id }
      byId: client(id: $id) { name } byClientId: client(clientId: $cid) { name } missing: client(clientId: "nope") { name } }`,
    { pid: providerId, id: client.id, cid: client.clientId },
  );
  assert.ok(data.all.some((c) => c.id === client.id));
  assert.ok(data.mine.some((c) => c.id === client.id));
  assert.deepEqual(data.none, []);
  assert.equal(data.byId.name, 'Listed');
  assert.equal(data.byClientId.name, 'Listed');
  assert.equal(data.missing, null);
});

test('deleteClient removes it; deleting it again is NOT_FOUND', async () => {
  const { client } = await createClient({ name: 'Gone', type: 'PUBLIC', grantTypes: ['DEVICE_CODE'] });
  const data = await server.gql<{ deleteClient: boolean }>('mutation ($id: ID!) { deleteClient(id: $id) }', { id: client.id });
  assert.equal(data.deleteClient, true);
  assert.equal((await server.gql<{ client: null }>('query ($id: ID) { client(id: $id) { id } }', { id: client.id })).client, null);
  await expectGqlError(server, 'mutation ($id: ID!) { deleteClient(id: $id) }', { id: client.id }, 'NOT_FOUND');
});

test('client mutations write CONFIG_CHANGED events that never hold the secret', async () => {
  const { client, clientSecret } = await createClient({ name: 'Audit', type: 'CONFIDENTIAL', grantTypes: ['CLIENT_CREDENTIALS'] });
  const rotated = (await server.gql<{ rotateClientSecret: { clientSecret: string } }>(ROTATE, { id: client.id })).rotateClientSecret;
  await server.gql(UPDATE, { id: client.id, input: { name: 'Audit 2' } });
  await server.gql('mutation ($id: ID!) { deleteClient(id: $id) }', { id: client.id });
  const events = (await configEvents(server)).filter((e) => e.context.id === client.id);
  assert.deepEqual(events.map((e) => e.context.operation).sort(), ['createClient', 'deleteClient', 'rotateClientSecret', 'updateClient']);
  const text = JSON.stringify(events);
  assert.ok(!text.includes(clientSecret!) && !text.includes(rotated.clientSecret));
  assert.ok(events.every((e) => e.username === 'admin'));
});
