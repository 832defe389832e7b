/**
 * The embedded store answers from its indexes: every field specs.ts indexes (unique, plain, TTL)
 * is looked up through an index, the audit log's requestId included (NeDB's event log read the
 * whole file for one), the sweep finds expired records by their expiry index, and a page walks
 * the createdAt index instead of sorting the collection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openEmbeddedStore } from '../../src/store/sqlite/sqlite-store.js';
import { COLLECTION_NAMES, collectionSpecs } from '../../src/store/specs.js';

test('every field specs.ts indexes is found through its index, requestId and the expiry fields included', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-plans-'));
  const specs = collectionSpecs({ eventRetentionDays: 30 });
  const store = await openEmbeddedStore(dir, { eventRetentionDays: 30 });
  try {
    let checked = 0;
    for (const name of COLLECTION_NAMES) {
      const spec = specs[name];
      for (const field of [...spec.unique, ...spec.indexes]) {
        const plan = store.plan(name, { [field]: 'x' }).join('; ');
        assert.match(plan, new RegExp(`USING (COVERING )?INDEX ${name}__(u__)?${field}\\b`), `${name}.${field}: ${plan}`);
        checked++;
      }
      if (spec.ttl) {
        const plan = store.plan(name, { [spec.ttl.field]: { $lt: new Date() } }).join('; ');
        assert.match(plan, new RegExp(`USING (COVERING )?INDEX ${name}__${spec.ttl.field}\\b`), `${name}.${spec.ttl.field}: ${plan}`);
      }
    }
    assert.ok(checked > 15);
    assert.match(store.plan('events', { requestId: 'r' }).join('; '), /INDEX events__requestId/);
    const page = store.plan('users', { $and: [{ type: 'SERVICE_ACCOUNT' }] }, { sort: { createdAt: -1 }, limit: 51 }).join('; ');
    assert.match(page, /INDEX users__createdAt/);
    assert.doesNotMatch(page, /TEMP B-TREE/, 'no sort of the whole collection');
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});
