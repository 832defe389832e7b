/**
 * Keyset pages over the real embedded store: whatever the spread of createdAt (ties in one
 * millisecond, years apart, slightly in the future), paging visits every record once, in order.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { openEmbeddedStore } from '../../src/store/embedded/embedded-store.js';
import type { StoreAdapter } from '../../src/store/ports.js';
import type { AuditEvent } from '../../src/domain/model.js';
import { keysetPage, type Page, type PagePosition } from '../../src/domain/pagination.js';

let dir: string;
let store: StoreAdapter;
const events: AuditEvent[] = [];

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-pagination-'));
  store = await openEmbeddedStore(dir);
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
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

function expected(order: 1 | -1, action?: string): string[] {
  return events
    .filter((e) => !action || e.action === action)
    .sort((a, b) => order * (a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)))
    .map((e) => e.id);
}

async function pageAll(first: number, order: 1 | -1, action?: string): Promise<string[]> {
  const seen: string[] = [];
  let after: PagePosition | null = null;
  for (let guard = 0; guard < 1000; guard++) {
    const page: Page<AuditEvent> = await keysetPage(store.events, action ? { action } : {}, { first, after }, order);
    seen.push(...page.items.map((e) => e.id));
    if (!page.hasNextPage) return seen;
    const last = page.items.at(-1)!;
    after = { createdAt: last.createdAt, id: last.id };
  }
  throw new Error('paging did not end');
}

test('newest-first pages visit every record once, in (createdAt, id) order, for any page size', async () => {
  for (const first of [1, 2, 3, 5, 50]) assert.deepEqual(await pageAll(first, -1), expected(-1), `first ${first}`);
});

test('oldest-first pages visit every record once, in order', async () => {
  for (const first of [1, 4, 50]) assert.deepEqual(await pageAll(first, 1), expected(1), `first ${first}`);
});

test('a filter narrows the pages without losing records', async () => {
  assert.deepEqual(await pageAll(2, -1, 'A'), expected(-1, 'A'));
  assert.deepEqual(await pageAll(3, 1, 'B'), expected(1, 'B'));
});

test('first: 0 answers no records but says whether there are any', async () => {
  const page = await keysetPage(store.events, {}, { first: 0, after: null }, -1);
  assert.deepEqual(page.items, []);
  assert.equal(page.hasNextPage, true);
});
