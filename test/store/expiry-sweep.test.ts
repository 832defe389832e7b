/**
 * The embedded store sweeps out records past their TTL: reads never see them, but without the
 * sweep every device authorization, refresh token and denylisted jti ever written would stay in
 * the database file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import Database from 'better-sqlite3';
import { DATABASE_FILE, openEmbeddedStore } from '../../src/store/sqlite/sqlite-store.js';
import { makeDeviceAuthorization } from './contract.js';
import { withTempDir } from '../helpers/temp-dir.js';

const HOUR = 3_600_000;

/** The ids in a table of the database file, expired or not (read past the store). */
function recordsInFile(dir: string, table: string): Set<string> {
  const db = new Database(path.join(dir, DATABASE_FILE), { readonly: true });
  try {
    return new Set(db.prepare(`SELECT id FROM "${table}"`).pluck().all() as string[]);
  } finally {
    db.close();
  }
}

test('records past their TTL are swept from the database file', async () => {
  await withTempDir('tessera-sweep-', async (dir) => {
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

    const inFile = recordsInFile(dir, 'deviceAuthorizations');
    assert.deepEqual([...inFile].sort(), [late.id, live.id].sort(), 'the file keeps only the two');
  });
});

test('records that expired while the server was stopped are swept after a restart', async () => {
  await withTempDir('tessera-sweep-', async (dir) => {
    const first = await openEmbeddedStore(dir);
    const soon = await first.deviceAuthorizations.insert(makeDeviceAuthorization({ expiresAt: new Date(Date.now() - HOUR + 500) }));
    await first.close();
    await new Promise((resolve) => setTimeout(resolve, 700));
    const second = await openEmbeddedStore(dir);
    // The sweep at start-up runs in the background; sweepExpired waits for it, then sweeps again.
    await second.sweepExpired();
    await second.close();
    assert.equal(recordsInFile(dir, 'deviceAuthorizations').has(soon.id), false);
  });
});
