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
  const cache = new TtlCache<number>(80, 10_000);
  cache.set('a', 1);
  cache.set('b', 1);
  await sleep(50);
  cache.set('a', 2);
  await sleep(50);
  cache.set('c', 3);
  assert.equal(cache.get('b'), undefined);
  assert.equal(cache.get('a'), 2);
  assert.equal(cache.size, 2);
});
