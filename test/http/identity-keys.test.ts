/**
 * Issue 11 point 1, as an attacker tries it over HTTP: generated service accounts are keyed by
 * identity ((source id, sub) or (provider id, client_id)), never by name, and nothing is stored
 * before the bound policies allow the request. Each test names the round-1 attack it replays.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { SignJWT, decodeJwt, type CryptoKey, type JWTPayload } from 'jose';
import { basic, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { JWT_BEARER, signingKey } from '../helpers/federation.js';
import { seedMachineClient, seedMachineProvider, unique } from '../helpers/seed.js';
import type { FederatedSource, Provider, User } from '../../src/domain/model.js';

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.stop();
});

const tokenUrl = () => `${t.url}/application/o/token/`;

interface Source extends FederatedSource { privateKey: CryptoKey; kid: string }

/** A source with a key of its own: only that source verifies its JWTs. */
async function source(slug: string): Promise<Source> {
  const now = new Date();
  const { privateKey, kid, publicJwk } = await signingKey();
  const record = await t.server.services.store.federatedSources.insert({
    id: crypto.randomUUID(), name: slug, slug, issuer: null, audience: 'tessera', jwksUrl: null, oidcDiscoveryUrl: null,
    jwks: { keys: [publicJwk] }, keysFetchedAt: null, createdAt: now, updatedAt: now,
  });
  return { ...record, privateKey, kid };
}

function jwt(from: Source, claims: JWTPayload & { sub: string }, lifetime = 300): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ aud: 'tessera', ...claims }).setProtectedHeader({ alg: 'ES256', kid: from.kid, typ: 'JWT' })
    .setIssuedAt(now).setExpirationTime(now + lifetime).sign(from.privateKey);
}

/** A provider trusting these sources, and a public client_credentials client of it. */
async function trusting(sources: Source[], input: { slug?: string } = {}): Promise<{ provider: Provider; clientId: string }> {
  const provider = await seedMachineProvider(t, { slug: input.slug, federatedSourceIds: sources.map((s) => s.id) });
  const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
  return { provider, clientId };
}

async function assertionToken(clientId: string, assertion: string) {
  return postForm(tokenUrl(), { grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: assertion });
}

async function subOf(clientId: string, assertion: string): Promise<string> {
  const response = await assertionToken(clientId, assertion);
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return String(decodeJwt(String(response.body.access_token)).sub);
}

const generated = async (): Promise<User[]> => t.server.services.store.users.find({ type: 'GENERATED_SERVICE_ACCOUNT' });
const stored = async (id: string): Promise<User | null> => t.server.services.store.users.findOne({ id });

describe('one account per identity, whatever the names', () => {
  test('prefix slugs: k8s + prod-x and k8s-prod + x get different accounts, and neither changes the other', async () => {
    const base = unique('k8s');
    const short = await source(base);
    const long = await source(`${base}-prod`);
    const { clientId } = await trusting([short, long]);
    const first = await subOf(clientId, await jwt(short, { sub: 'prod-x' }));
    const before = await stored(first);
    const second = await subOf(clientId, await jwt(long, { sub: 'x' }, 900));
    assert.notEqual(second, first, 'round 1 joined both to the name k8s-prod-x and gave the second the first one\'s account');
    const after = await stored(first);
    assert.equal(after?.attributes.federatedSourceId, short.id);
    assert.equal(after?.attributes.sub, 'prod-x');
    assert.equal(after?.expiresAt?.getTime(), before?.expiresAt?.getTime(), "the victim's expiresAt did not move");
  });

  test("a crafted sub: another account's sanitised name plus its (computable) hash gets its own account", async () => {
    const slug = unique('cluster');
    const src = await source(slug);
    const { clientId } = await trusting([src]);
    const victimSub = 'system:serviceaccount:prod:deployer';
    const victim = await subOf(clientId, await jwt(src, { sub: victimSub }));
    // Round 1 named the victim `<slug>-system_serviceaccount_prod_deployer-<12 hex of sha256('<slug>-<sub>')>`;
    // a sub that sanitises to itself and equals that name's tail got the victim's account.
    const hash = createHash('sha256').update(`${slug}-${victimSub}`).digest('hex').slice(0, 12);
    const craftedSub = `system_serviceaccount_prod_deployer-${hash}`;
    const attacker = await subOf(clientId, await jwt(src, { sub: craftedSub }));
    assert.notEqual(attacker, victim);
    assert.equal((await stored(victim))?.attributes.sub, victimSub);
  });

  test("a source whose slug is a provider's slug cannot get rule 3's account, even one made an admin", async () => {
    const slug = unique('machines');
    const provider = await seedMachineProvider(t, { slug });
    const confidential = await seedMachineClient(t, provider);
    const rule3 = await postForm(tokenUrl(), { grant_type: 'client_credentials' }, { authorization: basic(confidential.clientId, confidential.clientSecret!) });
    assert.equal(rule3.status, 200, JSON.stringify(rule3.body));
    const rule3Sub = String(decodeJwt(String(rule3.body.access_token)).sub);
    await t.gql('mutation($id: ID!) { updateUser(id: $id, input: { isAdmin: true }) { id } }', { id: rule3Sub });

    const impostor = await source(slug);
    await t.server.services.providers.update(provider.id, { federatedSourceIds: [impostor.id] });
    const publicClient = await seedMachineClient(t, provider, { type: 'PUBLIC' });
    const response = await assertionToken(publicClient.clientId, await jwt(impostor, { sub: `${confidential.clientId}-client_credentials` }));
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const accessToken = String(response.body.access_token);
    assert.notEqual(decodeJwt(accessToken).sub, rule3Sub);
    const asAdmin = await t.gqlRaw('{ providers { id } }', undefined, accessToken);
    assert.notEqual(asAdmin.status, 200, 'the JWT did not get admin access');
    const account = await stored(rule3Sub);
    assert.deepEqual(account?.attributes, { providerId: provider.id, clientId: confidential.clientId }, "rule 3's account was not rewritten");
    assert.equal(account?.isAdmin, true);
  });

  test('the account id (the sub of tokens) is the same after the account expired and was removed', async () => {
    const src = await source(unique('ephemeral'));
    const { clientId } = await trusting([src]);
    const first = await subOf(clientId, await jwt(src, { sub: 'job' }));
    await t.gql('mutation($id: ID!) { deleteUser(id: $id) }', { id: first });
    assert.equal(await stored(first), null);
    const again = await subOf(clientId, await jwt(src, { sub: 'job' }));
    assert.equal(again, first);
  });
});

describe('nothing is written before the policies allow the request', () => {
  async function policyOnClient(clientId: string, expression: string): Promise<void> {
    const client = (await t.server.services.clients.getByClientId(clientId))!;
    const policy = await t.server.services.policies.createPolicy({ name: unique('policy'), expression });
    await t.server.services.policies.bind({ policyId: policy.id, targetType: 'CLIENT', targetId: client.id });
  }

  test('a denied JWT creates no account and changes no expiresAt', async () => {
    const src = await source(unique('ci'));
    const { clientId } = await trusting([src]);
    await policyOnClient(clientId, 'request.context.oauth_jwt.repository == "acme/ok"');
    const allowedSub = await subOf(clientId, await jwt(src, { sub: 'repo', repository: 'acme/ok' }, 120));
    const before = await stored(allowedSub);
    const count = (await generated()).length;

    const deniedSameSub = await assertionToken(clientId, await jwt(src, { sub: 'repo', repository: 'evil/fork' }, 3000));
    assert.equal(deniedSameSub.status, 400);
    assert.equal(deniedSameSub.body.error, 'invalid_grant');
    assert.equal((await stored(allowedSub))?.expiresAt?.getTime(), before?.expiresAt?.getTime());
    assert.deepEqual((await stored(allowedSub))?.attributes, before?.attributes);

    const deniedNewSub = await assertionToken(clientId, await jwt(src, { sub: 'never-allowed', repository: 'evil/fork' }));
    assert.equal(deniedNewSub.status, 400);
    const after = await generated();
    assert.equal(after.length, count, 'no account was made for the denied subject');
    assert.ok(!after.some((u) => u.attributes.sub === 'never-allowed'));
  });

  test("a denied rule-3 request creates no account", async () => {
    const provider = await seedMachineProvider(t);
    const { clientId, clientSecret } = await seedMachineClient(t, provider);
    await policyOnClient(clientId, 'request.client.client_id == "someone-else"');
    const response = await postForm(tokenUrl(), { grant_type: 'client_credentials' }, { authorization: basic(clientId, clientSecret!) });
    assert.equal(response.status, 400);
    assert.equal(response.body.error, 'invalid_grant');
    assert.ok(!(await generated()).some((u) => u.attributes.clientId === clientId));
  });
});
