import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TtlCache } from '../../src/domain/cache.js';

test('a load that began before an invalidation does not cache what it read (the record may have changed since)', async () => {
  const cache = new TtlCache<string | null>(60_000);
  let finish!: (value: string | null) => void;
  const loading = cache.getOrLoad('client-1', () => new Promise((resolve) => { finish = resolve; }));
  // The admin creates the client while the read (which found nothing) is still in flight.
  cache.delete('client-1');
  finish(null);
  assert.equal(await loading, null, 'the caller still gets what it read');
  assert.equal(cache.get('client-1'), undefined, 'but the next lookup reads again instead of a stale "unknown"');
  assert.equal(await cache.getOrLoad('client-1', async () => 'found'), 'found');
  assert.equal(cache.get('client-1'), 'found', 'loads with no invalidation in between are cached');
});
