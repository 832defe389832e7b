/**
 * Signing keys (contract v2, "Signing keys"; issue 15): rotation with pre-publication and overlap,
 * emergency retirement, keyRotationDays, and the JWKS a resource server sees. Tokens come from the
 * token endpoint (client_credentials, an admin's app password), and are checked the way a resource
 * server would: jose's createRemoteJWKSet / a JWKS cached for its max-age, introspection,
 * userinfo and the admin API.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLocalJWKSet, createRemoteJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { basic, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { seedClient, seedProvider, seedUser, unique, type SeededClient, type SeededProvider, type SeededUser } from '../helpers/seed.js';
import { expectGqlError } from '../helpers/admin.js';

/** The fake clock key rotation goes by (token lifetimes stay on real time). */
let fakeNow = Date.now();
let t: TestServer;
before(async () => {
  t = await startTestServer({}, undefined, { clock: () => fakeNow });
});
after(async () => {
  await t.stop();
});

interface World {
  provider: SeededProvider;
  m2m: SeededClient;
  resource: SeededClient;
  admin: SeededUser;
}

async function world(input: { keyRotationDays?: number } = {}): Promise<World> {
  const provider = await seedProvider(t);
  if (input.keyRotationDays) {
    await t.gql('mutation($id: ID!, $d: Int) { updateProvider(id: $id, input: { keyRotationDays: $d }) { id } }', { id: provider.id, d: input.keyRotationDays });
  }
  const m2m = await seedClient(t, { providerId: provider.id, type: 'CONFIDENTIAL', grantTypes: ['CLIENT_CREDENTIALS'], allowedScopes: ['tessera:admin'] });
  const resource = await seedClient(t, { providerId: provider.id, type: 'CONFIDENTIAL', grantTypes: ['CLIENT_CREDENTIALS'] });
  const admin = await seedUser(t, { isAdmin: true });
  return { provider, m2m, resource, admin };
}

async function token(w: World): Promise<string> {
  const issued = await postForm(`${t.url}/application/o/token/`, {
    grant_type: 'client_credentials', username: w.admin.username, password: w.admin.appPassword, scope: 'tessera:admin',
  }, { authorization: basic(w.m2m.clientId, w.m2m.clientSecret!) });
  assert.equal(issued.status, 200, JSON.stringify(issued.body));
  return String(issued.body.access_token);
}

const kidOf = (jwt: string): string => decodeProtectedHeader(jwt).kid!;
const jwksUrl = (w: World): URL => new URL(`/application/o/${w.provider.slug}/jwks/`, t.url);

async function jwks(w: World): Promise<{ keys: { kid: string }[]; cacheControl: string | null }> {
  const response = await fetch(jwksUrl(w));
  assert.equal(response.status, 200);
  return { ...((await response.json()) as { keys: { kid: string }[] }), cacheControl: response.headers.get('cache-control') };
}

interface KeyView { id: string; kid: string; status: string; activatedAt: string | null; deactivatedAt: string | null; retiresAt: string | null }

async function keysOf(w: World): Promise<KeyView[]> {
  const data = await t.gql<{ provider: { signingKeys: KeyView[] } }>(
    'query($id: ID!) { provider(id: $id) { signingKeys { id kid status activatedAt deactivatedAt retiresAt } } }', { id: w.provider.id },
  );
  return data.provider.signingKeys;
}

const rotate = (w: World) => t.gql('mutation($id: ID!) { rotateSigningKeys(providerId: $id) { id } }', { id: w.provider.id });

async function seen(jwt: string, w: World): Promise<{ active: unknown; userinfo: number; admin: number }> {
  const introspected = await postForm(`${t.url}/application/o/introspect/`, { token: jwt }, { authorization: basic(w.resource.clientId, w.resource.clientSecret!) });
  assert.equal(introspected.status, 200, JSON.stringify(introspected.body));
  const userinfo = await fetch(`${t.url}/application/o/userinfo/`, { headers: { authorization: `Bearer ${jwt}` } });
  await userinfo.arrayBuffer();
  const admin = await t.gqlRaw('{ providers { id } }', undefined, jwt);
  return { active: introspected.body.active, userinfo: userinfo.status, admin: admin.status };
}
const LIVE = { active: true, userinfo: 200, admin: 200 };
const DEAD = { active: false, userinfo: 401, admin: 401 };

test('a new provider publishes its CURRENT and NEXT keys with Cache-Control max-age ≤ 300', async () => {
  const w = await world();
  const published = await jwks(w);
  const maxAge = Number(/^public, max-age=(\d+)$/.exec(published.cacheControl ?? '')?.[1]);
  assert.ok(maxAge > 0 && maxAge <= 300, `Cache-Control: ${published.cacheControl}`);
  const keys = await keysOf(w);
  assert.deepEqual(keys.map((k) => k.status).sort(), ['CURRENT', 'NEXT']);
  assert.deepEqual(published.keys.map((k) => k.kid), [keys.find((k) => k.status === 'CURRENT')!.kid, keys.find((k) => k.status === 'NEXT')!.kid]);
  assert.equal(kidOf(await token(w)), keys.find((k) => k.status === 'CURRENT')!.kid);
});

test('rotation: the new CURRENT kid was published before, and a token signed before verifies and introspects active after', async () => {
  const w = await world();
  const before = await token(w);
  const remote = createRemoteJWKSet(jwksUrl(w));
  await jwtVerify(before, remote);
  const publishedBefore = (await jwks(w)).keys.map((k) => k.kid);
  const [next] = (await keysOf(w)).filter((k) => k.status === 'NEXT');

  await rotate(w);
  const keys = await keysOf(w);
  const byStatus = (status: string) => keys.filter((k) => k.status === status);
  assert.equal(byStatus('CURRENT').length, 1);
  assert.equal(byStatus('CURRENT')[0]!.kid, next!.kid);
  assert.ok(publishedBefore.includes(next!.kid), 'the new CURRENT key was in the JWKS before the rotation');
  assert.deepEqual(byStatus('PREVIOUS').map((k) => k.kid), [kidOf(before)]);
  assert.equal(byStatus('NEXT').length, 1);
  const previous = byStatus('PREVIOUS')[0]!;
  assert.ok(previous.deactivatedAt && previous.retiresAt && Date.parse(previous.retiresAt) > Date.parse(previous.deactivatedAt) + 600_000,
    'it retires after the longest token it signed (10 minutes by default)');
  assert.ok(byStatus('CURRENT')[0]!.activatedAt);

  const after = await token(w);
  assert.equal(kidOf(after), next!.kid);
  // A fresh resource server and one that fetched the JWKS before the rotation both verify both.
  for (const set of [createRemoteJWKSet(jwksUrl(w)), remote]) {
    await jwtVerify(before, set);
    await jwtVerify(after, set);
  }
  assert.deepEqual(await seen(before, w), LIVE);
  assert.deepEqual(await seen(after, w), LIVE);
  const events = await t.gql<{ events: { edges: { node: { context: Record<string, unknown> } }[] } }>(
    '{ events(filter: { action: "CONFIG_CHANGED" }, first: 500) { edges { node { context } } } }',
  );
  assert.ok(events.events.edges.some((e) => e.node.context.operation === 'rotateSigningKeys' && e.node.context.providerId === w.provider.id));
});

test('retiring the CURRENT key: its tokens die everywhere (also once verified and cached), it leaves the JWKS, NEXT signs', async () => {
  const w = await world();
  const leaked = await token(w);
  assert.deepEqual(await seen(leaked, w), LIVE, 'used once: the verified-token cache knows it');
  const keys = await keysOf(w);
  const current = keys.find((k) => k.status === 'CURRENT')!;
  const next = keys.find((k) => k.status === 'NEXT')!;

  const data = await t.gql<{ retireSigningKey: KeyView }>('mutation($id: ID!) { retireSigningKey(id: $id) { id kid status retiresAt } }', { id: current.id });
  assert.equal(data.retireSigningKey.status, 'RETIRED');
  assert.ok(data.retireSigningKey.retiresAt);
  assert.deepEqual(await seen(leaked, w), DEAD);
  const published = (await jwks(w)).keys.map((k) => k.kid);
  assert.ok(!published.includes(current.kid), 'the retired key is not served');
  const after = await token(w);
  assert.equal(kidOf(after), next.kid, 'the NEXT key became CURRENT');
  assert.deepEqual(await seen(after, w), LIVE);
  const statuses = await keysOf(w);
  assert.equal(statuses.filter((k) => k.status === 'CURRENT').length, 1);
  assert.equal(statuses.filter((k) => k.status === 'NEXT').length, 1, 'a new NEXT key was made');
  await assert.rejects(jwtVerify(leaked, createRemoteJWKSet(jwksUrl(w))));

  const events = await t.gql<{ events: { edges: { node: { context: Record<string, unknown>; username: string | null } }[] } }>(
    '{ events(filter: { action: "SIGNING_KEY_RETIRED" }, first: 100) { edges { node { context username } } } }',
  );
  assert.ok(events.events.edges.some((e) => e.node.context.kid === current.kid && e.node.context.providerId === w.provider.id));
});

test('retiring a PREVIOUS key kills the tokens it signed; tokens of the CURRENT key live on', async () => {
  const w = await world();
  const old = await token(w);
  assert.deepEqual(await seen(old, w), LIVE);
  await rotate(w);
  const fresh = await token(w);
  const previous = (await keysOf(w)).find((k) => k.status === 'PREVIOUS')!;
  assert.equal(previous.kid, kidOf(old));
  await t.gql('mutation($id: ID!) { retireSigningKey(id: $id) { id } }', { id: previous.id });
  assert.deepEqual(await seen(old, w), DEAD);
  assert.deepEqual(await seen(fresh, w), LIVE);
  await expectGqlError(t, 'mutation { retireSigningKey(id: "no-such-key") { id } }', undefined, 'NOT_FOUND');
});

test('10 rotateSigningKeys at once rotate once', async () => {
  const w = await world();
  const [current] = (await keysOf(w)).filter((k) => k.status === 'CURRENT');
  const answers = await Promise.all(Array.from({ length: 10 }, () => t.gqlRaw('mutation($id: ID!) { rotateSigningKeys(providerId: $id) { id } }', { id: w.provider.id })));
  for (const answer of answers) assert.equal(answer.body.errors, undefined, JSON.stringify(answer.body));
  const keys = await keysOf(w);
  assert.deepEqual(keys.filter((k) => k.status === 'PREVIOUS').map((k) => k.kid), [current!.kid]);
  assert.equal(keys.filter((k) => k.status === 'CURRENT').length, 1);
  assert.equal(keys.filter((k) => k.status === 'NEXT').length, 1);
  assert.equal(keys.length, 3);
  const events = await t.gql<{ events: { edges: { node: { context: Record<string, unknown> } }[] } }>(
    '{ events(filter: { action: "CONFIG_CHANGED" }, first: 500) { edges { node { context } } } }',
  );
  const mine = events.events.edges.map((e) => e.node.context).filter((c) => c.operation === 'rotateSigningKeys' && c.providerId === w.provider.id);
  assert.equal(mine.length, 10, 'every call is recorded');
  assert.equal(mine.filter((c) => c.rotated === true).length, 1, 'one of them as the rotation');
});

test('keyRotationDays: null by default, 1–3650 or null, anything else refused', async () => {
  const w = await world();
  const read = async () => (await t.gql<{ provider: { keyRotationDays: number | null } }>('query($id: ID!) { provider(id: $id) { keyRotationDays } }', { id: w.provider.id })).provider.keyRotationDays;
  assert.equal(await read(), null);
  for (const bad of [0, -1, 3651]) {
    await expectGqlError(t, 'mutation($id: ID!, $d: Int) { updateProvider(id: $id, input: { keyRotationDays: $d }) { id } }', { id: w.provider.id, d: bad }, 'BAD_USER_INPUT');
    await expectGqlError(t, 'mutation($d: Int) { createProvider(input: { name: "x", slug: "bad-rotation", keyRotationDays: $d }) { id } }', { d: bad }, 'BAD_USER_INPUT');
  }
  await t.gql('mutation($id: ID!) { updateProvider(id: $id, input: { keyRotationDays: 3650 }) { id } }', { id: w.provider.id });
  assert.equal(await read(), 3650);
  await t.gql('mutation($id: ID!) { updateProvider(id: $id, input: { name: "renamed" }) { id } }', { id: w.provider.id });
  assert.equal(await read(), 3650, 'unchanged when not given');
  await t.gql('mutation($id: ID!) { updateProvider(id: $id, input: { keyRotationDays: null }) { id } }', { id: w.provider.id });
  assert.equal(await read(), null);
  const created = await t.gql<{ createProvider: { keyRotationDays: number | null } }>('mutation { createProvider(input: { name: "r", slug: "rotates-weekly", keyRotationDays: 7 }) { keyRotationDays } }');
  assert.equal(created.createProvider.keyRotationDays, 7);
});

test('scheduled rotation (fake clock): on time, never before the NEXT key was published for the JWKS max-age, and a resource server caching the JWKS for its max-age verifies every new token', async () => {
  const w = await world({ keyRotationDays: 1 });
  const scheduler = t.server.services.keyRotation;
  const currentKid = async () => (await keysOf(w)).find((k) => k.status === 'CURRENT')!.kid;
  const first = await currentKid();
  // A resource server fetches the JWKS and keeps it for its max-age.
  const fetched = await jwks(w);
  const maxAgeMs = Number(/max-age=(\d+)/.exec(fetched.cacheControl!)![1]) * 1000;
  let cached = createLocalJWKSet(fetched as unknown as JSONWebKeySet);
  let cachedAt = fakeNow;

  await scheduler.tick();
  assert.equal(await currentKid(), first, 'not due yet');
  fakeNow += 86_400_000 - 60_000;
  await scheduler.tick();
  assert.equal(await currentKid(), first, 'a minute early');

  fakeNow += 60_000;
  assert.ok(fakeNow - cachedAt > maxAgeMs, 'the cached JWKS is past its max-age: the resource server fetches it again');
  cached = createLocalJWKSet((await jwks(w)) as unknown as JSONWebKeySet);
  cachedAt = fakeNow;
  const before = await token(w);
  assert.equal(await scheduler.tick(), 1);
  const second = await currentKid();
  assert.notEqual(second, first);
  assert.equal(await scheduler.tick(), 0, 'once');
  // Within the cache's max-age, every token (signed before or after the rotation) verifies with the cached set.
  assert.ok(fakeNow - cachedAt <= maxAgeMs);
  const after = await token(w);
  assert.equal(kidOf(after), second);
  await jwtVerify(before, cached);
  await jwtVerify(after, cached);
  assert.deepEqual(await seen(before, w), LIVE);
  const events = await t.gql<{ events: { edges: { node: { context: Record<string, unknown> } }[] } }>(
    '{ events(filter: { action: "CONFIG_CHANGED" }, first: 500) { edges { node { context } } } }',
  );
  assert.ok(events.events.edges.some((e) => e.node.context.operation === 'rotateSigningKeys' && e.node.context.providerId === w.provider.id && e.node.context.scheduled === true));

  // A day later the rotation is due again, but its NEXT key is made anew just now (the old NEXT
  // retired): it must be published for the JWKS max-age (and every process's key cache) first.
  fakeNow += 86_400_000;
  const next = (await keysOf(w)).find((k) => k.status === 'NEXT')!;
  await t.gql('mutation($id: ID!) { retireSigningKey(id: $id) { id } }', { id: next.id });
  await scheduler.tick();
  assert.equal(await currentKid(), second, 'the new NEXT key is too young to sign');
  fakeNow += maxAgeMs;
  await scheduler.tick();
  assert.equal(await currentKid(), second, 'still within the key caches of other processes');
  fakeNow += 30_000;
  assert.equal(await scheduler.tick(), 1);
  assert.notEqual(await currentKid(), second);
});

test('a PREVIOUS key retires by itself once the longest-lived token it signed has expired', async () => {
  const w = await world();
  await rotate(w);
  const previous = (await keysOf(w)).find((k) => k.status === 'PREVIOUS')!;
  assert.ok((await jwks(w)).keys.some((k) => k.kid === previous.kid));
  fakeNow = Date.parse(previous.retiresAt!) - 1_000;
  await t.server.services.keyRotation.tick();
  assert.equal((await keysOf(w)).find((k) => k.id === previous.id)!.status, 'PREVIOUS');
  fakeNow = Date.parse(previous.retiresAt!);
  // Treated as RETIRED at once, marked by the next sweep.
  assert.equal((await keysOf(w)).find((k) => k.id === previous.id)!.status, 'RETIRED');
  await t.server.services.keyRotation.tick();
  assert.equal((await t.server.services.store.signingKeys.findOne({ id: previous.id }))!.status, 'RETIRED');
  assert.ok(!(await jwks(w)).keys.some((k) => k.kid === previous.kid), 'no longer served');
});

test('changing signingAlgorithm rotates at once to a key of that algorithm; the old key stays PREVIOUS', async () => {
  const w = await world();
  const before = await token(w);
  await t.gql('mutation($id: ID!) { updateProvider(id: $id, input: { signingAlgorithm: ES256 }) { id } }', { id: w.provider.id });
  const after = await token(w);
  assert.equal(decodeProtectedHeader(after).alg, 'ES256');
  const keys = await keysOf(w);
  assert.equal(keys.find((k) => k.status === 'PREVIOUS')!.kid, kidOf(before));
  assert.equal(keys.find((k) => k.status === 'CURRENT')!.kid, kidOf(after));
  const set = createRemoteJWKSet(jwksUrl(w));
  await jwtVerify(before, set);
  await jwtVerify(after, set);
  assert.deepEqual(await seen(before, w), LIVE);
});

test("a federated provider's access token signed by a retired key is refused as a client_credentials assertion", async () => {
  const w = await world();
  const downstream = await t.gql<{ createProvider: { id: string } }>(
    'mutation($input: CreateProviderInput!) { createProvider(input: $input) { id } }',
    { input: { name: 'downstream', slug: unique('down'), signingAlgorithm: 'ES256', federatedProviderIds: [w.provider.id] } },
  );
  const client = await seedClient(t, { providerId: downstream.createProvider.id, type: 'PUBLIC', grantTypes: ['CLIENT_CREDENTIALS'] });
  const assertion = await token(w);
  const present = () => postForm(`${t.url}/application/o/token/`, {
    grant_type: 'client_credentials', client_id: client.clientId,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion,
  });
  const accepted = await present();
  assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
  const current = (await keysOf(w)).find((k) => k.status === 'CURRENT')!;
  await t.gql('mutation($id: ID!) { retireSigningKey(id: $id) { id } }', { id: current.id });
  const refused = await present();
  assert.equal(refused.status, 400, JSON.stringify(refused.body));
  assert.equal(refused.body.error, 'invalid_grant');
});

test('a provider of round 1 (one key, no status) keeps its CURRENT key and gets a NEXT key at start-up', async () => {
  const restarted = await startTestServer();
  const dataDir = restarted.dataDir;
  let second: TestServer | null = null;
  try {
    const provider = await seedProvider(restarted);
    const { signingKeys } = restarted.server.services.store;
    const [current] = await signingKeys.find({ providerId: provider.id, status: 'CURRENT' });
    // Make the record a round-1 one: active, no status or times, and no NEXT key.
    await signingKeys.deleteMany({ providerId: provider.id, status: 'NEXT' });
    await signingKeys.updateOne({ id: current!.id }, { $set: { active: true }, $unset: { status: true, activatedAt: true } });
    await restarted.server.stop();
    second = await startTestServer({}, dataDir);
    const records = await second.server.services.store.signingKeys.find({ providerId: provider.id });
    assert.deepEqual(records.map((r) => [r.id === current!.id, r.status]).sort(), [[false, 'NEXT'], [true, 'CURRENT']]);
    assert.equal((await second.server.services.keys.activeKey(provider.id)).kid, current!.id, 'the same key signs');
    const { keys } = (await (await fetch(`${second.url}/application/o/${provider.slug}/jwks/`)).json()) as { keys: { kid: string }[] };
    assert.equal(keys.length, 2);
    assert.equal(keys[0]!.kid, current!.id);
  } finally {
    await second?.stop();
    await restarted.stop().catch(() => undefined);
  }
});

test('a PREVIOUS key outlives the tokens it signed before its provider lowered the access-token lifetime', async () => {
  const provider = await seedProvider(t, { accessTokenLifetimeSeconds: 7200 });
  const w = { provider } as World;
  await t.gql('mutation($id: ID!) { updateProvider(id: $id, input: { accessTokenLifetimeSeconds: 60 }) { id } }', { id: provider.id });
  await rotate(w);
  const previous = (await keysOf(w)).find((k) => k.status === 'PREVIOUS')!;
  assert.ok(Date.parse(previous.retiresAt!) - Date.parse(previous.deactivatedAt!) >= 7_200_000, `${previous.deactivatedAt} → ${previous.retiresAt}`);
  await rotate(w);
  const keys = await keysOf(w);
  const second = keys.find((k) => k.status === 'PREVIOUS' && k.id !== previous.id)!;
  const span = Date.parse(second.retiresAt!) - Date.parse(second.deactivatedAt!);
  assert.ok(span < 7_200_000 && span >= 60_000, 'a key that only signed under the new lifetime retires after it');
});
