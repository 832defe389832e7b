/**
 * Clients no one here wrote get tokens: openid-client v6 (npm) — discovery, clientCredentialsGrant
 * with client_secret_post, client_secret_basic (RFC 6749 Appendix B encoding), the
 * base64(username:app_password) secret and a JWT assertion, then introspection and revocation —
 * and Python's authlib (Debian package) when it is installed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import * as oidc from 'openid-client';
import { SignJWT, createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, type JWK } from 'jose';
import { sourceIdentityKey } from '../../src/domain/federation/service-accounts.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { seedMachineClient, seedMachineProvider, seedUserWithAppPassword, unique } from '../helpers/seed.js';
import type { Provider } from '../../src/domain/model.js';

let t: TestServer;
let provider: Provider;
before(async () => {
  t = await startTestServer();
  provider = await seedMachineProvider(t, { signingAlgorithm: 'RS256' });
});
after(async () => {
  await t.stop();
});

const issuer = () => new URL(t.server.services.providers.issuer(provider));

function discover(clientId: string, secret: string | undefined, auth?: oidc.ClientAuth): Promise<oidc.Configuration> {
  return oidc.discovery(issuer(), clientId, secret, auth, { execute: [oidc.allowInsecureRequests] });
}

async function assertVerifies(accessToken: string, sub?: string) {
  const jwks = await (await fetch(`${t.url}/application/o/${provider.slug}/jwks/`)).json();
  const { payload } = await jwtVerify(accessToken, createLocalJWKSet(jwks as { keys: JWK[] }), { issuer: issuer().href, typ: 'at+jwt' });
  if (sub) assert.equal(payload.sub, sub);
  return payload;
}

describe('openid-client (npm) as the M2M client', () => {
  test("clientCredentialsGrant with the client's own secret (client_secret_post, the default)", async () => {
    const { clientId, clientSecret } = await seedMachineClient(t, provider);
    const config = await discover(clientId, clientSecret!);
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'profile' });
    assert.equal(tokens.token_type.toLowerCase(), 'bearer');
    assert.equal(tokens.scope, 'profile');
    assert.ok((tokens.expiresIn() ?? 0) > 0);
    const claims = await assertVerifies(tokens.access_token);
    assert.equal(claims.client_id, clientId);
  });

  test('clientCredentialsGrant with client_secret_basic', async () => {
    const { clientId, clientSecret } = await seedMachineClient(t, provider);
    const config = await discover(clientId, clientSecret!, oidc.ClientSecretBasic(clientSecret!));
    const tokens = await oidc.clientCredentialsGrant(config);
    await assertVerifies(tokens.access_token);
  });

  test('clientCredentialsGrant with base64(username:app_password) as the secret, in Basic (padding url-encoded)', async () => {
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    let username = unique('padded');
    while ((username.length + 1 + 43) % 3 === 0) username += 'x';
    const svc = await seedUserWithAppPassword(t, { username });
    const secret = Buffer.from(`${svc.username}:${svc.appPassword}`).toString('base64');
    assert.match(secret, /=$/);
    const config = await discover(clientId, secret, oidc.ClientSecretBasic(secret));
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'openid profile' });
    await assertVerifies(tokens.access_token, svc.user.id);
    assert.equal(tokens.claims()?.sub, svc.user.id, 'openid-client validated the ID token');
  });

  test('clientCredentialsGrant with a federated JWT as client_assertion', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const kid = unique('kid');
    const now = new Date();
    const slug = unique('ci');
    const source = await t.server.services.store.federatedSources.insert({
      id: crypto.randomUUID(), name: slug, slug, issuer: 'https://ci.example', audience: 'tessera', jwksUrl: null, oidcDiscoveryUrl: null,
      jwks: { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256' }] }, keysFetchedAt: null, createdAt: now, updatedAt: now,
    });
    const federated = await seedMachineProvider(t, { federatedSourceIds: [source.id], signingAlgorithm: 'RS256' });
    const { clientId } = await seedMachineClient(t, federated, { type: 'PUBLIC' });
    const jwt = await new SignJWT({ sub: 'job-42' }).setProtectedHeader({ alg: 'ES256', kid }).setIssuer('https://ci.example')
      .setAudience('tessera').setIssuedAt().setExpirationTime('5m').sign(privateKey);
    const config = await oidc.discovery(new URL(t.server.services.providers.issuer(federated)), clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    const tokens = await oidc.clientCredentialsGrant(config, {
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: jwt,
    });
    assert.ok(tokens.access_token);
    const account = await t.server.services.generatedAccounts.find(sourceIdentityKey(source.id, 'job-42'));
    assert.ok(account);
  });

  test('tokenIntrospection and tokenRevocation', async () => {
    const { clientId, clientSecret } = await seedMachineClient(t, provider);
    const config = await discover(clientId, clientSecret!, oidc.ClientSecretBasic(clientSecret!));
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'profile' });
    const live = await oidc.tokenIntrospection(config, tokens.access_token);
    assert.equal(live.active, true);
    assert.equal(live.client_id, clientId);
    await oidc.tokenRevocation(config, tokens.access_token, { token_type_hint: 'access_token' });
    const revoked = await oidc.tokenIntrospection(config, tokens.access_token);
    assert.equal(revoked.active, false);
  });

  test('a wrong secret surfaces as invalid_client from openid-client', async () => {
    const { clientId } = await seedMachineClient(t, provider);
    const config = await discover(clientId, 'wrong-secret', oidc.ClientSecretBasic('wrong-secret'));
    // A 401 with WWW-Authenticate: openid-client reports the challenge and keeps the response.
    const error = await oidc.clientCredentialsGrant(config).then(
      () => assert.fail('a wrong secret must not get a token'),
      (e: { code?: string; status?: number; response?: Response }) => e,
    );
    assert.equal(error.code, 'OAUTH_WWW_AUTHENTICATE_CHALLENGE');
    assert.equal(error.status, 401);
    assert.equal(((await error.response!.json()) as { error: string }).error, 'invalid_client');
  });
});

const execFileAsync = promisify(execFile);

/** Runs the Python client without blocking this process (the server under test lives here). */
async function runPython(python: string, args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(python, ['-c', PYTHON_CLIENT, ...args], { encoding: 'utf8', timeout: 30_000 });
  return stdout;
}

/** Python with authlib and requests (Debian packages python3-authlib, python3-requests). */
function pythonWithAuthlib(): string | null {
  for (const python of ['/usr/bin/python3', 'python3']) {
    const probe = spawnSync(python, ['-c', 'import authlib, requests; from authlib.integrations.requests_client import OAuth2Session'], { encoding: 'utf8' });
    if (probe.status === 0) return python;
  }
  return null;
}

const PYTHON_CLIENT = `
import json, sys
from authlib.integrations.requests_client import OAuth2Session
token_url, client_id, client_secret, auth_method = sys.argv[1:5]
session = OAuth2Session(client_id, client_secret, scope="profile", token_endpoint_auth_method=auth_method)
token = session.fetch_token(token_url, grant_type="client_credentials")
print(json.dumps(token))
`;

describe('authlib (Python, Debian package) as the M2M client', () => {
  const python = pythonWithAuthlib();
  const skip = python ? false : 'python3 with authlib and requests is not installed (apt-get install python3-authlib python3-requests)';

  for (const method of ['client_secret_basic', 'client_secret_post']) {
    test(`OAuth2Session.fetch_token, client_credentials, ${method}`, { skip }, async () => {
      const { clientId, clientSecret } = await seedMachineClient(t, provider);
      const stdout = await runPython(python!, [`${t.url}/application/o/token/`, clientId, clientSecret!, method]);
      const token = JSON.parse(stdout) as { access_token: string; token_type: string; scope: string };
      assert.equal(token.token_type, 'Bearer');
      assert.equal(token.scope, 'profile');
      await assertVerifies(token.access_token);
    });
  }

  test('OAuth2Session.fetch_token with base64(username:app_password) as the secret', { skip }, async () => {
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    const svc = await seedUserWithAppPassword(t);
    const secret = Buffer.from(`${svc.username}:${svc.appPassword}`).toString('base64');
    const stdout = await runPython(python!, [`${t.url}/application/o/token/`, clientId, secret, 'client_secret_basic']);
    await assertVerifies((JSON.parse(stdout) as { access_token: string }).access_token, svc.user.id);
  });
});
