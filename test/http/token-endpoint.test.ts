/** The token endpoint's own rules, before any grant runs. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { basic, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { seedMachineClient, seedMachineProvider } from '../helpers/seed.js';

describe('token endpoint', () => {
  let server: TestServer;
  let tokenUrl: string;
  let clientId: string;
  let clientSecret: string;

  before(async () => {
    server = await startTestServer();
    tokenUrl = `${server.url}/application/o/token/`;
    const provider = await seedMachineProvider(server);
    const seeded = await seedMachineClient(server, provider);
    clientId = seeded.clientId;
    clientSecret = seeded.clientSecret!;
  });
  after(() => server.stop());

  async function eventsFor(requestId: string) {
    await server.server.services.events.flush();
    return server.server.services.store.events.find({ requestId });
  }

  test('a missing grant_type is invalid_request', async () => {
    const res = await postForm(tokenUrl, { client_id: clientId });
    assert.equal(res.status, 400);
    assert.equal(res.body.error, 'invalid_request');
  });

  test('an unknown grant_type is unsupported_grant_type', async () => {
    const res = await postForm(tokenUrl, { grant_type: 'authorization_code', client_id: clientId });
    assert.equal(res.status, 400);
    assert.equal(res.body.error, 'unsupported_grant_type');
  });

  test('the path answers without its trailing slash too', async () => {
    const res = await postForm(`${server.url}/application/o/token`, { grant_type: 'client_credentials' }, { authorization: basic(clientId, clientSecret) });
    assert.equal(res.status, 200);
    assert.equal(typeof res.body.access_token, 'string');
  });

  test('client_credentials with an unknown client is a LOGIN_FAILED event under the request id', async () => {
    const res = await postForm(tokenUrl, { grant_type: 'client_credentials', client_id: 'no-such-client', client_secret: 'x' });
    assert.equal(res.status, 401);
    assert.equal(res.body.error, 'invalid_client');
    const requestId = res.headers.get('x-request-id')!;
    assert.equal(res.body.request_id, requestId);
    const events = await eventsFor(requestId);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.action, 'LOGIN_FAILED');
    assert.equal(events[0]!.clientId, 'no-such-client');
    assert.equal(events[0]!.context.reason, 'unknown client_id');
    assert.ok(!JSON.stringify(events[0]).includes('"x"'), 'the presented secret is not in the event');
  });

  test('client_credentials by a client without the grant is unauthorized_client and a LOGIN_FAILED event', async () => {
    const provider = await seedMachineProvider(server);
    const other = await seedMachineClient(server, provider, { grantTypes: ['DEVICE_CODE'] });
    const res = await postForm(tokenUrl, { grant_type: 'client_credentials' }, { authorization: basic(other.clientId, other.clientSecret!) });
    assert.equal(res.status, 400);
    assert.equal(res.body.error, 'unauthorized_client');
    const events = await eventsFor(res.headers.get('x-request-id')!);
    assert.deepEqual(events.map((e) => [e.action, e.clientId]), [['LOGIN_FAILED', other.clientId]]);
  });
});
