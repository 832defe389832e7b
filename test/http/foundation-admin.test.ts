/**
 * /graphql as the foundation sets it up (contract "Admin access"): the admin guard, Apollo's CSRF
 * prevention, the provider operations end to end, and the bootstrap of `admin`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SignJWT, generateKeyPair } from 'jose';
import { startTestServer, TEST_ADMIN_TOKEN, type TestServer } from '../helpers/server.js';
import { withTempDir } from '../helpers/temp-dir.js';

let server: TestServer;

before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server.stop();
});

const PROVIDER_FIELDS = `id name slug issuer signingAlgorithm accessTokenLifetimeSeconds refreshTokenLifetimeSeconds
  deviceFlow { userCodeCharset userCodeLength codeLifetimeSeconds pollIntervalSeconds requirePkce } createdAt`;

interface ProviderView {
  id: string;
  name: string;
  slug: string;
  issuer: string;
  signingAlgorithm: string;
  accessTokenLifetimeSeconds: number;
  refreshTokenLifetimeSeconds: number;
  deviceFlow: { userCodeCharset: string; userCodeLength: number; codeLifetimeSeconds: number; pollIntervalSeconds: number; requirePkce: boolean };
  createdAt: string;
}

describe('the /graphql admin guard', () => {
  test('no token answers 401 UNAUTHENTICATED', async () => {
    const { status, body } = await server.gqlRaw('{ providers { id } }', undefined, null);
    assert.equal(status, 401);
    assert.equal(body.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
    assert.equal(body.data, undefined);
  });

  test('an unknown token answers 401 UNAUTHENTICATED', async () => {
    const { status, body } = await server.gqlRaw('{ providers { id } }', undefined, 'not-a-known-token-at-all-0123456789');
    assert.equal(status, 401);
    assert.equal(body.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
  });

  test('a JWT signed by a key this server does not know answers 401', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const jwt = await new SignJWT({ sub: 'someone' }).setProtectedHeader({ alg: 'ES256', kid: 'stranger' })
      .setIssuer(`${server.url}/application/o/nope/`).setIssuedAt().setExpirationTime('5m').sign(privateKey);
    const { status, body } = await server.gqlRaw('{ providers { id } }', undefined, jwt);
    assert.equal(status, 401);
    assert.equal(body.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
  });

  test('a Basic authorization answers 401 (only Bearer is taken)', async () => {
    const response = await fetch(`${server.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`admin:${TEST_ADMIN_TOKEN}`).toString('base64')}` },
      body: JSON.stringify({ query: '{ providers { id } }' }),
    });
    assert.equal(response.status, 401);
  });

  test("a non-admin user's app password answers 403 FORBIDDEN", async () => {
    const { users, appPasswords } = server.server.services;
    const user = await users.create({ username: 'not-an-admin', isAdmin: false });
    const { secret } = await appPasswords.create({ userId: user.id, description: 'test' });
    const { status, body } = await server.gqlRaw('{ providers { id } }', undefined, secret);
    assert.equal(status, 403);
    assert.equal(body.errors?.[0]?.extensions?.code, 'FORBIDDEN');
    assert.equal(body.data, undefined);
  });

  test("an inactive admin's app password answers 401", async () => {
    const { users, appPasswords } = server.server.services;
    const user = await users.create({ username: 'inactive-admin', isAdmin: true });
    const { secret } = await appPasswords.create({ userId: user.id });
    assert.equal((await server.gqlRaw('{ providers { id } }', undefined, secret)).status, 200);
    await users.update(user.id, { isActive: false });
    assert.equal((await server.gqlRaw('{ providers { id } }', undefined, secret)).status, 401);
  });

  test('responses of /graphql carry Cache-Control: no-store', async () => {
    const response = await fetch(`${server.url}/graphql`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
      body: JSON.stringify({ query: '{ providers { id } }' }),
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('cache-control'), 'no-store');
  });
});

describe("Apollo's CSRF prevention", () => {
  const auth = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

  test('a GET without a preflight header is refused with 400', async () => {
    const response = await fetch(`${server.url}/graphql?query=${encodeURIComponent('{ providers { id } }')}`, { headers: auth });
    assert.equal(response.status, 400);
    const body = (await response.json()) as { errors: { message: string }[] };
    assert.match(body.errors[0]!.message, /CSRF/);
  });

  test('a POST with content-type text/plain and no preflight header is refused with 400, never run', async () => {
    const response = await fetch(`${server.url}/graphql`, {
      method: 'POST', headers: { ...auth, 'content-type': 'text/plain' },
      body: JSON.stringify({ query: 'mutation { createProvider(input: { name: "csrf", slug: "csrf" }) { id } }' }),
    });
    assert.equal(response.status, 400);
    const body = (await response.json()) as { errors: { message: string }[] };
    assert.match(body.errors[0]!.message, /CSRF/);
    assert.equal(await server.server.services.providers.getBySlug('csrf'), null);
  });

  test('a POST as a form is refused with 400', async () => {
    const response = await fetch(`${server.url}/graphql`, {
      method: 'POST', headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded' }, body: 'query=%7Bproviders%7Bid%7D%7D',
    });
    assert.equal(response.status, 400);
  });

  test('a GET with apollo-require-preflight is answered', async () => {
    const response = await fetch(`${server.url}/graphql?query=${encodeURIComponent('{ providers { id } }')}`, {
      headers: { ...auth, 'apollo-require-preflight': 'true' },
    });
    assert.equal(response.status, 200);
  });

  test('malformed JSON answers 400, not 500', async () => {
    const response = await fetch(`${server.url}/graphql`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"query": ' });
    assert.equal(response.status, 400);
  });

  test('a JSON body over 1 MiB answers 413', async () => {
    const response = await fetch(`${server.url}/graphql`, {
      method: 'POST', headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ query: `{ providers { id } } # ${'x'.repeat(1024 * 1024)}` }),
    });
    assert.equal(response.status, 413);
    assert.ok(response.headers.get('x-request-id'));
  });
});

describe('provider operations end to end', () => {
  test('createProvider, providers, provider(id), provider(slug), updateProvider, deleteProvider', async () => {
    const created = (await server.gql<{ createProvider: ProviderView }>(
      `mutation ($input: CreateProviderInput!) { createProvider(input: $input) { ${PROVIDER_FIELDS} } }`,
      { input: { name: 'Devices', slug: 'devices' } },
    )).createProvider;
    assert.equal(created.slug, 'devices');
    assert.equal(created.issuer, `${server.server.services.config.publicUrl}/application/o/devices/`);
    assert.equal(created.signingAlgorithm, 'RS256', 'the contract default');
    assert.equal(created.accessTokenLifetimeSeconds, 600);
    assert.equal(created.refreshTokenLifetimeSeconds, 2592000);
    assert.deepEqual(created.deviceFlow, { userCodeCharset: 'BASE20', userCodeLength: 8, codeLifetimeSeconds: 600, pollIntervalSeconds: 5, requirePkce: false });

    const { providers } = await server.gql<{ providers: { id: string }[] }>('{ providers { id } }');
    assert.ok(providers.some((p) => p.id === created.id));
    const byId = await server.gql<{ provider: ProviderView }>(`query ($id: ID) { provider(id: $id) { ${PROVIDER_FIELDS} } }`, { id: created.id });
    assert.deepEqual(byId.provider, created);
    const bySlug = await server.gql<{ provider: { id: string } }>('{ provider(slug: "devices") { id } }');
    assert.equal(bySlug.provider.id, created.id);

    const updated = (await server.gql<{ updateProvider: ProviderView }>(
      `mutation ($id: ID!, $input: UpdateProviderInput!) { updateProvider(id: $id, input: $input) { ${PROVIDER_FIELDS} } }`,
      { id: created.id, input: { name: 'Devices 2', accessTokenLifetimeSeconds: 120, deviceFlow: { pollIntervalSeconds: 10 } } },
    )).updateProvider;
    assert.equal(updated.name, 'Devices 2');
    assert.equal(updated.accessTokenLifetimeSeconds, 120);
    assert.equal(updated.deviceFlow.pollIntervalSeconds, 10);
    assert.equal(updated.deviceFlow.userCodeLength, 8, 'unnamed settings are kept');

    const deleted = await server.gql<{ deleteProvider: boolean }>('mutation ($id: ID!) { deleteProvider(id: $id) }', { id: created.id });
    assert.equal(deleted.deleteProvider, true);
    const gone = await server.gql<{ provider: null }>('query ($id: ID) { provider(id: $id) { id } }', { id: created.id });
    assert.equal(gone.provider, null);
    const discovery = await fetch(`${server.url}/application/o/devices/.well-known/openid-configuration`);
    assert.equal(discovery.status, 404, 'a deleted provider is gone from discovery');
  });

  test('a provider that does not exist: query answers null, mutations fail with NOT_FOUND', async () => {
    const missing = '00000000-0000-4000-8000-000000000000';
    assert.equal((await server.gql<{ provider: null }>('query ($id: ID) { provider(id: $id) { id } }', { id: missing })).provider, null);
    const update = await server.gqlRaw('mutation ($id: ID!) { updateProvider(id: $id, input: { name: "x" }) { id } }', { id: missing });
    assert.equal(update.body.errors?.[0]?.extensions?.code, 'NOT_FOUND');
    const remove = await server.gqlRaw('mutation ($id: ID!) { deleteProvider(id: $id) }', { id: missing });
    assert.equal(remove.body.errors?.[0]?.extensions?.code, 'NOT_FOUND');
  });

  test('a duplicate slug and out-of-range values are BAD_USER_INPUT-style errors, not 500s', async () => {
    await server.gql('mutation { createProvider(input: { name: "Dup", slug: "dup", signingAlgorithm: EdDSA }) { id } }');
    const duplicate = await server.gqlRaw('mutation { createProvider(input: { name: "Dup", slug: "dup", signingAlgorithm: EdDSA }) { id } }');
    assert.equal(duplicate.status, 200);
    assert.ok(duplicate.body.errors?.[0]?.extensions?.code, 'a coded error');
    assert.notEqual(duplicate.body.errors?.[0]?.extensions?.code, 'INTERNAL_SERVER_ERROR');
    const range = await server.gqlRaw('mutation { createProvider(input: { name: "R", slug: "range", accessTokenLifetimeSeconds: 0 }) { id } }');
    assert.equal(range.body.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
  });
});

describe('bootstrap of admin', () => {
  test('TESSERA_BOOTSTRAP_TOKEN ensures admin: the token works as Bearer on /graphql', async () => {
    const { status } = await server.gqlRaw('{ providers { id } }', undefined, TEST_ADMIN_TOKEN);
    assert.equal(status, 200);
    const admin = await server.server.services.users.getByUsername('admin');
    assert.equal(admin?.isAdmin, true);
  });

  test('TESSERA_BOOTSTRAP_PASSWORD ensures the admin login password, kept across restarts and changed by a new value', async () => {
    await withTempDir('tessera-bootstrap-', async (dataDir) => {
      const first = await startTestServer({ TESSERA_BOOTSTRAP_TOKEN: '', TESSERA_BOOTSTRAP_PASSWORD: 'first password 1' }, dataDir);
      assert.equal(first.server.firstStartToken, null, 'no printed token when a bootstrap variable is set');
      const verified = await first.server.services.users.verifyPassword('admin', 'first password 1');
      assert.equal(verified?.username, 'admin');
      assert.equal(verified?.isAdmin, true);
      assert.equal(await first.server.services.users.verifyPassword('admin', 'wrong password'), null);
      await first.stop();

      const second = await startTestServer({ TESSERA_BOOTSTRAP_PASSWORD: 'second password 2' }, dataDir);
      assert.equal(await second.server.services.users.verifyPassword('admin', 'first password 1'), null);
      assert.equal((await second.server.services.users.verifyPassword('admin', 'second password 2'))?.username, 'admin');
      assert.equal((await second.gqlRaw('{ providers { id } }')).status, 200, 'the bootstrap token works after a restart too');
      await second.stop();
    });
  });

  test('a bootstrap token makes a demoted admin an admin again', async () => {
    await withTempDir('tessera-bootstrap-', async (dataDir) => {
      const first = await startTestServer({}, dataDir);
      const admin = (await first.server.services.users.getByUsername('admin'))!;
      await first.server.services.users.update(admin.id, { isAdmin: false });
      assert.equal((await first.gqlRaw('{ providers { id } }')).status, 403);
      await first.stop();
      const second = await startTestServer({}, dataDir);
      assert.equal((await second.gqlRaw('{ providers { id } }')).status, 200);
      await second.stop();
    });
  });

  test('a first start cut short after creating admin but before its token makes the token on the next start', async () => {
    await withTempDir('tessera-bootstrap-', async (dataDir) => {
      const first = await startTestServer({ TESSERA_BOOTSTRAP_TOKEN: '' }, dataDir);
      const { services } = first.server;
      const admin = (await services.users.getByUsername('admin'))!;
      // The state a crash between the two writes leaves: admin, alone, without any credential.
      await services.store.appPasswords.deleteMany({ userId: admin.id });
      await first.stop();
      const second = await startTestServer({ TESSERA_BOOTSTRAP_TOKEN: '' }, dataDir);
      const token = second.server.firstStartToken;
      assert.ok(token);
      assert.equal((await second.gqlRaw('{ providers { id } }', undefined, token)).status, 200);
      // Once anyone else exists (or admin has a credential), nothing is printed any more.
      await second.server.services.users.create({ username: 'someone' });
      await second.server.services.store.appPasswords.deleteMany({ userId: admin.id });
      await second.stop();
      const third = await startTestServer({ TESSERA_BOOTSTRAP_TOKEN: '' }, dataDir);
      assert.equal(third.server.firstStartToken, null);
      await third.stop();
    });
  });

  test('with neither variable and an empty store, a first-start token is made once and works', async () => {
    await withTempDir('tessera-bootstrap-', async (dataDir) => {
      const first = await startTestServer({ TESSERA_BOOTSTRAP_TOKEN: '' }, dataDir);
      const token = first.server.firstStartToken;
      assert.ok(token && token.length >= 32);
      assert.equal((await first.gqlRaw('{ providers { id } }', undefined, token)).status, 200);
      await first.stop();
      const second = await startTestServer({ TESSERA_BOOTSTRAP_TOKEN: '' }, dataDir);
      assert.equal(second.server.firstStartToken, null);
      assert.equal((await second.gqlRaw('{ providers { id } }', undefined, token)).status, 200, 'the printed token still works');
      await second.stop();
    });
  });
});
