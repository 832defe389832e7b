/** Audit event ids and request ids sort by the time they were made, and stay distinct within a millisecond. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { timeOrderedHex, timeOrderedUuid } from '../../src/domain/time-ordered-id.js';
import { newRequestId } from '../../src/http/request-id.js';

test('a time-ordered UUID is a version 7 UUID whose first 48 bits are the time in milliseconds', () => {
  const now = Date.UTC(2026, 11, 4, 21, 30);
  const id = timeOrderedUuid(now);
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(parseInt(id.replace(/-/g, '').slice(0, 12), 16), now);
});

test('ids made later sort after earlier ones, and ids of one millisecond differ', () => {
  const earlier = [timeOrderedUuid(1_000), timeOrderedHex(1_000)];
  const later = [timeOrderedUuid(1_001), timeOrderedHex(1_001)];
  assert.ok(earlier[0]! < later[0]!);
  assert.ok(earlier[1]! < later[1]!);
  const same = new Set(Array.from({ length: 10_000 }, () => timeOrderedUuid(5_000)));
  assert.equal(same.size, 10_000);
});

test('request ids are 32 hex digits that begin with the time they were made', () => {
  const before = Date.now();
  const id = newRequestId();
  assert.match(id, /^[0-9a-f]{32}$/);
  const made = parseInt(id.slice(0, 12), 16);
  assert.ok(made >= before && made <= Date.now());
});
