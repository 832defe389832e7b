/**
 * Issue 11 points 2 and 9 over HTTP: what a federated source or a federated provider may vouch
 * for (aud always, maxTokenAgeSeconds, typ, JWE, this server's own tokens never through a
 * source, federated-provider tokens live access tokens only, scope at most the input token's),
 * and admin changes to a source (key refresh, update, delete) taking effect at once.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CompactEncrypt, SignJWT, decodeJwt, generateKeyPair, type JWK, type JWTPayload } from 'jose';
import { basic, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { JWT_BEARER, JwksHost, signingKey, type SigningKey } from '../helpers/federation.js';
import { seedMachineClient, seedMachineProvider, seedUserWithAppPassword, unique } from '../helpers/seed.js';
import type { FederatedSource, Provider } from '../../src/domain/model.js';


let t: TestServer;
let key: SigningKey;
const host = new JwksHost();
before(async () => {
  t = await startTestServer();
  key = await signingKey();
  await host.start();
});
after(async () => {
  await host.stop();
  await t.stop();
});

const tokenUrl = () => `${t.url}/application/o/token/`;
const tokenEndpoint = () => `${t.server.services.config.publicUrl}/application/o/token/`;

async function sourceWith(fields: Partial<FederatedSource>): Promise<FederatedSource> {
  const now = new Date();
  const slug = unique('src');
  return t.server.services.store.federatedSources.insert({
    id: crypto.randomUUID(), name: slug, slug, issuer: null, audience: null, jwksUrl: null, oidcDiscoveryUrl: null,
    jwks: { keys: [key.publicJwk] }, keysFetchedAt: null, createdAt: now, updatedAt: now, ...fields,
  });
}

async function trusting(input: { federatedSourceIds?: string[]; federatedProviderIds?: string[] }, allowedScopes: string[] = []) {
  const provider = await seedMachineProvider(t, input);
  const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC', allowedScopes });
  return { provider, clientId };
}

function sign(claims: JWTPayload, header: { typ?: string } = { typ: 'JWT' }, times: { iat?: number | null } = {}, signer = key): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ sub: 'workload', ...claims }).setProtectedHeader({ alg: 'ES256', kid: signer.kid, ...header }).setExpirationTime(now + 300);
  if (times.iat !== null) jwt.setIssuedAt(times.iat ?? now);
  return jwt.sign(signer.privateKey);
}

function present(clientId: string, assertion: string, extra: Record<string, string> = {}) {
  return postForm(tokenUrl(), { grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: assertion, ...extra });
}

async function rejection(response: Awaited<ReturnType<typeof present>>): Promise<Record<string, unknown>> {
  assert.equal(response.status, 400, JSON.stringify(response.body));
  assert.equal(response.body.error, 'invalid_grant');
  await t.server.services.events.flush();
  const events = await t.server.services.store.events.find({ requestId: response.headers.get('x-request-id')! });
  const failed = events.find((e) => e.action === 'LOGIN_FAILED');
  assert.ok(failed, 'a LOGIN_FAILED event');
  return failed.context;
}

describe('aud is always checked (RFC 7523 §3)', () => {
  test('a source without audience: aud must contain the issuer or the token endpoint', async () => {
    const source = await sourceWith({});
    const { provider, clientId } = await trusting({ federatedSourceIds: [source.id] });
    const issuer = t.server.services.providers.issuer(provider);
    assert.equal((await rejection(await present(clientId, await sign({})))).assertionRejection, 'aud_mismatch', 'no aud');
    assert.equal((await rejection(await present(clientId, await sign({ aud: 'https://elsewhere.example' })))).assertionRejection, 'aud_mismatch');
    for (const aud of [issuer, tokenEndpoint(), tokenEndpoint().replace(/\/$/, ''), ['other', issuer]]) {
      const response = await present(clientId, await sign({ aud }));
      assert.equal(response.status, 200, `${JSON.stringify(aud)}: ${JSON.stringify(response.body)}`);
    }
  });

  test('a source with audience requires it, and the issuer alone does not do', async () => {
    const source = await sourceWith({ audience: 'tessera' });
    const { provider, clientId } = await trusting({ federatedSourceIds: [source.id] });
    assert.equal((await present(clientId, await sign({ aud: 'tessera' }))).status, 200);
    await rejection(await present(clientId, await sign({ aud: t.server.services.providers.issuer(provider) })));
  });
});

describe('maxTokenAgeSeconds', () => {
  test('set through the admin API; an old iat or none is refused, a fresh one accepted', async () => {
    const fields = 'id maxTokenAgeSeconds';
    const created = await t.gql<{ createFederatedSource: { id: string; maxTokenAgeSeconds: number } }>(
      `mutation($input: CreateFederatedSourceInput!) { createFederatedSource(input: $input) { ${fields} } }`,
      { input: { name: 'aged', slug: unique('aged'), audience: 'tessera', maxTokenAgeSeconds: 60, jwks: { keys: [key.publicJwk] } } },
    );
    const source = created.createFederatedSource;
    assert.equal(source.maxTokenAgeSeconds, 60);
    const { clientId } = await trusting({ federatedSourceIds: [source.id] });
    const now = Math.floor(Date.now() / 1000);
    assert.equal((await present(clientId, await sign({ aud: 'tessera' }))).status, 200);
    assert.equal((await rejection(await present(clientId, await sign({ aud: 'tessera' }, undefined, { iat: now - 120 })))).assertionRejection, 'too_old');
    assert.equal((await rejection(await present(clientId, await sign({ aud: 'tessera' }, undefined, { iat: null })))).assertionRejection, 'too_old');

    const updated = await t.gql<{ updateFederatedSource: { maxTokenAgeSeconds: number | null } }>(
      `mutation($id: ID!) { updateFederatedSource(id: $id, input: { maxTokenAgeSeconds: null }) { ${fields} } }`, { id: source.id },
    );
    assert.equal(updated.updateFederatedSource.maxTokenAgeSeconds, null);
    assert.equal((await present(clientId, await sign({ aud: 'tessera' }, undefined, { iat: now - 120 }))).status, 200, 'the update applies at once');
    for (const bad of [0, -5, 31_536_001]) {
      const { body } = await t.gqlRaw(`mutation($id: ID!, $v: Int) { updateFederatedSource(id: $id, input: { maxTokenAgeSeconds: $v }) { id } }`, { id: source.id, v: bad });
      assert.equal(body.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', String(bad));
    }
  });
});

describe('what a source may not vouch for', () => {
  test('a JWT with typ at+jwt (an access token) is refused on the source path; JWT, jwt and none are fine', async () => {
    const source = await sourceWith({ audience: 'tessera' });
    const { clientId } = await trusting({ federatedSourceIds: [source.id] });
    for (const typ of ['at+jwt', 'application/at+jwt', 'dpop+jwt']) {
      assert.equal((await rejection(await present(clientId, await sign({ aud: 'tessera' }, { typ })))).assertionRejection, 'typ_not_allowed', typ);
    }
    for (const header of [{ typ: 'JWT' }, { typ: 'jwt' }, {}]) assert.equal((await present(clientId, await sign({ aud: 'tessera' }, header))).status, 200);
  });

  test('a JWE is refused', async () => {
    const source = await sourceWith({ audience: 'tessera' });
    const { clientId } = await trusting({ federatedSourceIds: [source.id] });
    const inner = await sign({ aud: 'tessera' });
    const { publicKey } = await generateKeyPair('ECDH-ES', { extractable: true });
    const jwe = await new CompactEncrypt(new TextEncoder().encode(inner)).setProtectedHeader({ alg: 'ECDH-ES', enc: 'A256GCM', cty: 'JWT' }).encrypt(publicKey);
    assert.equal((await rejection(await present(clientId, jwe))).assertionRejection, 'jwe');
  });
});

describe("this server's own tokens never go through a source", () => {
  /** README step 5 of round 1: a source over another provider's JWKS. Upstream is not a federated provider of downstream. */
  async function sourceOverProviderJwks(upstream: Provider) {
    const jwks = await (await fetch(`${t.url}/application/o/${upstream.slug}/jwks/`)).json() as { keys: JWK[] };
    const source = await sourceWith({ jwks });
    return trusting({ federatedSourceIds: [source.id] }, ['openid', 'profile']);
  }

  async function upstreamTokens() {
    const upstream = await seedMachineProvider(t);
    const upstreamClient = await seedMachineClient(t, upstream, { allowedScopes: ['openid', 'profile', 'a', 'b'] });
    const svc = await seedUserWithAppPassword(t);
    const issued = async (scope: string) => {
      const response = await postForm(tokenUrl(), { grant_type: 'client_credentials', username: svc.username, password: svc.appPassword, scope },
        { authorization: basic(upstreamClient.clientId, upstreamClient.clientSecret!) });
      assert.equal(response.status, 200, JSON.stringify(response.body));
      return response.body as { access_token: string; id_token?: string };
    };
    return { upstream, upstreamClient, svc, issued };
  }

  test("an id_token, an access token and a revoked access token of another provider are refused through a source over its JWKS", async () => {
    const { upstream, upstreamClient, issued } = await upstreamTokens();
    const { clientId } = await sourceOverProviderJwks(upstream);
    const tokens = await issued('openid');
    for (const credential of [tokens.id_token!, tokens.access_token]) {
      const context = await rejection(await present(clientId, credential));
      assert.equal(context.assertionRejection, 'provider_not_trusted');
      assert.equal(context.rule, 'federated_provider');
    }
    const revoke = await postForm(`${t.url}/application/o/revoke/`, { token: tokens.access_token }, { authorization: basic(upstreamClient.clientId, upstreamClient.clientSecret!) });
    assert.equal(revoke.status, 200);
    await rejection(await present(clientId, tokens.access_token));
  });

  test('a federated provider: its id_token and its revoked access token are refused, a live access token accepted', async () => {
    const { upstream, upstreamClient, issued } = await upstreamTokens();
    const { clientId } = await trusting({ federatedProviderIds: [upstream.id] }, ['openid', 'profile', 'a', 'b']);
    const tokens = await issued('openid');
    assert.equal((await rejection(await present(clientId, tokens.id_token!))).assertionRejection, 'not_an_access_token');
    assert.equal((await present(clientId, tokens.access_token)).status, 200);
    await postForm(`${t.url}/application/o/revoke/`, { token: tokens.access_token }, { authorization: basic(upstreamClient.clientId, upstreamClient.clientSecret!) });
    assert.equal((await rejection(await present(clientId, tokens.access_token))).assertionRejection, 'inactive_token');
  });

  test("a federated provider's token grants at most its own scope", async () => {
    const { upstream, issued } = await upstreamTokens();
    const { clientId } = await trusting({ federatedProviderIds: [upstream.id] }, ['a', 'b']);
    const input = (await issued('a')).access_token;
    const wider = await present(clientId, input, { scope: 'a b' });
    assert.equal(wider.status, 400, JSON.stringify(wider.body));
    assert.equal(wider.body.error, 'invalid_scope');
    const same = await present(clientId, input, { scope: 'a' });
    assert.equal(same.status, 200, JSON.stringify(same.body));
    assert.equal(decodeJwt(String(same.body.access_token)).scope, 'a');
  });
});

describe('admin changes to a source apply at once on this process (issue 11 point 9)', () => {
  async function remoteSource() {
    host.keys = [key.publicJwk];
    const created = await t.gql<{ createFederatedSource: { id: string } }>(
      'mutation($input: CreateFederatedSourceInput!) { createFederatedSource(input: $input) { id } }',
      { input: { name: 'rotating', slug: unique('rotating'), audience: 'tessera', jwksUrl: `${host.url}/jwks` } },
    );
    const source = created.createFederatedSource;
    const { clientId } = await trusting({ federatedSourceIds: [source.id] });
    assert.equal((await present(clientId, await sign({ aud: 'tessera' }))).status, 200, 'the old key works (and is cached)');
    return { source, clientId };
  }

  test('after refreshFederatedSourceKeys the next request verifies with the rotated key', async () => {
    const { source, clientId } = await remoteSource();
    const rotated = await signingKey();
    host.keys = [rotated.publicJwk];
    await t.gql('mutation($id: ID!) { refreshFederatedSourceKeys(id: $id) { id } }', { id: source.id });
    const response = await present(clientId, await sign({ aud: 'tessera' }, undefined, {}, rotated));
    assert.equal(response.status, 200, JSON.stringify(response.body));
    await rejection(await present(clientId, await sign({ aud: 'tessera' })));
  });

  test('after updateFederatedSource (new audience, raw keys) and deleteFederatedSource the next request sees the change', async () => {
    const { source, clientId } = await remoteSource();
    await t.gql('mutation($id: ID!) { updateFederatedSource(id: $id, input: { audience: "tessera-2" }) { id } }', { id: source.id });
    await rejection(await present(clientId, await sign({ aud: 'tessera' })));
    assert.equal((await present(clientId, await sign({ aud: 'tessera-2' }))).status, 200);
    await t.gql('mutation($id: ID!) { deleteFederatedSource(id: $id) }', { id: source.id });
    await rejection(await present(clientId, await sign({ aud: 'tessera-2' })));
  });
});

describe('a verified JWT is remembered for a minute, but nothing it did not prove is', () => {
  const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const at = () => Math.floor(Date.now() / 1000);
  const signAt = (claims: JWTPayload, iat: number, exp: number, signer = key) =>
    new SignJWT({ sub: 'workload', ...claims }).setProtectedHeader({ alg: 'ES256', kid: signer.kid, typ: 'JWT' })
      .setIssuedAt(iat).setExpirationTime(exp).sign(signer.privateKey);

  test('the same JWT again: accepted again; after its exp: expired; past maxTokenAgeSeconds: too old', async () => {
    const source = await sourceWith({ audience: 'tessera', maxTokenAgeSeconds: 60 });
    const { clientId } = await trusting({ federatedSourceIds: [source.id] });
    const shortLived = await signAt({ aud: 'tessera' }, at(), at() + 2);
    const ageing = await signAt({ aud: 'tessera' }, at() - 58, at() + 300);
    for (const jwt of [shortLived, ageing]) {
      assert.equal((await present(clientId, jwt)).status, 200);
      assert.equal((await present(clientId, jwt)).status, 200, 'the same bytes, remembered');
    }
    await wait(3_100);
    assert.equal((await rejection(await present(clientId, shortLived))).assertionRejection, 'expired');
    assert.equal((await rejection(await present(clientId, ageing))).assertionRejection, 'too_old');
  });

  test('the same JWT at a provider whose audience it does not name is refused', async () => {
    const source = await sourceWith({ audience: null });
    const first = await trusting({ federatedSourceIds: [source.id] });
    const second = await trusting({ federatedSourceIds: [source.id] });
    const jwt = await sign({ aud: `${t.server.services.config.publicUrl}/application/o/${first.provider.slug}/` });
    assert.equal((await present(first.clientId, jwt)).status, 200);
    assert.equal((await rejection(await present(second.clientId, jwt))).assertionRejection, 'aud_mismatch');
    assert.equal((await present(first.clientId, jwt)).status, 200);
  });

  test('the same JWT after its key left the source (keys fetched again) is refused', async () => {
    host.keys = [key.publicJwk];
    const created = await t.gql<{ createFederatedSource: { id: string } }>(
      'mutation($input: CreateFederatedSourceInput!) { createFederatedSource(input: $input) { id } }',
      { input: { name: 'remembered', slug: unique('remembered'), audience: 'tessera', jwksUrl: `${host.url}/jwks` } },
    );
    const { clientId } = await trusting({ federatedSourceIds: [created.createFederatedSource.id] });
    const jwt = await sign({ aud: 'tessera' });
    assert.equal((await present(clientId, jwt)).status, 200);
    host.keys = [(await signingKey()).publicJwk];
    await t.gql('mutation($id: ID!) { refreshFederatedSourceKeys(id: $id) { id } }', { id: created.createFederatedSource.id });
    const context = await rejection(await present(clientId, jwt));
    assert.match(String(context.assertionRejection), /unknown_kid|bad_signature/);
  });
});
