/** Deleting a provider, client or federated source leaves no policy binding or mapping pointing at it. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { exportJWK, generateKeyPair } from 'jose';
import { startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(() => server.stop());

async function setUp(tag: string) {
  const { createProvider: provider } = await server.gql<{ createProvider: { id: string } }>(
    `mutation { createProvider(input: { name: "P ${tag}", slug: "cleanup-${tag}", signingAlgorithm: ES256 }) { id } }`);
  const { createClient: { client } } = await server.gql<{ createClient: { client: { id: string } } }>(
    `mutation($p: ID!) { createClient(input: { providerId: $p, name: "C", type: CONFIDENTIAL, grantTypes: [CLIENT_CREDENTIALS] }) { client { id } } }`, { p: provider.id });
  const { publicKey } = await generateKeyPair('ES256');
  const { createFederatedSource: source } = await server.gql<{ createFederatedSource: { id: string } }>(
    `mutation($jwks: JSON) { createFederatedSource(input: { name: "S", slug: "cleanup-src-${tag}", jwks: $jwks }) { id } }`,
    { jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }] } });
  const { createExpressionPolicy: policy } = await server.gql<{ createExpressionPolicy: { id: string } }>(
    `mutation { createExpressionPolicy(input: { name: "always ${tag}", expression: "true" }) { id } }`);
  for (const [targetType, targetId] of [['PROVIDER', provider.id], ['CLIENT', client.id]] as const) {
    await server.gql(`mutation($i: BindPolicyInput!) { bindPolicy(input: $i) { id } }`, { i: { policyId: policy.id, targetType, targetId } });
  }
  await server.gql(`mutation($p: ID!) { createScopeMapping(input: { providerId: $p, scope: "ns", name: "ns ${tag}", expression: "{\\"a\\": 1}" }) { id } }`, { p: provider.id });
  await server.gql(`mutation($s: ID!) { createSourcePropertyMapping(input: { federatedSourceId: $s, name: "m ${tag}", expression: "{\\"a\\": 1}" }) { id } }`, { s: source.id });
  return { provider, client, source, policy };
}

const store = () => server.server.services.store;

test('deleting a client removes its policy bindings, not the provider\'s', async () => {
  const { provider, client } = await setUp('client');
  await server.gql(`mutation($id: ID!) { deleteClient(id: $id) }`, { id: client.id });
  assert.equal(await store().policyBindings.count({ targetId: client.id }), 0);
  assert.equal(await store().policyBindings.count({ targetId: provider.id }), 1);
});

test('deleting a provider removes its bindings, its clients\' bindings and its scope mappings', async () => {
  const { provider, client } = await setUp('provider');
  await server.gql(`mutation($id: ID!) { deleteProvider(id: $id) }`, { id: provider.id });
  assert.equal(await store().policyBindings.count({ targetId: { $in: [provider.id, client.id] } }), 0);
  assert.equal(await store().scopeMappings.count({ providerId: provider.id }), 0);
});

test('deleting a federated source removes its property mappings', async () => {
  const { source } = await setUp('source');
  await server.gql(`mutation($id: ID!) { deleteFederatedSource(id: $id) }`, { id: source.id });
  assert.equal(await store().sourcePropertyMappings.count({ federatedSourceId: source.id }), 0);
});
