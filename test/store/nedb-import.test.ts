/**
 * Upgrading from the NeDB embedded store: a data dir written by that release (test/fixtures/nedb-v1,
 * made by its make-fixture.mjs with the release's own store) is imported into tessera.db once at
 * start, every collection and the audit log, and its datafiles are moved aside.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openEmbeddedStore } from '../../src/store/sqlite/sqlite-store.js';
import { ConflictError } from '../../src/store/index.js';
import { makeUser } from './contract.js';
import { withTempDir } from '../helpers/temp-dir.js';

// dist/test/store → the fixture in the source tree.
const FIXTURE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/nedb-v1/datadir');

async function withFixture(fn: (dir: string) => Promise<void>): Promise<void> {
  await withTempDir('tessera-import-', async (dir) => {
    cpSync(FIXTURE, dir, { recursive: true });
    await fn(dir);
  });
}

/** Live records per collection in the fixture (make-fixture.mjs): deleted and expired ones are not. */
const EXPECTED: Record<string, number> = {
  providers: 1, clients: 1, users: 49, appPasswords: 1, signingKeys: 1, federatedSources: 1, deviceAuthorizations: 1,
  refreshTokens: 1, revokedTokens: 1, events: 300, expressionPolicies: 1, policyBindings: 1, sourcePropertyMappings: 1, scopeMappings: 1,
};

test('a NeDB data dir of the previous release is imported at start, every collection, and moved aside', async () => {
  await withFixture(async (dir) => {
    const store = await openEmbeddedStore(dir);
    try {
      for (const [name, count] of Object.entries(EXPECTED)) {
        assert.equal(await (store as unknown as Record<string, { count(f: object): Promise<number> }>)[name]!.count({}), count, name);
      }
      // The last line of a record wins, tombstones delete, JSON fields and Dates come back as they were.
      assert.equal((await store.users.findOne({ id: 'user-1' }))?.name, 'Renamed');
      assert.equal((await store.users.findOne({ id: 'user-3' }))?.isActive, false, 'a line appended after the last compaction');
      assert.equal(await store.users.findOne({ id: 'user-2' }), null);
      const user = await store.users.findOne({ username: 'user-5' });
      assert.deepEqual(user?.attributes, { 'kubernetes.io': { ns: 'n5' }, $ne: 5 });
      assert.equal(user?.createdAt.getTime(), Date.parse('2026-01-01T00:00:05.000Z'));
      assert.ok((await store.users.findOne({ id: 'user-49' }))?.expiresAt instanceof Date);
      const device = await store.deviceAuthorizations.findOne({ userCode: 'ABCDEFGH' });
      assert.equal(device?.status, 'approved');
      assert.ok(device?.decidedAt instanceof Date);
      assert.deepEqual((await store.signingKeys.findOne({ id: 'key-1' }))?.publicJwk, { kty: 'EC', crv: 'P-256', x: 'x', y: 'y', kid: 'key-1' });
      assert.deepEqual((await store.federatedSources.findOne({ slug: 'github' }))?.jwks, { keys: [] });
      assert.equal((await store.refreshTokens.findOne({ tokenHash: 'th-1' }))?.familyId, 'family-1');
      assert.equal((await store.events.findOne({ requestId: 'req-7' }))?.id, 'event-7');
      assert.deepEqual((await store.events.findOne({ id: 'event-8' }))?.context, { i: 8, 'a.b': { $in: [1] } });
      assert.equal(await store.events.findOne({ id: 'event-0' }), null);
      assert.ok(await store.events.findOne({ id: 'event-late' }));
      // The unique keys hold over imported records.
      await assert.rejects(store.users.insert(makeUser({ username: 'user-0' })), ConflictError);
      await store.users.insert(makeUser({ username: 'after-import' }));
    } finally {
      await store.close();
    }
    assert.equal(readdirSync(dir).filter((file) => file.endsWith('.db') && file !== 'tessera.db').length, 0, 'no NeDB file is left in place');
    const aside = readdirSync(dir).filter((file) => file.startsWith('nedb-imported-'));
    assert.equal(aside.length, 1);
    assert.equal(readdirSync(path.join(dir, aside[0]!)).filter((file) => file.endsWith('.db')).length, Object.keys(EXPECTED).length);

    // Imported once: a restart finds the records (and the one written since) and imports nothing again.
    const again = await openEmbeddedStore(dir);
    try {
      assert.equal(await again.users.count({}), 50);
      assert.equal(await again.events.count({}), 300);
    } finally {
      await again.close();
    }
  });
});

test('a half-written last line (a kill -9 during an append) is skipped; a mostly unreadable file stops the start', async () => {
  await withFixture(async (dir) => {
    appendFileSync(path.join(dir, 'users.db'), '{"_id":"user-torn","username":"to');
    const store = await openEmbeddedStore(dir);
    try {
      assert.equal(await store.users.count({}), 49);
    } finally {
      await store.close();
    }
  });
  await withFixture(async (dir) => {
    writeFileSync(path.join(dir, 'clients.db'), 'not json\nnor this\n{"_id":"c","clientId":"c"}\n');
    await assert.rejects(openEmbeddedStore(dir), /clients\.db: 2 of 3 lines are unreadable/);
    assert.ok(existsSync(path.join(dir, 'clients.db')), 'left in place, not half-imported');
    assert.ok(existsSync(path.join(dir, 'users.db')));
  });
});
