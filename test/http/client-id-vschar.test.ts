/**
 * A client_id is any 1–128 characters of RFC 6749 Appendix A's VSCHAR (%x20–7E), as the admin
 * chooses it (contract, version 2): such a client works end to end — created over GraphQL,
 * authenticated by HTTP Basic (form-urlencoded per RFC 6749 Appendix B, and as sent), by body
 * client_id, in the device flow and client_credentials, and named so in tokens and events.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { seedProvider, seedUser, unique, type SeededProvider, type SeededUser } from '../helpers/seed.js';
import { decide, deviceAuthorization, jwtPayload, poll, DEVICE_GRANT } from '../helpers/device.js';
import { expectGqlError } from '../helpers/admin.js';

const CREATE = 'mutation($input: CreateClientInput!) { createClient(input: $input) { client { clientId } clientSecret } }';

let t: TestServer;
let provider: SeededProvider;
let user: SeededUser;

before(async () => {
  t = await startTestServer();
  provider = await seedProvider(t);
  user = await seedUser(t);
});
after(async () => {
  await t.stop();
});

/** RFC 6749 Appendix B: each part form-urlencoded (space as '+'), then joined with ':' and base64. */
function basicEncoded(id: string, secret: string): string {
  const encode = (value: string) => new URLSearchParams({ v: value }).toString().slice(2);
  return `Basic ${Buffer.from(`${encode(id)}:${encode(secret)}`).toString('base64')}`;
}

/** Basic as many clients send it: the raw id and secret (RFC 7617; no ':' in the id). */
function basicAsSent(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
}

async function createClient(clientId: string, grantTypes: string[]): Promise<{ clientId: string; clientSecret: string }> {
  const data = await t.gql<{ createClient: { client: { clientId: string }; clientSecret: string } }>(CREATE, {
    input: { providerId: provider.id, name: 'vschar client', type: 'CONFIDENTIAL', grantTypes, clientId },
  });
  return { clientId: data.createClient.client.clientId, clientSecret: data.createClient.clientSecret };
}

async function eventsOf(response: { headers: Headers }) {
  await t.server.services.events.flush();
  return t.server.services.store.events.find({ requestId: response.headers.get('x-request-id')! });
}

function clientCredentials(form: Record<string, string>, headers: Record<string, string> = {}) {
  return postForm(`${t.url}/application/o/token/`, { grant_type: 'client_credentials', ...form }, headers);
}

describe('a client_id with @, +, :, / and spaces', () => {
  // Unique per run, and every character class the contract names.
  const withColon = `${unique('ci')}@example.com+build:42/main branch`;
  const withoutColon = `${unique('bot')} @ example.org+nightly/main`;
  let colonClient: { clientId: string; clientSecret: string };
  let plainClient: { clientId: string; clientSecret: string };

  before(async () => {
    colonClient = await createClient(withColon, ['CLIENT_CREDENTIALS', 'DEVICE_CODE']);
    plainClient = await createClient(withoutColon, ['CLIENT_CREDENTIALS', 'DEVICE_CODE']);
  });

  test('createClient keeps it as given', () => {
    assert.equal(colonClient.clientId, withColon);
    assert.equal(plainClient.clientId, withoutColon);
  });

  test('client_credentials with HTTP Basic, form-urlencoded per RFC 6749 Appendix B', async () => {
    const response = await clientCredentials({}, { authorization: basicEncoded(withColon, colonClient.clientSecret) });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const claims = jwtPayload(String(response.body.access_token));
    assert.equal(claims.client_id, withColon);
    const login = (await eventsOf(response)).find((e) => e.action === 'LOGIN');
    assert.equal(login?.clientId, withColon, 'the event names the client_id as it is');
  });

  test('client_credentials with HTTP Basic as sent (no encoding)', async () => {
    const response = await clientCredentials({}, { authorization: basicAsSent(withoutColon, plainClient.clientSecret) });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(jwtPayload(String(response.body.access_token)).client_id, withoutColon);
  });

  test('an id with ":" sent raw in Basic cannot be told from its secret (RFC 7617): invalid_client, never a 500', async () => {
    const response = await clientCredentials({}, { authorization: basicAsSent(withColon, colonClient.clientSecret) });
    assert.equal(response.status, 401);
    assert.equal(response.body.error, 'invalid_client');
  });

  test('client_credentials with client_id and client_secret in the body', async () => {
    const response = await clientCredentials({ client_id: withColon, client_secret: colonClient.clientSecret });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(jwtPayload(String(response.body.access_token)).client_id, withColon);
  });

  test('a wrong secret is invalid_client with the event naming the client_id', async () => {
    const response = await clientCredentials({}, { authorization: basicEncoded(withColon, 'wrong') });
    assert.equal(response.status, 401);
    assert.equal(response.body.error, 'invalid_client');
    const failed = (await eventsOf(response)).find((e) => e.action === 'LOGIN_FAILED');
    assert.equal(failed?.clientId, withColon);
  });

  test('the device flow: authorization with Basic, approval, polling with the body client_id', async () => {
    const started = await deviceAuthorization(t, { scope: 'openid' }, { authorization: basicEncoded(withColon, colonClient.clientSecret) });
    assert.equal(started.status, 200, JSON.stringify(started.body));
    const approved = await decide(t, user.username, user.password, String(started.body.user_code), 'allow');
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body.client_id, withColon);
    const tokens = await poll(t, withColon, String(started.body.device_code), { client_secret: colonClient.clientSecret });
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    assert.equal(jwtPayload(String(tokens.body.access_token)).client_id, withColon);
    assert.equal(jwtPayload(String(tokens.body.id_token)).aud, withColon);
    const issued = (await eventsOf(tokens)).find((e) => e.action === 'TOKEN_ISSUED');
    assert.equal(issued?.clientId, withColon);
  });

  test('the device flow with Basic as sent', async () => {
    const started = await deviceAuthorization(t, {}, { authorization: basicAsSent(withoutColon, plainClient.clientSecret) });
    assert.equal(started.status, 200, JSON.stringify(started.body));
    assert.equal((await decide(t, user.username, user.password, String(started.body.user_code), 'allow')).status, 200);
    const tokens = await postForm(`${t.url}/application/o/token/`, { grant_type: DEVICE_GRANT, device_code: String(started.body.device_code) }, {
      authorization: basicAsSent(withoutColon, plainClient.clientSecret),
    });
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    assert.equal(jwtPayload(String(tokens.body.access_token)).client_id, withoutColon);
  });
});

describe('what a client_id may not be', () => {
  test('outside VSCHAR, empty or longer than 128 characters is BAD_USER_INPUT', async () => {
    for (const clientId of ['', 'tab\there', 'new\nline', 'caf\u00e9', 'del\u007f', 'x'.repeat(129)]) {
      await expectGqlError(t, CREATE, { input: { providerId: provider.id, name: 'bad', type: 'PUBLIC', grantTypes: ['DEVICE_CODE'], clientId } }, 'BAD_USER_INPUT', 'clientId');
    }
  });

  test('128 printable characters, quotes and angle brackets included, are kept', async () => {
    const clientId = `<"'&> ${unique('x')}`.padEnd(128, '~');
    const data = await t.gql<{ createClient: { client: { clientId: string } } }>(CREATE, {
      input: { providerId: provider.id, name: 'wide', type: 'PUBLIC', grantTypes: ['DEVICE_CODE'], clientId },
    });
    assert.equal(data.createClient.client.clientId, clientId);
  });
});
