/**
 * DPoP (RFC 9449) driven by a client no one here wrote: openid-client v6's getDPoPHandle signs
 * the proofs (and follows use_dpop_nonce on its own). Every grant it can drive gets a bound token
 * (cnf.jkt = the key's thumbprint, token_type DPoP), which userinfo, the admin API and
 * introspection then accept only with a proof by that key.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as client from 'openid-client';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { startTestServer, basic, postForm, type TestServer } from '../helpers/server.js';
import { seedClient, seedMachineClient, seedMachineProvider, seedProvider, seedUser, seedUserWithAppPassword, type SeededProvider } from '../helpers/seed.js';
import { decide, jwtPayload } from '../helpers/device.js';
import type { Provider } from '../../src/domain/model.js';

let server: TestServer;
let devices: SeededProvider;
let machines: Provider;

before(async () => {
  server = await startTestServer();
  devices = await seedProvider(server, { deviceFlow: { pollIntervalSeconds: 1 } });
  machines = await seedMachineProvider(server);
});
after(async () => {
  await server.stop();
});

const insecure = { execute: [client.allowInsecureRequests] };

/** openid-client's refusal of a token response carrying this OAuth error code. */
function oauthError(code: string) {
  return (error: unknown) => {
    assert.ok(error instanceof client.ResponseBodyError, String(error));
    assert.equal(error.error, code);
    return true;
  };
}

async function thumbprint(keyPair: client.CryptoKeyPair): Promise<string> {
  return calculateJwkThumbprint(await exportJWK(keyPair.publicKey), 'sha256');
}

async function machineConfig(clientId: string, secret: string | null): Promise<client.Configuration> {
  const issuer = new URL(server.server.services.providers.issuer(machines));
  return client.discovery(issuer, clientId, secret ?? undefined, secret ? client.ClientSecretPost(secret) : client.None(), insecure);
}

async function introspect(provider: Pick<Provider, 'id'>, token: string): Promise<Record<string, unknown>> {
  const { clientId, clientSecret } = await seedMachineClient(server, provider);
  return (await postForm(`${server.url}/application/o/introspect/`, { token }, { authorization: basic(clientId, clientSecret!) })).body;
}

describe('DPoP with openid-client', () => {
  test('discovery lists the DPoP algorithms', async () => {
    const config = await machineConfig('any', null);
    const algs = config.serverMetadata().dpop_signing_alg_values_supported;
    for (const alg of ['ES256', 'EdDSA', 'RS256', 'PS256']) assert.ok(algs?.includes(alg), alg);
    assert.ok(!algs?.includes('HS256'));
  });

  test('client_credentials with an ES256 proof: a bound token (cnf.jkt), token_type DPoP, introspected as DPoP', async () => {
    const { clientId, clientSecret } = await seedMachineClient(server, machines);
    const config = await machineConfig(clientId, clientSecret);
    const keyPair = await client.randomDPoPKeyPair('ES256');
    const tokens = await client.clientCredentialsGrant(config, {}, { DPoP: client.getDPoPHandle(config, keyPair) });
    assert.equal(tokens.token_type.toLowerCase(), 'dpop');
    const jkt = await thumbprint(keyPair);
    assert.deepEqual(jwtPayload(tokens.access_token).cnf, { jkt });
    const answer = await introspect(machines, tokens.access_token);
    assert.equal(answer.active, true);
    assert.equal(answer.token_type, 'DPoP');
    assert.deepEqual(answer.cnf, { jkt });
  });

  test('the password grant with an EdDSA proof is bound too; without a proof the same client gets a Bearer token', async () => {
    const { clientId, clientSecret } = await seedMachineClient(server, machines, { grantTypes: ['PASSWORD'] });
    const svc = await seedUserWithAppPassword(server);
    const config = await machineConfig(clientId, clientSecret);
    const keyPair = await client.randomDPoPKeyPair('EdDSA');
    const params = { username: svc.username, password: svc.appPassword };
    const bound = await client.genericGrantRequest(config, 'password', params, { DPoP: client.getDPoPHandle(config, keyPair) });
    assert.equal(bound.token_type.toLowerCase(), 'dpop');
    assert.deepEqual(jwtPayload(bound.access_token).cnf, { jkt: await thumbprint(keyPair) });
    const plain = await client.genericGrantRequest(config, 'password', params);
    assert.equal(plain.token_type.toLowerCase(), 'bearer');
    assert.equal(jwtPayload(plain.access_token).cnf, undefined);
  });

  test('a requireDpop client gets tokens only with a proof', async () => {
    const { clientId, clientSecret, client: made } = await seedMachineClient(server, machines);
    await server.gql(`mutation($id: ID!) { updateClient(id: $id, input: { requireDpop: true }) { requireDpop } }`, { id: made.id });
    const config = await machineConfig(clientId, clientSecret);
    await assert.rejects(client.clientCredentialsGrant(config), oauthError('invalid_dpop_proof'));
    const tokens = await client.clientCredentialsGrant(config, {}, { DPoP: client.getDPoPHandle(config, await client.randomDPoPKeyPair()) });
    assert.equal(tokens.token_type.toLowerCase(), 'dpop');
  });

  test('a provider with dpopNonce: openid-client follows use_dpop_nonce and DPoP-Nonce, and gets a bound token', async () => {
    const provider = await seedMachineProvider(server);
    await server.gql(`mutation($id: ID!) { updateProvider(id: $id, input: { dpopNonce: true }) { dpopNonce } }`, { id: provider.id });
    const { clientId, clientSecret } = await seedMachineClient(server, provider);
    const issuer = new URL(server.server.services.providers.issuer(provider));
    const config = await client.discovery(issuer, clientId, clientSecret!, client.ClientSecretPost(clientSecret!), insecure);
    const tokens = await client.clientCredentialsGrant(config, {}, { DPoP: client.getDPoPHandle(config, await client.randomDPoPKeyPair()) });
    assert.equal(tokens.token_type.toLowerCase(), 'dpop');
  });

  test('device flow bound by dpop_jkt, a public client whose refresh token is bound to the key; userinfo takes the token as DPoP only', async () => {
    const { clientId } = await seedClient(server, { providerId: devices.id, grantTypes: ['DEVICE_CODE', 'REFRESH_TOKEN'], allowedScopes: ['openid', 'profile'] });
    const person = await seedUser(server);
    const config = await client.discovery(new URL(devices.issuer), clientId, undefined, client.None(), insecure);
    const keyPair = await client.randomDPoPKeyPair();
    const DPoP = client.getDPoPHandle(config, keyPair);
    const jkt = await thumbprint(keyPair);
    const started = await client.initiateDeviceAuthorization(config, { scope: 'openid profile', dpop_jkt: jkt });
    const polling = client.pollDeviceAuthorizationGrant(config, started, undefined, { DPoP });
    assert.equal((await decide(server, person.username, person.appPassword, started.user_code, 'allow')).status, 200);
    const tokens = await polling;
    assert.equal(tokens.token_type.toLowerCase(), 'dpop');
    assert.deepEqual(jwtPayload(tokens.access_token).cnf, { jkt });

    const userinfo = await client.fetchUserInfo(config, tokens.access_token, person.user.id, { DPoP });
    assert.equal(userinfo.sub, person.user.id);
    // The same token as Bearer is refused with the DPoP challenge.
    const asBearer = await fetch(`${server.url}/application/o/userinfo/`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    assert.equal(asBearer.status, 401);
    assert.match(asBearer.headers.get('www-authenticate') ?? '', /^DPoP .*error="invalid_token"/);

    // The refresh token is bound: another key cannot spend it, the right one can.
    const other = client.getDPoPHandle(config, await client.randomDPoPKeyPair());
    await assert.rejects(client.refreshTokenGrant(config, tokens.refresh_token!, undefined, { DPoP: other }), oauthError('invalid_dpop_proof'));
    await assert.rejects(client.refreshTokenGrant(config, tokens.refresh_token!), oauthError('invalid_dpop_proof'));
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!, undefined, { DPoP });
    assert.equal(refreshed.token_type.toLowerCase(), 'dpop');
    assert.deepEqual(jwtPayload(refreshed.access_token).cnf, { jkt });
  });

  test('a device code bound by dpop_jkt is not redeemed by a poll with another key or without a proof', async () => {
    const { clientId } = await seedClient(server, { providerId: devices.id, allowedScopes: ['profile'] });
    const person = await seedUser(server);
    const config = await client.discovery(new URL(devices.issuer), clientId, undefined, client.None(), insecure);
    const keyPair = await client.randomDPoPKeyPair();
    const started = await client.initiateDeviceAuthorization(config, { scope: 'profile', dpop_jkt: await thumbprint(keyPair) });
    assert.equal((await decide(server, person.username, person.appPassword, started.user_code, 'allow')).status, 200);
    const intruder = client.getDPoPHandle(config, await client.randomDPoPKeyPair());
    await assert.rejects(client.pollDeviceAuthorizationGrant(config, started, undefined, { DPoP: intruder }), oauthError('invalid_dpop_proof'));
    await assert.rejects(client.pollDeviceAuthorizationGrant(config, started), oauthError('invalid_dpop_proof'));
    const tokens = await client.pollDeviceAuthorizationGrant(config, started, undefined, { DPoP: client.getDPoPHandle(config, keyPair) });
    assert.equal(tokens.token_type.toLowerCase(), 'dpop');
  });

  test('the admin API takes a bound access token as DPoP with its proof, and refuses it as Bearer', async () => {
    const { clientId, clientSecret } = await seedMachineClient(server, machines, { grantTypes: ['PASSWORD'], allowedScopes: ['tessera:admin'] });
    const admin = await seedUser(server, { isAdmin: true });
    const config = await machineConfig(clientId, clientSecret);
    const DPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair());
    const tokens = await client.genericGrantRequest(config, 'password', { username: admin.username, password: admin.appPassword, scope: 'tessera:admin' }, { DPoP });
    assert.equal(tokens.token_type.toLowerCase(), 'dpop');
    const body = JSON.stringify({ query: '{ providers { slug } }' });
    const headers = new Headers({ 'content-type': 'application/json' });
    // The proof names the URL as clients see it (TESSERA_PUBLIC_URL), whatever address the request reached.
    const graphql = new URL(`${server.server.services.config.publicUrl}/graphql`);
    const answer = await client.fetchProtectedResource(config, tokens.access_token, graphql, 'POST', body, headers, { DPoP });
    assert.equal(answer.status, 200, await answer.clone().text());
    assert.ok(((await answer.json()) as { data: { providers: unknown[] } }).data.providers.length > 0);
    const asBearer = await fetch(`${server.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.access_token}` }, body });
    assert.equal(asBearer.status, 401);
    assert.match(asBearer.headers.get('www-authenticate') ?? '', /^DPoP .*error="invalid_token"/);
  });
});
