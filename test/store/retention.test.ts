/**
 * Audit event retention: events older than TESSERA_EVENT_RETENTION_DAYS are removed, and the
 * embedded store keeps only the newest
 * TESSERA_EMBEDDED_MAX_EVENTS, pruned as batches are written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openEmbeddedStore } from '../../src/store/sqlite/sqlite-store.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import type { AuditEvent } from '../../src/domain/model.js';
import { makeEvent } from './contract.js';
import { postForm, startTestServer } from '../helpers/server.js';
import { seedMachineClient, seedMachineProvider } from '../helpers/seed.js';
import { withTempDir } from '../helpers/temp-dir.js';

const DAY = 86_400_000;

test('the embedded store keeps the newest TESSERA_EMBEDDED_MAX_EVENTS events, dropping the oldest', async () => {
  await withTempDir('tessera-retention-', async (dir) => {
    const store = await openEmbeddedStore(dir, { maxEvents: 1000 });
    const start = Date.now() - 10_000;
    const all: AuditEvent[] = [];
    try {
      for (let batch = 0; batch < 30; batch++) {
        const events = Array.from({ length: 100 }, (_, i) => makeEvent({ createdAt: new Date(start + all.length + i) }));
        all.push(...events);
        await store.events.insertMany(events);
      }
      assert.equal(await store.events.count({}), 1000);
      const newest = all.slice(-1000).map((e) => e.id);
      const ids = new Set((await store.events.find({})).map((e) => e.id));
      assert.deepEqual(newest.filter((id) => !ids.has(id)), [], 'the newest 1000 are all there');
      assert.equal(ids.has(all[0]!.id), false, 'the oldest is gone');
    } finally {
      await store.close();
    }
    // Gone from the datafile too, not just hidden.
    const reopened = await openEmbeddedStore(dir);
    try {
      assert.equal(await reopened.events.count({}), 1000);
    } finally {
      await reopened.close();
    }
  });
});

test('events older than the retention are removed when the next batch is written, read or not', async () => {
  await withTempDir('tessera-retention-', async (dir) => {
    const store = await openEmbeddedStore(dir, { eventRetentionDays: 1 });
    const old = makeEvent({ createdAt: new Date(Date.now() - 2 * DAY) });
    const recent = makeEvent({ createdAt: new Date(Date.now() - DAY / 2) });
    try {
      await store.events.insertMany([old, recent]);
      await store.events.insertMany([makeEvent()]);
      // createdAt stays a working index under its TTL: range queries (the admin API's pages) answer.
      assert.equal((await store.events.find({ createdAt: { $gte: new Date(Date.now() - DAY) } })).length, 2);
    } finally {
      await store.close();
    }
    // Reopened without a retention (no expiry on read): the old event is not in the datafile.
    const reopened = await openEmbeddedStore(dir);
    try {
      assert.equal(await reopened.events.findOne({ id: old.id }), null);
      assert.ok(await reopened.events.findOne({ id: recent.id }));
      assert.equal(await reopened.events.count({}), 2);
    } finally {
      await reopened.close();
    }
  });
});

test('TESSERA_EVENT_RETENTION_DAYS and TESSERA_EMBEDDED_MAX_EVENTS default to 30 days and 100,000, and are validated', () => {
  const config = loadConfig({});
  assert.equal(config.eventRetentionDays, 30);
  assert.equal(config.embeddedMaxEvents, 100_000);
  assert.equal(loadConfig({ TESSERA_EVENT_RETENTION_DAYS: '365' }).eventRetentionDays, 365);
  assert.equal(loadConfig({ TESSERA_EMBEDDED_MAX_EVENTS: '5000' }).embeddedMaxEvents, 5000);
  for (const bad of ['0', '-1', '1.5', 'abc', '1e3', '36501']) {
    assert.throws(() => loadConfig({ TESSERA_EVENT_RETENTION_DAYS: bad }), (e: unknown) => e instanceof ConfigError && e.variable === 'TESSERA_EVENT_RETENTION_DAYS', bad);
  }
  for (const bad of ['0', '999', 'many', '1000000']) {
    assert.throws(() => loadConfig({ TESSERA_EMBEDDED_MAX_EVENTS: bad }), (e: unknown) => e instanceof ConfigError && e.variable === 'TESSERA_EMBEDDED_MAX_EVENTS', bad);
  }
});

test('a server started with TESSERA_EMBEDDED_MAX_EVENTS keeps its audit log to that many events', { timeout: 60_000 }, async () => {
  const t = await startTestServer({ TESSERA_EMBEDDED_MAX_EVENTS: '1000' });
  try {
    // Each refused token request of a known client writes one audit event (those naming no known
    // client are limited to 60 a minute per address).
    const client = await seedMachineClient(t, await seedMachineProvider(t));
    for (let round = 0; round < 15; round++) {
      await Promise.all(Array.from({ length: 100 }, () =>
        postForm(`${t.url}/application/o/token/`, { grant_type: 'client_credentials', client_id: client.clientId, client_secret: 'wrong' })));
    }
    await t.server.services.events.flush();
    const kept = await t.server.services.store.events.count({});
    assert.ok(kept > 900 && kept <= 1000, `${kept} events kept`);
  } finally {
    await t.stop();
  }
});
