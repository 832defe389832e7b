/**
 * Client addresses and request ids (contract, version 2): X-Forwarded-For is believed only from
 * the proxies TESSERA_TRUST_PROXY names, and then only its right-most entry that is not such a
 * proxy; request ids are the server's own, a client's X-Request-Id is kept beside them as
 * clientRequestId and never becomes an event's requestId.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { seedClient, seedProvider } from '../helpers/seed.js';
import { postFormFrom } from '../helpers/address.js';

describe('behind a trusted proxy (TESSERA_TRUST_PROXY=127.0.0.1,10.0.0.0/8)', () => {
  let server: TestServer;
  let clientId: string;
  let url: string;
  before(async () => {
    server = await startTestServer({ TESSERA_TRUST_PROXY: '127.0.0.1, 10.0.0.0/8', TESSERA_DEVICE_AUTHORIZATIONS_PER_MINUTE: '3' });
    const provider = await seedProvider(server);
    clientId = (await seedClient(server, { providerId: provider.id })).clientId;
    url = `${server.url}/application/o/device/`;
  });
  after(() => server.stop());

  const device = (from: string, forwardedFor?: string) =>
    postFormFrom(from, url, { client_id: clientId }, forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor });

  test('each forwarded client has its own limit', async () => {
    const statuses = [];
    for (let i = 0; i < 4; i += 1) statuses.push((await device('127.0.0.1', '198.51.100.1')).status);
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    assert.equal((await device('127.0.0.1', '198.51.100.2')).status, 200, 'another client behind the same proxy');
  });

  test('spoofed left-most entries are ignored: the right-most untrusted entry is the client', async () => {
    const statuses = [];
    // The client sends its own X-Forwarded-For; the trusted proxies append what they saw.
    for (let i = 0; i < 4; i += 1) statuses.push((await device('127.0.0.1', `192.0.2.${i}, 198.51.100.3, 10.1.2.3`)).status);
    assert.deepEqual(statuses, [200, 200, 200, 429]);
  });

  test('a peer that is not a trusted proxy is the client, whatever its X-Forwarded-For says', async () => {
    const statuses = [];
    for (let i = 0; i < 4; i += 1) statuses.push((await device('127.0.0.50', `198.51.100.${10 + i}`)).status);
    assert.deepEqual(statuses, [200, 200, 200, 429]);
  });

  test('events record the address so found', async () => {
    const answer = await postForm(`${server.url}/application/o/token/`, { grant_type: 'client_credentials', client_id: 'no-such-client', client_secret: 'x' }, { 'x-forwarded-for': '203.0.113.7, 198.51.100.77' });
    assert.equal(answer.status, 401);
    await server.server.services.events.flush();
    const [event] = await server.server.services.store.events.find({ requestId: answer.headers.get('x-request-id')! });
    assert.equal(event?.context.clientAddress, '198.51.100.77');
  });
});

describe('request ids are the server’s own', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.stop());

  test("a client's X-Request-Id is neither the response's X-Request-Id nor the event's requestId; the event keeps it as clientRequestId", async () => {
    const planted = 'incident-2026-0001';
    const answer = await postForm(`${server.url}/application/o/token/`, { grant_type: 'client_credentials', client_id: 'no-such-client', client_secret: 'x' }, { 'x-request-id': planted });
    assert.equal(answer.status, 401);
    const own = answer.headers.get('x-request-id')!;
    assert.notEqual(own, planted);
    assert.equal(answer.body.request_id, own);
    await server.server.services.events.flush();
    assert.deepEqual(await server.server.services.store.events.find({ requestId: planted }), [], 'no event under the planted id');
    const [event] = await server.server.services.store.events.find({ requestId: own });
    assert.equal(event?.action, 'LOGIN_FAILED');
    assert.equal(event?.context.clientRequestId, planted);
    assert.equal(event?.context.clientAddress, '127.0.0.1');
  });

  test('the same planted id on two requests gives two different request ids', async () => {
    const provider = await seedProvider(server);
    const clientId = (await seedClient(server, { providerId: provider.id })).clientId;
    const headers = { 'x-request-id': 'incident-2026-0002' };
    const first = await postForm(`${server.url}/application/o/device/`, { client_id: clientId }, headers);
    const second = await postForm(`${server.url}/application/o/device/`, { client_id: clientId }, headers);
    assert.notEqual(first.headers.get('x-request-id'), second.headers.get('x-request-id'));
  });
});
