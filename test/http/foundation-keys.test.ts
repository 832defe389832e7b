/**
 * Discovery, JWKS and signing keys (issue 2): the two metadata paths, keys that verify with jose
 * for every algorithm, private keys encrypted at rest, and everything kept across a restart.
 */
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { DATABASE_FILE } from '../../src/store/sqlite/sqlite-store.js';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SignJWT, createRemoteJWKSet, decodeProtectedHeader, jwtVerify, type JWK } from 'jose';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { withTempDir } from '../helpers/temp-dir.js';

let server: TestServer;

before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server.stop();
});

async function createProvider(target: TestServer, slug: string, signingAlgorithm?: string): Promise<{ id: string; issuer: string }> {
  const input: Record<string, unknown> = { name: slug, slug };
  if (signingAlgorithm) input.signingAlgorithm = signingAlgorithm;
  const data = await target.gql<{ createProvider: { id: string; issuer: string } }>(
    'mutation ($input: CreateProviderInput!) { createProvider(input: $input) { id issuer } }', { input },
  );
  return data.createProvider;
}

async function signWithActiveKey(target: TestServer, providerId: string, issuer: string): Promise<string> {
  const key = await target.server.services.keys.activeKey(providerId);
  return new SignJWT({ sub: 'subject-1' })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })
    .setIssuer(issuer).setAudience('test').setIssuedAt().setExpirationTime('10m')
    .sign(key.privateKey);
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

describe('discovery', () => {
  let issuer: string;
  before(async () => {
    ({ issuer } = await createProvider(server, 'disco', 'ES256'));
  });

  const paths = [
    '/application/o/disco/.well-known/openid-configuration',
    '/application/o/disco/.well-known/openid-configuration/',
    '/.well-known/oauth-authorization-server/application/o/disco/',
    '/.well-known/oauth-authorization-server/application/o/disco',
  ];
  for (const p of paths) {
    test(`GET ${p} answers the provider's metadata with issuer PUBLIC_URL/application/o/<slug>/`, async () => {
      const response = await fetch(`${server.url}${p}`);
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
      const metadata = (await response.json()) as Record<string, unknown>;
      const publicUrl = server.server.services.config.publicUrl;
      assert.equal(metadata.issuer, `${publicUrl}/application/o/disco/`);
      assert.equal(metadata.issuer, issuer);
      assert.equal(metadata.jwks_uri, `${publicUrl}/application/o/disco/jwks/`);
      assert.equal(metadata.token_endpoint, `${publicUrl}/application/o/token/`);
      assert.ok(Array.isArray(metadata.grant_types_supported));
      assert.deepEqual(metadata.id_token_signing_alg_values_supported, ['ES256']);
      assert.equal(metadata.request_uri_parameter_supported, false, 'not left to its default of true');
      assert.equal(metadata.authorization_endpoint, undefined, 'no authorization endpoint is claimed');
    });
  }

  test('both discovery paths answer the same document', async () => {
    const [a, b] = await Promise.all([paths[0]!, paths[2]!].map(async (p) => (await fetch(`${server.url}${p}`)).json()));
    assert.deepEqual(a, b);
  });

  test('discovery lists only what is implemented: every endpoint answers, every grant type is accepted', async () => {
    const metadata = (await (await fetch(`${server.url}${paths[0]}`)).json()) as Record<string, unknown>;
    const local = (value: unknown) => new URL(new URL(String(value)).pathname, server.url);
    for (const name of ['token_endpoint', 'device_authorization_endpoint', 'introspection_endpoint', 'revocation_endpoint', 'userinfo_endpoint']) {
      assert.ok(metadata[name], `${name} is listed`);
      const response = await fetch(local(metadata[name]), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '' });
      assert.notEqual(response.status, 404, `${name} answers`);
      assert.notEqual(response.status, 405, `${name} takes POST`);
      await response.body?.cancel();
    }
    assert.equal((await fetch(local(metadata.jwks_uri))).status, 200);
    for (const grantType of metadata.grant_types_supported as string[]) {
      const response = await fetch(local(metadata.token_endpoint), {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: grantType, client_id: 'no-such-client' }).toString(),
      });
      const body = (await response.json()) as { error: string };
      assert.notEqual(body.error, 'unsupported_grant_type', `${grantType} is implemented`);
    }
  });

  for (const p of [
    '/application/o/no-such-provider/.well-known/openid-configuration',
    '/.well-known/oauth-authorization-server/application/o/no-such-provider/',
    '/application/o/no-such-provider/jwks/',
  ]) {
    test(`an unknown slug answers a JSON 404: ${p}`, async () => {
      const response = await fetch(`${server.url}${p}`);
      assert.equal(response.status, 404);
      const body = (await response.json()) as { error: string; request_id: string };
      assert.equal(body.error, 'not_found');
      assert.equal(body.request_id, response.headers.get('x-request-id'));
    });
  }
});

describe('JWKS and signing keys', () => {
  for (const [alg, kty] of [['RS256', 'RSA'], ['ES256', 'EC'], ['EdDSA', 'OKP']] as const) {
    test(`a JWT signed by the active ${alg} key verifies with createRemoteJWKSet against jwks_uri`, async () => {
      const slug = `keys-${alg.toLowerCase()}`;
      const { id, issuer } = await createProvider(server, slug, alg);
      const metadata = (await (await fetch(`${server.url}/application/o/${slug}/.well-known/openid-configuration`)).json()) as { jwks_uri: string };
      // The published jwks_uri names TESSERA_PUBLIC_URL (localhost); fetch it from where the server listens.
      const jwksUri = new URL(new URL(metadata.jwks_uri).pathname, server.url);
      const jwt = await signWithActiveKey(server, id, issuer);
      const jwks = createRemoteJWKSet(jwksUri);
      const { payload, protectedHeader } = await jwtVerify(jwt, jwks, { issuer, audience: 'test', algorithms: [alg] });
      assert.equal(payload.sub, 'subject-1');
      assert.equal(protectedHeader.alg, alg);

      const response = await fetch(jwksUri);
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^application\/jwk-set\+json/);
      const { keys } = (await response.json()) as { keys: JWK[] };
      // Contract v2: the CURRENT key (first) and the NEXT one.
      assert.equal(keys.length, 2);
      assert.equal(keys[0]!.kid, decodeProtectedHeader(jwt).kid);
      for (const key of keys) {
        assert.equal(key.kty, kty);
        assert.equal(key.alg, alg);
        assert.equal(key.use, 'sig');
        for (const member of PRIVATE_MEMBERS) assert.equal(key[member as keyof JWK], undefined, `no private member ${member} in the JWKS`);
      }
    });
  }

  test('JWKS answers without its trailing slash too', async () => {
    await createProvider(server, 'slashless', 'EdDSA');
    const response = await fetch(`${server.url}/application/o/slashless/jwks`);
    assert.equal(response.status, 200);
    assert.equal(((await response.json()) as { keys: unknown[] }).keys.length, 2);
  });

  test('the private key is stored encrypted: a JWE, no "d" anywhere in the record or the data file', async () => {
    const { id } = await createProvider(server, 'at-rest', 'RS256');
    const record = await server.server.services.store.signingKeys.findOne({ providerId: id });
    assert.ok(record);
    const parts = record.encryptedPrivateJwk.split('.');
    assert.equal(parts.length, 5, 'compact JWE has five parts');
    const header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8')) as Record<string, string>;
    assert.equal(header.alg, 'dir');
    assert.equal(header.enc, 'A256GCM');
    const serialised = JSON.stringify(record);
    assert.ok(!/"d"\s*:/.test(serialised), 'no private exponent in the record');
    for (const member of PRIVATE_MEMBERS) assert.equal((record.publicJwk as Record<string, unknown>)[member], undefined);

    // What the embedded store keeps in its file (read past the store, as a thief with the disk would).
    const db = new Database(path.join(server.dataDir, DATABASE_FILE), { readonly: true });
    try {
      const stored = db.prepare('SELECT json(doc) FROM "signingKeys" WHERE id = ?').pluck().get(record.id) as string | undefined;
      assert.ok(stored?.includes(record.encryptedPrivateJwk), 'the key record is in the data file');
      assert.ok(!/"d"\s*:/.test(stored ?? ''), 'no private member in the data file');
    } finally {
      db.close();
    }
  });

  test('changing the signing algorithm publishes the new key first and keeps the old one verifying', async () => {
    const { id, issuer } = await createProvider(server, 'rotate', 'RS256');
    const before = await signWithActiveKey(server, id, issuer);
    await server.gql('mutation ($id: ID!) { updateProvider(id: $id, input: { signingAlgorithm: EdDSA }) { id } }', { id });
    const after = await signWithActiveKey(server, id, issuer);
    assert.equal(decodeProtectedHeader(after).alg, 'EdDSA');
    const { keys } = (await (await fetch(`${server.url}/application/o/rotate/jwks/`)).json()) as { keys: JWK[] };
    // The new CURRENT key, a NEXT key of its algorithm, the old key PREVIOUS (the old NEXT, never used, retired).
    assert.deepEqual(keys.map((k) => k.alg), ['EdDSA', 'EdDSA', 'RS256']);
    const jwks = createRemoteJWKSet(new URL('/application/o/rotate/jwks/', server.url));
    await jwtVerify(before, jwks, { issuer });
    await jwtVerify(after, jwks, { issuer });
  });
});

describe('key rotation state', () => {
  test('after a rotation exactly one key is CURRENT, and with two CURRENT (a crash mid-rotation) the newest signs', async () => {
    const { id } = await createProvider(server, 'two-active', 'ES256');
    await server.gql('mutation ($id: ID!) { updateProvider(id: $id, input: { signingAlgorithm: EdDSA }) { id } }', { id });
    const { signingKeys } = server.server.services.store;
    const records = await signingKeys.find({ providerId: id }, { sort: { createdAt: 1 } });
    assert.deepEqual(records.map((r) => [r.algorithm, r.status]), [['ES256', 'PREVIOUS'], ['ES256', 'RETIRED'], ['EdDSA', 'CURRENT'], ['EdDSA', 'NEXT']]);

    // The state a crash between "the new key signs" and "the old one stops" would leave.
    await signingKeys.updateOne({ id: records[0]!.id }, { $set: { status: 'CURRENT' } });
    server.server.services.keys.invalidate(id);
    assert.equal((await server.server.services.keys.activeKey(id)).kid, records[2]!.id);
  });
});

describe('restart on the same data dir', () => {
  test('providers and keys are kept: same kid, and a token signed before the restart verifies after', async () => {
    await withTempDir('tessera-restart-', async (dataDir) => {
      const first = await startTestServer({}, dataDir);
      const { id, issuer } = await createProvider(first, 'kept', 'RS256');
      const jwt = await signWithActiveKey(first, id, issuer);
      const kidBefore = (await first.server.services.keys.activeKey(id)).kid;
      await first.stop();

      const second = await startTestServer({}, dataDir);
      try {
        const { provider } = await second.gql<{ provider: { id: string; slug: string } | null }>('{ provider(slug: "kept") { id slug } }');
        assert.equal(provider?.id, id);
        const { keys } = (await (await fetch(`${second.url}/application/o/kept/jwks/`)).json()) as { keys: JWK[] };
        assert.equal(keys.length, 2);
        assert.equal(keys[0]!.kid, kidBefore);
        const { payload } = await jwtVerify(jwt, createRemoteJWKSet(new URL('/application/o/kept/jwks/', second.url)), { issuer });
        assert.equal(payload.sub, 'subject-1');
        // The private key still decrypts with the kept secret key, and signs under the same kid.
        assert.equal((await second.server.services.keys.activeKey(id)).kid, kidBefore);
        const discovery = await fetch(`${second.url}/application/o/kept/.well-known/openid-configuration`);
        assert.equal(discovery.status, 200);
      } finally {
        await second.stop();
      }
    });
  });
});
