/**
 * The embedded store sweeps out records past their TTL that no read met: NeDB alone expires a
 * record only when a read meets it, and the hot collections are read one key at a time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openEmbeddedStore } from '../../src/store/sqlite/sqlite-store.js';
import { makeDeviceAuthorization } from './contract.js';

const HOUR = 3_600_000;

/** The live records in a NeDB datafile: the last line of each _id wins, deletions drop it. */
async function recordsInFile(file: string): Promise<Set<string>> {
  const live = new Set<string>();
  for (const line of (await readFile(file, 'utf8')).split('\n')) {
    if (!line) continue;
    const doc = JSON.parse(line) as { _id?: string; $$deleted?: boolean };
    if (!doc._id) continue;
    if (doc.$$deleted) live.delete(doc._id);
    else live.add(doc._id);
  }
  return live;
}

test('records past their TTL are swept from memory and the datafile without any read meeting them', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-sweep-'));
  try {
    const store = await openEmbeddedStore(dir);
    await store.sweepExpired();
    // Device authorizations are kept an hour past expiry: these expired two hours ago.
    const dead = Array.from({ length: 1_200 }, () => makeDeviceAuthorization({ expiresAt: new Date(Date.now() - 2 * HOUR) }));
    for (const record of dead) await store.deviceAuthorizations.insert(record);
    const late = await store.deviceAuthorizations.insert(makeDeviceAuthorization({ expiresAt: new Date(Date.now() - HOUR / 2) }));
    const live = await store.deviceAuthorizations.insert(makeDeviceAuthorization({ expiresAt: new Date(Date.now() + HOUR) }));

    assert.equal(await store.sweepExpired(), 1_200, 'every record past its TTL is removed');
    assert.equal(await store.sweepExpired(), 0, 'and nothing else');
    assert.ok(await store.deviceAuthorizations.findOne({ id: late.id }), 'expired within the hour: kept');
    assert.ok(await store.deviceAuthorizations.findOne({ id: live.id }));
    await store.close();

    const inFile = await recordsInFile(path.join(dir, 'deviceAuthorizations.db'));
    assert.deepEqual([...inFile].sort(), [late.id, live.id].sort(), 'the datafile keeps only the two');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('records that expired while the server was stopped are swept after a restart', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-sweep-'));
  try {
    const first = await openEmbeddedStore(dir);
    const soon = await first.deviceAuthorizations.insert(makeDeviceAuthorization({ expiresAt: new Date(Date.now() - HOUR + 500) }));
    await first.close();
    await new Promise((resolve) => setTimeout(resolve, 700));
    const second = await openEmbeddedStore(dir);
    // The sweep at start-up runs in the background; sweepExpired waits for it, then sweeps again.
    await second.sweepExpired();
    await second.close();
    assert.equal((await recordsInFile(path.join(dir, 'deviceAuthorizations.db'))).has(soon.id), false);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
