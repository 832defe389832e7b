/**
 * Unauthenticated load is bounded (issue 11, point 5): requests naming slugs and client_ids that do
 * not exist do not pin memory in the hot-path caches, and the events they leave are bounded in
 * size and limited per address.
 */
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, before, test } from 'node:test';
import { postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { postFormFrom } from '../helpers/address.js';
import { UNKNOWN_CLIENT_EVENTS_PER_MINUTE } from '../../src/domain/rate-limits.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(() => server.stop());

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

async function inBatches(count: number, send: (i: number) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < count; i += 50) await Promise.all(Array.from({ length: Math.min(50, count - i) }, (_, j) => send(i + j)));
}

const long = (i: number) => `${i}-`.padEnd(8000, 'a');

test('1,500 discovery requests with 8 KB unknown slugs leave the heap as it was (< 10 MB)', async () => {
  const discovery = (i: number) => fetch(`${server.url}/application/o/${long(i)}/.well-known/openid-configuration`).then(async (response) => {
    assert.equal(response.status, 404);
    await response.text();
  });
  await discovery(-1);
  const before = heapAfterGc();
  await inBatches(1500, discovery);
  const grown = heapAfterGc() - before;
  assert.ok(grown < 10 * 1024 * 1024, `the heap grew by ${(grown / 1024 / 1024).toFixed(1)} MB`);
});

test('1,500 token requests with 8 KB unknown client_ids leave the heap as it was (< 10 MB)', async () => {
  const token = (i: number) => postForm(`${server.url}/application/o/token/`, { grant_type: 'client_credentials', client_id: long(i), client_secret: 'x' }).then((answer) => {
    assert.equal(answer.status, 401);
  });
  await token(-1);
  const before = heapAfterGc();
  await inBatches(1500, token);
  await server.server.services.events.flush();
  const grown = heapAfterGc() - before;
  assert.ok(grown < 10 * 1024 * 1024, `the heap grew by ${(grown / 1024 / 1024).toFixed(1)} MB`);
});

test(`events for unknown clients keep at most 128 characters of the client_id and at most ${UNKNOWN_CLIENT_EVENTS_PER_MINUTE} a minute per address`, async () => {
  const clientId = `flood-${Date.now()}-`.padEnd(4000, 'z');
  for (let i = 0; i < UNKNOWN_CLIENT_EVENTS_PER_MINUTE + 40; i += 1) {
    const answer = await postFormFrom('127.0.0.60', `${server.url}/application/o/token/`, { grant_type: 'client_credentials', client_id: clientId, client_secret: 'x' });
    assert.equal(answer.status, 401, 'every request is still answered');
  }
  await server.server.services.events.flush();
  const events = await server.server.services.store.events.find({ clientId: clientId.slice(0, 128) });
  assert.equal(events.length, UNKNOWN_CLIENT_EVENTS_PER_MINUTE);
  assert.equal(await server.server.services.store.events.count({ clientId }), 0, 'no event holds the whole client_id');
  // Another address still leaves its events.
  const other = await postFormFrom('127.0.0.61', `${server.url}/application/o/token/`, { grant_type: 'client_credentials', client_id: clientId, client_secret: 'x' });
  await server.server.services.events.flush();
  assert.equal((await server.server.services.store.events.find({ requestId: String(other.headers['x-request-id']) })).length, 1);
});
