/**
 * The checkpoint worker (src/store/sqlite/checkpointer.ts) runs only while writes come fast: an
 * idle server does not carry a second V8 isolate, a busy one does not checkpoint on its own thread.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openEmbeddedStore } from '../../src/store/sqlite/sqlite-store.js';
import { makeEvent } from './contract.js';
import { withTempDir } from '../helpers/temp-dir.js';

const timing = { intervalMs: 20, busyCommits: 50, busyWindowMs: 10_000, idleStopMs: 300 };

async function until(condition: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  return condition();
}

test('a few writes do not start the checkpoint worker; a burst does, and it ends when the writes stop', async () => {
  await withTempDir('tessera-checkpointer-', async (dir) => {
    const store = await openEmbeddedStore(dir, { checkpointTiming: timing });
    try {
      for (let i = 0; i < 10; i++) await store.events.insertMany([makeEvent()]);
      assert.equal(store.checkpointing(), false, 'ten commits: no worker');
      assert.equal(store.pragma('wal_autocheckpoint'), 1000, 'SQLite checkpoints itself meanwhile');

      for (let i = 0; i < 60; i++) await store.events.insertMany([makeEvent()]);
      assert.equal(store.checkpointing(), true, 'seventy commits in a moment: the worker runs');
      assert.equal(store.pragma('wal_autocheckpoint'), 10_000);

      assert.ok(await until(() => !store.checkpointing(), 3_000), 'the worker ends after idleStopMs without writes');
      assert.equal(store.pragma('wal_autocheckpoint'), 1000);

      for (let i = 0; i < 60; i++) await store.events.insertMany([makeEvent()]);
      assert.equal(store.checkpointing(), true, 'the next burst starts it again');
      assert.equal(await store.events.count({}), 130, 'every write is there');
    } finally {
      await store.close();
    }
    assert.equal(store.checkpointing(), false, 'closed with the store');
  });
});
