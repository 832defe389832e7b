/**
 * Audiences (RFC 8707, contract version 2): Client.allowedAudiences through GraphQL, `resource`
 * (the one parameter that may repeat) on every token request and on device authorization, aud =
 * what was asked, invalid_target outside the list, a refresh narrows only.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { basic, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { seedMachineClient, seedMachineProvider, seedUserWithAppPassword, unique } from '../helpers/seed.js';
import { expectGqlError } from '../helpers/admin.js';
import { decide, jwtPayload, poll } from '../helpers/device.js';
import { eventsOf } from '../helpers/workload.js';
import type { Provider } from '../../src/domain/model.js';

let t: TestServer;
let provider: Provider;
const ORDERS = 'https://orders.example/api';
const BILLING = 'https://billing.example';
before(async () => {
  t = await startTestServer();
  provider = await seedMachineProvider(t);
});
after(async () => {
  await t.stop();
});

const tokenUrl = () => `${t.url}/application/o/token/`;

async function machine(allowedAudiences: string[]) {
  const { client, clientId, clientSecret } = await seedMachineClient(t, provider);
  await t.server.services.clients.update(client.id, { allowedAudiences });
  return { clientId, auth: { authorization: basic(clientId, clientSecret!) } };
}

describe('allowedAudiences in the admin API', () => {
  const create = `mutation($input: CreateClientInput!) { createClient(input: $input) { client { id allowedAudiences } } }`;
  test('created, read and updated; absolute URIs and plain strings', async () => {
    const created = await t.gql<{ createClient: { client: { id: string; allowedAudiences: string[] } } }>(create, {
      input: { providerId: provider.id, name: 'rs', type: 'CONFIDENTIAL', grantTypes: ['TOKEN_EXCHANGE', 'JWT_BEARER'], allowedAudiences: [ORDERS, 'billing'] },
    });
    assert.deepEqual(created.createClient.client.allowedAudiences, [ORDERS, 'billing']);
    const updated = await t.gql<{ updateClient: { allowedAudiences: string[] } }>(
      'mutation($id: ID!, $input: UpdateClientInput!) { updateClient(id: $id, input: $input) { allowedAudiences } }',
      { id: created.createClient.client.id, input: { allowedAudiences: [BILLING] } },
    );
    assert.deepEqual(updated.updateClient.allowedAudiences, [BILLING]);
    const stored = await t.server.services.clients.get(created.createClient.client.id);
    assert.deepEqual(stored?.allowedAudiences, [BILLING]);
  });

  test('more than 20, a space, or a broken URI is BAD_USER_INPUT naming allowedAudiences', async () => {
    const input = (allowedAudiences: string[]) => ({ input: { providerId: provider.id, name: 'x', type: 'PUBLIC', grantTypes: ['JWT_BEARER'], allowedAudiences } });
    await expectGqlError(t, create, input(Array.from({ length: 21 }, (_, i) => `aud-${i}`)), 'BAD_USER_INPUT', 'allowedAudiences');
    await expectGqlError(t, create, input(['two words']), 'BAD_USER_INPUT', 'allowedAudiences');
    await expectGqlError(t, create, input(['https://[broken']), 'BAD_USER_INPUT', 'allowedAudiences');
    await expectGqlError(t, create, input(['']), 'BAD_USER_INPUT', 'allowedAudiences');
  });
});

describe('resource on the token endpoint', () => {
  test('one resource: aud is that string; two: an array; none: the client_id', async () => {
    const { clientId, auth } = await machine([ORDERS, BILLING]);
    const one = await postForm(tokenUrl(), [['grant_type', 'client_credentials'], ['resource', ORDERS]], auth);
    assert.equal(one.status, 200, JSON.stringify(one.body));
    assert.equal(jwtPayload(String(one.body.access_token)).aud, ORDERS);
    const two = await postForm(tokenUrl(), [['grant_type', 'client_credentials'], ['resource', ORDERS], ['resource', BILLING]], auth);
    assert.equal(two.status, 200, JSON.stringify(two.body));
    assert.deepEqual(jwtPayload(String(two.body.access_token)).aud, [ORDERS, BILLING]);
    const none = await postForm(tokenUrl(), [['grant_type', 'client_credentials']], auth);
    assert.equal(jwtPayload(String(none.body.access_token)).aud, clientId);
  });

  test('a resource outside allowedAudiences is invalid_target, with the value in the LOGIN_FAILED event only', async () => {
    const { auth } = await machine([ORDERS]);
    const answer = await postForm(tokenUrl(), [['grant_type', 'client_credentials'], ['resource', ORDERS], ['resource', 'https://evil.example']], auth);
    assert.equal(answer.status, 400);
    assert.equal(answer.body.error, 'invalid_target');
    assert.equal(answer.body.access_token, undefined);
    const [event] = await eventsOf(t, answer);
    assert.equal(event?.action, 'LOGIN_FAILED');
    assert.match(String(event?.context.reason), /evil\.example/);
  });

  test('a resource with a fragment, a relative one and an empty one are invalid_target', async () => {
    const { auth } = await machine([ORDERS, `${ORDERS}#frag`, 'orders']);
    for (const resource of [`${ORDERS}#frag`, 'orders', '']) {
      const answer = await postForm(tokenUrl(), [['grant_type', 'client_credentials'], ['resource', resource]], auth);
      assert.equal(answer.status, 400, resource);
      assert.equal(answer.body.error, 'invalid_target', resource);
    }
  });

  test('only resource and audience may repeat: scope twice is still invalid_request; audience outside token exchange is invalid_request', async () => {
    const { auth } = await machine([ORDERS]);
    const twice = await postForm(tokenUrl(), [['grant_type', 'client_credentials'], ['scope', 'profile'], ['scope', 'email']], auth);
    assert.equal(twice.body.error, 'invalid_request');
    const audience = await postForm(tokenUrl(), [['grant_type', 'client_credentials'], ['audience', ORDERS]], auth);
    assert.equal(audience.body.error, 'invalid_request');
  });
});

describe('resource on device authorization and refresh', () => {
  async function deviceTokens(resources: string[]) {
    const { client, clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC', grantTypes: ['DEVICE_CODE', 'REFRESH_TOKEN'] });
    await t.server.services.clients.update(client.id, { allowedAudiences: [ORDERS, BILLING] });
    const started = await postForm(`${t.url}/application/o/device/`, [['client_id', clientId], ...resources.map((r): [string, string] => ['resource', r])]);
    assert.equal(started.status, 200, JSON.stringify(started.body));
    const person = await seedUserWithAppPassword(t, { username: unique('person'), type: 'INTERNAL' });
    assert.equal((await decide(t, person.username, person.appPassword, String(started.body.user_code), 'allow')).status, 200);
    const tokens = await poll(t, clientId, String(started.body.device_code));
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    return { clientId, tokens: tokens.body };
  }

  test('the device authorization\'s resources are the token\'s aud, and a refresh keeps them', async () => {
    const { clientId, tokens } = await deviceTokens([ORDERS, BILLING]);
    assert.deepEqual(jwtPayload(String(tokens.access_token)).aud, [ORDERS, BILLING]);
    const refreshed = await postForm(tokenUrl(), { grant_type: 'refresh_token', client_id: clientId, refresh_token: String(tokens.refresh_token) });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    assert.deepEqual(jwtPayload(String(refreshed.body.access_token)).aud, [ORDERS, BILLING]);
  });

  test('a refresh may narrow the audience, and the narrowed one sticks; widening it again is invalid_target', async () => {
    const { clientId, tokens } = await deviceTokens([ORDERS, BILLING]);
    const narrowed = await postForm(tokenUrl(), [['grant_type', 'refresh_token'], ['client_id', clientId], ['refresh_token', String(tokens.refresh_token)], ['resource', ORDERS]]);
    assert.equal(narrowed.status, 200, JSON.stringify(narrowed.body));
    assert.equal(jwtPayload(String(narrowed.body.access_token)).aud, ORDERS);
    const widened = await postForm(tokenUrl(), [['grant_type', 'refresh_token'], ['client_id', clientId], ['refresh_token', String(narrowed.body.refresh_token)], ['resource', BILLING]]);
    assert.equal(widened.status, 400);
    assert.equal(widened.body.error, 'invalid_target');
  });

  test('a device code without resources cannot gain one at the token endpoint', async () => {
    const { clientId, tokens } = await deviceTokens([]);
    assert.equal(jwtPayload(String(tokens.access_token)).aud, clientId);
    const widened = await postForm(tokenUrl(), [['grant_type', 'refresh_token'], ['client_id', clientId], ['refresh_token', String(tokens.refresh_token)], ['resource', ORDERS]]);
    assert.equal(widened.body.error, 'invalid_target');
  });

  test('a device authorization with a resource outside the list is invalid_target', async () => {
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC', grantTypes: ['DEVICE_CODE'] });
    const answer = await postForm(`${t.url}/application/o/device/`, [['client_id', clientId], ['resource', ORDERS]]);
    assert.equal(answer.status, 400);
    assert.equal(answer.body.error, 'invalid_target');
  });
});

test('discovery lists the two grants', async () => {
  const metadata = await (await fetch(`${t.url}/application/o/${provider.slug}/.well-known/openid-configuration`)).json() as { grant_types_supported: string[] };
  assert.ok(metadata.grant_types_supported.includes('urn:ietf:params:oauth:grant-type:jwt-bearer'));
  assert.ok(metadata.grant_types_supported.includes('urn:ietf:params:oauth:grant-type:token-exchange'));
});
