/** TtlCache: bounded whatever keys callers bring, and expired entries leave without being read again. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TtlCache } from '../../src/domain/cache.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('at most maxEntries entries: the oldest goes first', () => {
  const cache = new TtlCache<number>(60_000, 3);
  for (let i = 0; i < 10; i += 1) cache.set(`k${i}`, i);
  assert.equal(cache.size, 3);
  assert.equal(cache.get('k6'), undefined);
  assert.equal(cache.get('k9'), 9);
});

test('a key longer than maxKeyLength is never kept (it can only be a miss)', async () => {
  const cache = new TtlCache<null>(60_000, 10_000, 256);
  cache.set('x'.repeat(257), null);
  assert.equal(cache.size, 0);
  let loads = 0;
  await cache.getOrLoad('y'.repeat(10_000), async () => {
    loads += 1;
    return null;
  });
  assert.equal(cache.size, 0);
  assert.equal(loads, 1);
  cache.set('z'.repeat(256), null);
  assert.equal(cache.size, 1);
});

test('expired entries are swept by the next write, without being read', async () => {
  // A TTL long enough that a loaded machine writes all thousand before the first expires.
  const cache = new TtlCache<number>(300, 10_000);
  for (let i = 0; i < 1000; i += 1) cache.set(`old${i}`, i);
  assert.equal(cache.size, 1000);
  await sleep(350);
  cache.set('new', 1);
  assert.equal(cache.size, 1, 'the thousand expired entries went with one write');
  assert.equal(cache.get('new'), 1);
});

test('a rewritten key lives a full TTL from its rewrite, and the sweep does not drop it early', async () => {
  // Wide margins, so a loaded machine's late timers cannot blur which entry outlived which.
  const cache = new TtlCache<number>(400, 10_000);
  cache.set('a', 1);
  cache.set('b', 1);
  await sleep(250);
  cache.set('a', 2);
  await sleep(250);
  cache.set('c', 3);
  assert.equal(cache.get('b'), undefined);
  assert.equal(cache.get('a'), 2);
  assert.equal(cache.size, 2);
});

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
