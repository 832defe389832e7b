/**
 * Upgrading from round 1, where rule 3's generated accounts were found by name: at start-up each
 * such account whose name and attributes name exactly one (provider, client) pair is keyed by that
 * identity and keeps working as before (same id, so the same sub; its admin flag); one whose
 * attributes name two identities (reached through a colliding name) is never used again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeJwt } from 'jose';
import { basic, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { seedMachineClient, seedMachineProvider, unique } from '../helpers/seed.js';
import type { User } from '../../src/domain/model.js';
import { withTempDir } from '../helpers/temp-dir.js';

function roundOneAccount(username: string, attributes: Record<string, unknown>): User {
  const now = new Date();
  return {
    id: crypto.randomUUID(), username, name: null, email: null, type: 'GENERATED_SERVICE_ACCOUNT', isActive: true, isAdmin: true,
    attributes, passwordHash: null, expiresAt: null, createdAt: now, updatedAt: now,
  };
}

async function rule3Sub(t: TestServer, clientId: string, secret: string): Promise<string> {
  const response = await postForm(`${t.url}/application/o/token/`, { grant_type: 'client_credentials' }, { authorization: basic(clientId, secret) });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return String(decodeJwt(String(response.body.access_token)).sub);
}

test("round 1's rule-3 accounts are keyed at start-up: the unambiguous one is kept, the ambiguous one is not used", async () => {
  await withTempDir('tessera-migration-', async (dataDir) => {
    let t = await startTestServer({}, dataDir);
    const provider = await seedMachineProvider(t, { slug: unique('machines') });
    const kept = await seedMachineClient(t, provider);
    const collided = await seedMachineClient(t, provider);
    const keptAccount = roundOneAccount(`${provider.slug}-${kept.clientId}-client_credentials`, { providerId: provider.id, clientId: kept.clientId });
    // A source with the provider's slug reached this one in round 1 and merged its attributes in.
    const collidedAccount = roundOneAccount(`${provider.slug}-${collided.clientId}-client_credentials`, {
      providerId: provider.id, clientId: collided.clientId, federatedSourceId: crypto.randomUUID(), iss: null, sub: `${collided.clientId}-client_credentials`,
    });
    await t.server.services.store.users.insert(keptAccount);
    await t.server.services.store.users.insert(collidedAccount);
    await t.stop();

    t = await startTestServer({}, dataDir);
    try {
      const migrated = await t.server.services.store.users.findOne({ id: keptAccount.id });
      assert.ok(migrated?.identityKey, 'the unambiguous account has its key');
      assert.equal(await rule3Sub(t, kept.clientId, kept.clientSecret!), keptAccount.id, 'the same account, so the same sub');
      const asAdmin = await postForm(`${t.url}/application/o/token/`, { grant_type: 'client_credentials' }, { authorization: basic(kept.clientId, kept.clientSecret!) });
      const account = await t.server.services.store.users.findOne({ id: String(decodeJwt(String(asAdmin.body.access_token)).sub) });
      assert.equal(account?.isAdmin, true, 'its admin flag is kept');

      assert.equal((await t.server.services.store.users.findOne({ id: collidedAccount.id }))?.identityKey, undefined);
      const fresh = await rule3Sub(t, collided.clientId, collided.clientSecret!);
      assert.notEqual(fresh, collidedAccount.id);
      assert.equal((await t.server.services.store.users.findOne({ id: fresh }))?.isAdmin, false);
      // Idempotent: a second start changes nothing.
      assert.deepEqual(await t.server.services.generatedAccounts.migrateLegacyAccounts(), { migrated: 0, ambiguous: [collidedAccount.username] });
    } finally {
      await t.stop();
    }
  });
});
