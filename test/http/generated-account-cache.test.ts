/**
 * Rule 3 (client_credentials with the client's own secret) keeps its generated service account in
 * a short process cache; an admin change on this process takes effect at once all the same.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { basic, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { seedMachineClient, seedMachineProvider } from '../helpers/seed.js';
import { clientIdentityKey } from '../../src/domain/federation/service-accounts.js';

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t?.stop();
});

async function tokenStatus(clientId: string, secret: string): Promise<number> {
  const response = await postForm(`${t.url}/application/o/token/`, { grant_type: 'client_credentials' }, { authorization: basic(clientId, secret) });
  return response.status;
}

test('a generated service account deactivated through the admin API is refused at once, and again usable when reactivated', async () => {
  const provider = await seedMachineProvider(t);
  const { clientId, clientSecret } = await seedMachineClient(t, provider);
  assert.equal(await tokenStatus(clientId, clientSecret!), 200);
  assert.equal(await tokenStatus(clientId, clientSecret!), 200); // now answered from the cache
  const account = await t.server.services.generatedAccounts.find(clientIdentityKey(provider.id, clientId));
  assert.ok(account);
  const off = await t.gql<{ updateUser: { isActive: boolean } }>(
    'mutation($id: ID!) { updateUser(id: $id, input: { isActive: false }) { isActive } }', { id: account.id });
  assert.equal(off.updateUser.isActive, false);
  assert.equal(await tokenStatus(clientId, clientSecret!), 400);
  await t.gql('mutation($id: ID!) { updateUser(id: $id, input: { isActive: true }) { isActive } }', { id: account.id });
  assert.equal(await tokenStatus(clientId, clientSecret!), 200);
});

test('a deleted generated service account is made afresh on the next request, not served from the cache, with the same id', async () => {
  const provider = await seedMachineProvider(t);
  const { clientId, clientSecret } = await seedMachineClient(t, provider);
  assert.equal(await tokenStatus(clientId, clientSecret!), 200);
  const key = clientIdentityKey(provider.id, clientId);
  const first = await t.server.services.generatedAccounts.find(key);
  assert.ok(first);
  await t.gql('mutation($id: ID!) { deleteUser(id: $id) }', { id: first.id });
  assert.equal(await t.server.services.store.users.findOne({ id: first.id }), null);
  assert.equal(await tokenStatus(clientId, clientSecret!), 200);
  const second = await t.server.services.store.users.findOne({ identityKey: key.value });
  assert.ok(second);
  // The id is derived from (provider, client): the account made again is the same sub (contract version 2).
  assert.equal(second.id, first.id);
  assert.ok(second.createdAt > first.createdAt);
});
