/**
 * Keyset pages over the real stores (embedded always; MongoDB when one is found, see
 * test/helpers/mongo.ts): whatever the spread of createdAt (ties in one millisecond, years apart,
 * slightly in the future), paging visits every record once, in order; user search is literal.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { openEmbeddedStore } from '../../src/store/sqlite/sqlite-store.js';
import { openMongoStore } from '../../src/store/mongo/mongo-store.js';
import type { StoreAdapter } from '../../src/store/ports.js';
import type { AuditEvent, User } from '../../src/domain/model.js';
import { keysetPage, type Page, type PagePosition } from '../../src/domain/pagination.js';
import { UserService } from '../../src/domain/users.js';
import { findTestMongo, mongoUriWithDatabase, uniqueDatabaseName, type TestMongo } from '../helpers/mongo.js';

const MONGO_SKIP_REASON = 'MongoDB skipped (no TESSERA_TEST_MONGODB_URI and no mongod on PATH)';

function suite(name: string, open: () => Promise<{ store: StoreAdapter; cleanup: () => Promise<void> } | null>) {
  describe(name, () => {
    let store: StoreAdapter;
    let cleanup: () => Promise<void> = async () => {};
    let skip = false;
    const events: AuditEvent[] = [];

    before(async () => {
      const opened = await open();
      if (!opened) {
        skip = true;
        return;
      }
      ({ store, cleanup } = opened);
      const now = Date.now();
      const times = [
        now + 5_000, now, now, now, now - 1, now - 999, now - 1_000, now - 1_001, now - 60_000, now - 3_600_000,
        now - 86_400_000 * 400, now - 86_400_000 * 400, now - 86_400_000 * 365 * 20, 1_000, 0,
      ];
      for (const [i, t] of times.entries()) {
        for (let copy = 0; copy < (i % 3) + 1; copy++) {
          const event: AuditEvent = { id: randomUUID(), action: copy % 2 ? 'A' : 'B', requestId: null, clientId: null, username: null, context: { i }, createdAt: new Date(t) };
          events.push(event);
          await store.events.insert(event);
        }
      }
    });
    after(async () => {
      if (store) await store.close();
      await cleanup();
    });

    function expected(order: 1 | -1, action?: string): string[] {
      return events
        .filter((e) => !action || e.action === action)
        .sort((a, b) => order * (a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)))
        .map((e) => e.id);
    }

    async function pageAll(first: number, order: 1 | -1, action?: string): Promise<string[]> {
      const seen: string[] = [];
      let cursor: PagePosition | null = null;
      for (let guard = 0; guard < 1000; guard++) {
        const page: Page<AuditEvent> = await keysetPage(store.events, action ? { action } : {}, { first, after: cursor }, order);
        seen.push(...page.items.map((e) => e.id));
        if (!page.hasNextPage) return seen;
        const last = page.items.at(-1)!;
        cursor = { createdAt: last.createdAt, id: last.id };
      }
      throw new Error('paging did not end');
    }

    test('newest-first pages visit every record once, in (createdAt, id) order, for any page size', async (t) => {
      if (skip) return t.skip(MONGO_SKIP_REASON);
      for (const first of [1, 2, 3, 5, 50]) assert.deepEqual(await pageAll(first, -1), expected(-1), `first ${first}`);
    });

    test('oldest-first pages visit every record once, in order', async (t) => {
      if (skip) return t.skip(MONGO_SKIP_REASON);
      for (const first of [1, 4, 50]) assert.deepEqual(await pageAll(first, 1), expected(1), `first ${first}`);
    });

    test('a filter narrows the pages without losing records', async (t) => {
      if (skip) return t.skip(MONGO_SKIP_REASON);
      assert.deepEqual(await pageAll(2, -1, 'A'), expected(-1, 'A'));
      assert.deepEqual(await pageAll(3, 1, 'B'), expected(1, 'B'));
    });

    test('first: 0 answers no records but says whether there are any', async (t) => {
      if (skip) return t.skip(MONGO_SKIP_REASON);
      const page = await keysetPage(store.events, {}, { first: 0, after: null }, -1);
      assert.deepEqual(page.items, []);
      assert.equal(page.hasNextPage, true);
    });

    test('user search is a literal, case-insensitive substring of username, name or email, combined with type and pages', async (t) => {
      if (skip) return t.skip(MONGO_SKIP_REASON);
      const users = new UserService(store);
      const made: User[] = [];
      for (const [username, name, email] of [
        ['a.b', 'Ann (admin)', 'ann@example.com'], ['axb', null, null], ['c+d', 'Needle', null], ['e', null, 'NEEDLE@example.org'], ['f', '.*', null],
      ] as const) made.push(await users.create({ username, name, email }));
      const names = async (search: string, type: 'INTERNAL' | 'SERVICE_ACCOUNT' | null = null) =>
        (await users.listPage({ search, type }, { first: 50, after: null })).items.map((u) => u.username).sort();
      assert.deepEqual(await names('a.b'), ['a.b']);
      assert.deepEqual(await names('(admin)'), ['a.b']);
      assert.deepEqual(await names('c+d'), ['c+d']);
      assert.deepEqual(await names('needle'), ['c+d', 'e']);
      assert.deepEqual(await names('.*'), ['f']);
      assert.deepEqual(await names('needle', 'SERVICE_ACCOUNT'), []);
      assert.equal(await users.count({ search: 'example' }), 2);
      const first = await users.listPage({ search: 'needle' }, { first: 1, after: null });
      assert.equal(first.hasNextPage, true);
      const second = await users.listPage({ search: 'needle' }, { first: 1, after: { createdAt: first.items[0]!.createdAt, id: first.items[0]!.id } });
      assert.equal(second.hasNextPage, false);
      assert.notEqual(second.items[0]!.id, first.items[0]!.id);
    });
  });
}

suite('embedded store', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-pagination-'));
  return { store: await openEmbeddedStore(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

let mongo: TestMongo | null = null;
suite('MongoDB', async () => {
  mongo = await findTestMongo();
  if (!mongo) return null;
  const store = await openMongoStore(mongoUriWithDatabase(mongo.uri, uniqueDatabaseName('tessera_pages')));
  return { store, cleanup: async () => mongo?.stop() };
});
