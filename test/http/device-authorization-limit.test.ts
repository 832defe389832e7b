/**
 * Device authorization is rate-limited per client address (contract, version 2): more than
 * TESSERA_DEVICE_AUTHORIZATIONS_PER_MINUTE (default 60) from one address in a minute is 429
 * {"error": "slow_down"} with Retry-After; other addresses are not affected.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { seedClient, seedProvider } from '../helpers/seed.js';
import { postFormFrom } from '../helpers/address.js';

describe('the default limit: 60 a minute per address', () => {
  let server: TestServer;
  let clientId: string;
  before(async () => {
    server = await startTestServer();
    const provider = await seedProvider(server);
    clientId = (await seedClient(server, { providerId: provider.id })).clientId;
  });
  after(() => server.stop());

  test('a flood of 200 requests from one address gets 60 device codes; the rest are 429 slow_down with Retry-After and no-store', async () => {
    const url = `${server.url}/application/o/device/`;
    const before = await server.server.services.store.deviceAuthorizations.count({});
    const answers = [];
    for (let batch = 0; batch < 20; batch += 1) {
      answers.push(...(await Promise.all(Array.from({ length: 10 }, () => postFormFrom('127.0.0.40', url, { client_id: clientId })))));
    }
    const granted = answers.filter((a) => a.status === 200).length;
    assert.equal(granted, 60);
    const refused = answers.filter((a) => a.status === 429);
    assert.equal(refused.length, 140);
    for (const answer of refused.slice(0, 5)) {
      assert.equal(answer.body.error, 'slow_down');
      assert.ok(Number(answer.headers['retry-after']) >= 1 && Number(answer.headers['retry-after']) <= 60, `Retry-After ${answer.headers['retry-after']}`);
      assert.equal(answer.headers['cache-control'], 'no-store');
    }
    assert.equal(await server.server.services.store.deviceAuthorizations.count({}), before + 60, 'a refused request stores nothing');

    const elsewhere = await postFormFrom('127.0.0.41', url, { client_id: clientId });
    assert.equal(elsewhere.status, 200, 'another address is not affected');
  });

  test('requests that fail count too (an unknown client cannot flood either)', async () => {
    const url = `${server.url}/application/o/device/`;
    const statuses = [];
    for (let i = 0; i < 70; i += 1) statuses.push((await postFormFrom('127.0.0.42', url, { client_id: 'no-such-client' })).status);
    assert.equal(statuses.filter((s) => s === 401).length, 60);
    assert.equal(statuses.filter((s) => s === 429).length, 10);
  });

  test('without TESSERA_TRUST_PROXY, X-Forwarded-For changes nothing: a fresh header per request is still one address', async () => {
    const url = `${server.url}/application/o/device/`;
    const statuses = [];
    for (let i = 0; i < 65; i += 1) {
      statuses.push((await postFormFrom('127.0.0.43', url, { client_id: clientId }, { 'x-forwarded-for': `203.0.113.${i}` })).status);
    }
    assert.equal(statuses.filter((s) => s === 200).length, 60);
    assert.equal(statuses.filter((s) => s === 429).length, 5);
  });
});

describe('TESSERA_DEVICE_AUTHORIZATIONS_PER_MINUTE', () => {
  test('sets the limit', async () => {
    const server = await startTestServer({ TESSERA_DEVICE_AUTHORIZATIONS_PER_MINUTE: '3' });
    try {
      const provider = await seedProvider(server);
      const clientId = (await seedClient(server, { providerId: provider.id })).clientId;
      const statuses = [];
      for (let i = 0; i < 5; i += 1) statuses.push((await postFormFrom('127.0.0.44', `${server.url}/application/o/device/`, { client_id: clientId })).status);
      assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
    } finally {
      await server.stop();
    }
  });
});
