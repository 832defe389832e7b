/** exportConfig / planConfig / applyConfig through the admin API of a real server (contract: "Configuration as code"). */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { basic, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { expectGqlError, configEvents } from '../helpers/admin.js';
import { JWT_BEARER, signingKey, type SigningKey } from '../helpers/federation.js';
import { unique } from '../helpers/seed.js';

type Doc = Record<string, unknown[] | unknown>;
interface Change { action: string; kind: string; name: string; before: unknown; after: unknown }
interface Plan { changes: Change[]; secrets: { kind: string; name: string; secret: string }[] }

const EXPORT = 'query { exportConfig }';
const PLAN = 'query($d: JSON!, $p: Boolean) { planConfig(document: $d, prune: $p) { changes { action kind name before after } secrets { kind name secret } } }';
const APPLY = 'mutation($d: JSON!, $p: Boolean) { applyConfig(document: $d, prune: $p) { changes { action kind name before after } secrets { kind name secret } } }';

let t: TestServer;
let key: SigningKey;
before(async () => {
  t = await startTestServer();
  key = await signingKey();
});
after(() => t.stop());

const exportDoc = async () => (await t.gql<{ exportConfig: Doc }>(EXPORT)).exportConfig;
const planDoc = async (d: unknown, p = false) => (await t.gql<{ planConfig: Plan }>(PLAN, { d, p })).planConfig;
const applyDoc = async (d: unknown, p = false) => (await t.gql<{ applyConfig: Plan }>(APPLY, { d, p })).applyConfig;

/** A CI provider trusting a source (raw keys), a policy on its client, a device provider, people and machines. */
function ciDocument(tag: string): Doc {
  return {
    federatedSources: [{
      slug: `ci-${tag}`, name: 'CI', issuer: `https://ci.example/${tag}`, audience: 'tessera', maxTokenAgeSeconds: 600,
      jwks: { keys: [key.publicJwk] }, propertyMappings: [{ name: 'repo', expression: '{"repository": claims.repository}' }],
    }],
    policies: [
      { name: `acme-ok-${tag}`, expression: 'request.context.oauth_jwt.repository == "acme/ok"' },
      { name: `always-${tag}`, expression: 'true' },
    ],
    providers: [
      { slug: `ci-${tag}`, name: 'CI', federatedSources: [`ci-${tag}`], policies: [`always-${tag}`],
        scopeMappings: [{ scope: 'deploy', name: 'deploy', expression: '{"can_deploy": true}' }] },
      { slug: `devices-${tag}`, name: 'Devices', signingAlgorithm: 'ES256', accessTokenLifetimeSeconds: 900, dpopNonce: true, keyRotationDays: 30,
        displayName: 'Living-room devices', logoUrl: 'https://example.com/logo.png',
        deviceFlow: { userCodeCharset: 'NUMERIC', userCodeLength: 9, requirePkce: true } },
    ],
    clients: [
      { clientId: `deploy-${tag}`, provider: `ci-${tag}`, name: 'Deploy', type: 'PUBLIC', grantTypes: ['CLIENT_CREDENTIALS'], allowedScopes: ['deploy'], policies: [`acme-ok-${tag}`] },
      { clientId: `backend-${tag}`, provider: `devices-${tag}`, name: 'Backend', type: 'CONFIDENTIAL', grantTypes: ['CLIENT_CREDENTIALS'],
        allowedAudiences: ['https://orders.internal', 'billing'] },
      { clientId: `tv-${tag}`, provider: `devices-${tag}`, name: 'TV', type: 'PUBLIC', grantTypes: ['DEVICE_CODE', 'REFRESH_TOKEN'], allowedScopes: ['openid'], requireDpop: true },
    ],
    users: [{ username: `alice-${tag}`, name: 'Alice', email: 'alice@example.com', attributes: { team: 'ops' } }],
    serviceAccounts: [{ username: `robot-${tag}`, name: 'Robot', appPasswords: [{ description: 'ci', expiresAt: null }] }],
  };
}

/** The document's objects only, with every default filled in, as export shows them. */
function named(doc: Doc, tag: string): Doc {
  const out: Doc = {};
  for (const [k, v] of Object.entries(doc)) {
    out[k] = (v as Record<string, unknown>[]).filter((o) => JSON.stringify(o).includes(tag));
  }
  return out;
}

function sign(repository: string, tag: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub: 'workload', repository }).setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
    .setIssuer(`https://ci.example/${tag}`).setAudience('tessera').setIssuedAt(now).setExpirationTime(now + 300).sign(key.privateKey);
}

const tokenUrl = () => `${t.url}/application/o/token/`;

describe('round trips', () => {
  test('apply on a server without them → export shows exactly the document (defaults filled in), secrets once; the same again plans nothing', async () => {
    const tag = unique('rt');
    const doc = ciDocument(tag);
    const first = await applyDoc(doc);
    assert.ok(first.changes.length >= 14, JSON.stringify(first.changes.map((c) => `${c.action} ${c.kind} ${c.name}`)));
    assert.ok(first.changes.every((c) => c.action === 'CREATE'));
    assert.deepEqual(first.secrets.map((s) => `${s.kind} ${s.name}`).sort(), [`appPassword robot-${tag}/ci`, `client backend-${tag}`]);

    const exported = named(await exportDoc(), tag);
    const providers = exported.providers as Record<string, unknown>[];
    assert.deepEqual(providers.map((p) => p.slug), [`ci-${tag}`, `devices-${tag}`]);
    assert.deepEqual(providers[1]!.deviceFlow, {
      userCodeCharset: 'NUMERIC', userCodeAlphabet: null, userCodeLength: 9, codeLifetimeSeconds: 600, pollIntervalSeconds: 5, verificationUri: null, requirePkce: true,
    });
    assert.equal(providers[1]!.signingAlgorithm, 'ES256');
    assert.deepEqual(providers[0]!.policies, [`always-${tag}`]);
    assert.deepEqual((exported.clients as Record<string, unknown>[]).map((c) => [c.clientId, c.grantTypes, c.policies]), [
      [`deploy-${tag}`, ['CLIENT_CREDENTIALS'], [`acme-ok-${tag}`]], [`backend-${tag}`, ['CLIENT_CREDENTIALS'], []], [`tv-${tag}`, ['DEVICE_CODE', 'REFRESH_TOKEN'], []],
    ]);
    assert.doesNotMatch(JSON.stringify(exported), /secret|Hash|"id"/i, 'no secrets and no ids in an export');
    // The exported objects are the document: applying them plans nothing.
    assert.deepEqual((await planDoc(exported)).changes, []);
    assert.deepEqual((await planDoc(doc)).changes, []);
    const eventsBefore = (await configEvents(t)).length;
    const again = await applyDoc(doc);
    assert.deepEqual(again, { changes: [], secrets: [] });
    await t.server.services.events.flush();
    assert.equal((await configEvents(t)).length, eventsBefore, 'applying the same document twice writes nothing');

    // The secrets work, once shown.
    const backend = first.secrets.find((s) => s.kind === 'client')!;
    const token = await postForm(tokenUrl(), { grant_type: 'client_credentials' }, { authorization: basic(`backend-${tag}`, backend.secret) });
    assert.equal(token.status, 200, JSON.stringify(token.body));
    const robot = first.secrets.find((s) => s.kind === 'appPassword')!;
    const viaAppPassword = await postForm(tokenUrl(), { grant_type: 'client_credentials', client_id: `backend-${tag}`, username: `robot-${tag}`, password: robot.secret },
      { authorization: basic(`backend-${tag}`, backend.secret) });
    assert.equal(viaAppPassword.status, 200, JSON.stringify(viaAppPassword.body));
  });

  test('export of a server configured by mutations → plan is empty (bindings with equal order numbers included)', async () => {
    const slug = unique('mut');
    const { createProvider: p } = await t.gql<{ createProvider: { id: string } }>(
      'mutation($i: CreateProviderInput!) { createProvider(input: $i) { id } }', { i: { name: 'M', slug, deviceFlow: { userCodeCharset: 'CUSTOM', userCodeAlphabet: 'ABCDEFGH', userCodeLength: 10 } } });
    const { createClient: c } = await t.gql<{ createClient: { client: { id: string } } }>(
      'mutation($i: CreateClientInput!) { createClient(input: $i) { client { id } } }', { i: { providerId: p.id, name: 'C', type: 'PUBLIC', grantTypes: ['DEVICE_CODE'], clientId: `${slug}-c` } });
    for (const name of ['b', 'a']) {
      const { createExpressionPolicy: pol } = await t.gql<{ createExpressionPolicy: { id: string } }>(
        'mutation($i: CreateExpressionPolicyInput!) { createExpressionPolicy(input: $i) { id } }', { i: { name: `${slug}-${name}`, expression: 'true' } });
      await t.gql('mutation($i: BindPolicyInput!) { bindPolicy(input: $i) { id } }', { i: { policyId: pol.id, targetType: 'CLIENT', targetId: c.client.id } });
    }
    const exported = await exportDoc();
    const client = (exported.clients as { clientId: string; policies: string[] }[]).find((x) => x.clientId === `${slug}-c`)!;
    assert.deepEqual(client.policies, [`${slug}-b`, `${slug}-a`], 'bindings in evaluation order');
    assert.deepEqual((await planDoc(exported)).changes, []);
    assert.deepEqual((await planDoc(exported, true)).changes, [], 'prune of a complete export deletes nothing');
  });
});

describe('updates', () => {
  test('a provider\'s display name and logo set to null in the document are cleared, and the next plan is empty', async () => {
    const tag = unique('clr');
    const doc = ciDocument(tag);
    await applyDoc(doc);
    const devices = (doc.providers as Record<string, unknown>[]).find((p) => p.slug === `devices-${tag}`)!;
    Object.assign(devices, { displayName: null, logoUrl: null });
    const plan = await applyDoc(doc);
    assert.deepEqual(plan.changes.map((c) => `${c.action} ${c.kind} ${c.name}`), [`UPDATE provider devices-${tag}`]);
    const exported = (await exportDoc()).providers as Record<string, unknown>[];
    const after = exported.find((p) => p.slug === `devices-${tag}`)!;
    assert.equal(after.displayName, null);
    assert.equal(after.logoUrl, null);
    assert.deepEqual((await planDoc(doc)).changes, []);
  });

  test('reordering a client\'s policies moves its bindings (the policies stay bound); changes no mutation can make are refused', async () => {
    const tag = unique('ord');
    const doc = {
      policies: [{ name: `a-${tag}`, expression: 'true' }, { name: `b-${tag}`, expression: 'true' }],
      providers: [{ slug: `p-${tag}`, name: 'P', signingAlgorithm: 'ES256' }],
      clients: [{ clientId: `c-${tag}`, provider: `p-${tag}`, name: 'C', type: 'PUBLIC', grantTypes: ['DEVICE_CODE'], policies: [`a-${tag}`, `b-${tag}`] }],
      serviceAccounts: [{ username: `s-${tag}`, appPasswords: [{ description: 'job', expiresAt: '2099-01-01T00:00:00.000Z' }] }],
    };
    await applyDoc(doc);
    const reordered = { ...doc, clients: [{ ...doc.clients[0]!, policies: [`b-${tag}`, `a-${tag}`] }] };
    const planned = await applyDoc(reordered);
    assert.deepEqual(planned.changes.map((c) => `${c.action} ${c.kind} ${c.name} ${JSON.stringify(c.after)}`), [
      `UPDATE binding client c-${tag} → b-${tag} {"order":0}`, `UPDATE binding client c-${tag} → a-${tag} {"order":1}`,
    ]);
    const client = (await exportDoc()).clients as { clientId: string; policies: string[] }[];
    assert.deepEqual(client.find((c) => c.clientId === `c-${tag}`)!.policies, [`b-${tag}`, `a-${tag}`]);
    assert.deepEqual((await planDoc(reordered)).changes, []);
    await expectGqlError(t, PLAN, { d: { clients: [{ ...doc.clients[0]!, type: 'CONFIDENTIAL' }] } }, 'BAD_USER_INPUT', 'clients[0].type');
    await expectGqlError(t, PLAN, { d: { serviceAccounts: [{ username: `s-${tag}`, appPasswords: [{ description: 'job', expiresAt: '2098-01-01T00:00:00.000Z' }] }] } },
      'BAD_USER_INPUT', 'serviceAccounts[0].appPasswords[0].expiresAt');
  });
});

describe('refusals change nothing', () => {
  test('an invalid part anywhere: BAD_USER_INPUT naming its path, and nothing is written', async () => {
    const tag = unique('bad');
    const doc = ciDocument(tag);
    const before = await exportDoc();
    const cases: [unknown, string][] = [
      [{ ...doc, providers: [...(doc.providers as object[]), { slug: `x-${tag}`, name: 'X', deviceFlow: { userCodeLength: 2 } }] }, 'providers[2].deviceFlow.userCodeLength'],
      [{ ...doc, clients: [...(doc.clients as object[]), { clientId: `y-${tag}`, provider: `ci-${tag}`, name: 'Y', type: 'PUBLIC', grantTypes: ['CLIENT_CREDENTIALS'], policies: ['nope'] }] }, 'clients[3].policies[0]'],
      [{ ...doc, policies: [{ name: 'broken', expression: 'request.user.' }] }, 'policies[0].expression'],
      [{ ...doc, clients: [{ ...(doc.clients as object[])[0]!, clientSecret: 'hunter2hunter2' }] }, 'clients[0].clientSecret'],
      [{ ...doc, federatedSources: [{ ...(doc.federatedSources as object[])[0]!, jwks: { keys: [{ ...key.publicJwk, d: 'c2VjcmV0' }] } }] }, 'federatedSources[0].jwks.keys[0].d'],
      [{ ...doc, users: [{ username: 'carol', password: 'correct horse battery' }] }, 'users[0].password'],
      [{ ...doc, providers: [{ slug: `a-${tag}`, name: 'A' }, { slug: `a-${tag}`, name: 'B' }] }, 'providers[1].slug'],
      [{ ...doc, providers: [{ slug: `a-${tag}`, name: 'A', color: 'red' }] }, 'providers[0].color'],
    ];
    for (const [document, path] of cases) {
      const message = await expectGqlError(t, APPLY, { d: document }, 'BAD_USER_INPUT', path);
      assert.ok(message.startsWith(path), message);
      await expectGqlError(t, PLAN, { d: document }, 'BAD_USER_INPUT', path);
    }
    assert.deepEqual(await exportDoc(), before, 'no refused document changed anything');
  });

  test('a write that fails mid-way (a JWKS URL that does not answer) rolls back the writes before it', async () => {
    const tag = unique('rb');
    const jwks = { keys: [key.publicJwk] };
    await applyDoc({ federatedSources: [{ slug: `old-${tag}`, name: 'Old', jwks }] });
    const before = await exportDoc();
    const document = {
      federatedSources: [
        { slug: `old-${tag}`, name: 'Renamed', jwks },
        { slug: `new-${tag}`, name: 'New', jwks },
        { slug: `dead-${tag}`, name: 'Dead', jwksUrl: 'http://127.0.0.1:1/jwks' },
      ],
      policies: [{ name: `later-${tag}`, expression: 'true' }],
    };
    const response = await fetch(`${t.url}/graphql`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${t.adminToken}` },
      body: JSON.stringify({ query: APPLY, variables: { d: document } }),
    });
    const body = (await response.json()) as { errors: { message: string; extensions: { code: string; field: string } }[] };
    assert.equal(body.errors[0]!.extensions.code, 'BAD_USER_INPUT');
    assert.equal(body.errors[0]!.extensions.field, 'federatedSources[2].jwksUrl');
    assert.deepEqual(await exportDoc(), before, 'the rename and the new source were undone; the policy never written');
    await t.server.services.events.flush();
    const events = (await configEvents(t)).filter((e) => e.requestId === response.headers.get('x-request-id'));
    assert.deepEqual(events.map((e) => `${e.context.operation} ${e.context.action} ${e.context.name}`).sort(), [
      `applyConfig CREATE new-${tag}`, `applyConfig UPDATE old-${tag}`, `applyConfig:rollback CREATE new-${tag}`, `applyConfig:rollback UPDATE old-${tag}`,
    ]);
  });

  test('a generated service account named in a document is refused with its path', async () => {
    const now = new Date();
    const username = unique('gen');
    await t.server.services.store.users.insert({
      id: crypto.randomUUID(), username, name: null, email: null, type: 'GENERATED_SERVICE_ACCOUNT', isActive: true, isAdmin: false, attributes: {},
      passwordHash: null, expiresAt: new Date(Date.now() + 60_000), identityKey: unique('ik'), createdAt: now, updatedAt: now,
    });
    assert.ok(!JSON.stringify(await exportDoc()).includes(username), 'generated accounts are not exported');
    await expectGqlError(t, APPLY, { d: { serviceAccounts: [{ username: 'fine-robot' }, { username }] } }, 'BAD_USER_INPUT', 'serviceAccounts[1].username');
    assert.equal(await t.server.services.users.getByUsername('fine-robot'), null);
  });
});

describe('prune', () => {
  test('deletes only what the document no longer names, and never the admin applying it', async () => {
    const tag = unique('prune');
    const doc = ciDocument(tag);
    await applyDoc(doc);
    const full = await exportDoc();
    const clients = (full.clients as { clientId: string }[]).filter((c) => c.clientId !== `tv-${tag}`);
    const smaller = { ...full, clients, users: (full.users as { username: string }[]).filter((u) => u.username !== 'admin') };
    assert.deepEqual((await planDoc(smaller)).changes, [], 'without prune, absence deletes nothing');
    const planned = await planDoc(smaller, true);
    assert.deepEqual(planned.changes.map((c) => `${c.action} ${c.kind} ${c.name}`), [`DELETE client tv-${tag}`]);
    await applyDoc(smaller, true);
    const after = await exportDoc();
    assert.ok(!(after.clients as { clientId: string }[]).some((c) => c.clientId === `tv-${tag}`));
    assert.ok((after.users as { username: string }[]).some((u) => u.username === 'admin'), 'the applying admin stays');
    assert.deepEqual((await planDoc(after, true)).changes, []);
  });
});

describe('events', () => {
  test('every change is a CONFIG_CHANGED event carrying the apply\'s request id, without values', async () => {
    const tag = unique('ev');
    const response = await fetch(`${t.url}/graphql`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${t.adminToken}` },
      body: JSON.stringify({ query: APPLY, variables: { d: { policies: [{ name: `p-${tag}`, expression: 'true' }], users: [{ username: `u-${tag}`, email: 'secret-ish@example.com' }] } } }),
    });
    const requestId = response.headers.get('x-request-id');
    assert.ok(requestId);
    const body = (await response.json()) as { data: { applyConfig: Plan } };
    assert.equal(body.data.applyConfig.changes.length, 2);
    await t.server.services.events.flush();
    const events = (await configEvents(t)).filter((e) => e.requestId === requestId);
    assert.deepEqual(events.map((e) => `${e.context.action} ${e.context.kind} ${e.context.name}`).sort(), [`CREATE policy p-${tag}`, `CREATE user u-${tag}`]);
    assert.ok(events.every((e) => e.context.operation === 'applyConfig' && e.username === 'admin'));
    assert.doesNotMatch(JSON.stringify(events), /secret-ish/, 'field names, not values');
  });
});

describe('all or nothing for token requests', () => {
  test('token requests during an apply never succeed in a state the document does not describe (trust without the client\'s policy)', async () => {
    const tag = unique('race');
    const doc = ciDocument(tag);
    const provider = (doc.providers as Record<string, unknown>[])[0]!;
    provider.signingAlgorithm = 'ES256';
    const client = (doc.clients as Record<string, unknown>[])[0]!;
    const clientId = client.clientId as string;
    // Before: the provider trusts no source and its client has no policy (JWTs are refused for want of trust).
    await applyDoc({ providers: [{ ...provider, federatedSources: [], policies: [], scopeMappings: [] }], clients: [{ ...client, policies: [] }] });
    // The apply adds the source, the trust and the policy, and more clients (more writes while requests run).
    doc.clients = [...(doc.clients as object[]), ...Array.from({ length: 20 }, (_, i) => ({ ...client, clientId: `${clientId}-${i}` }))];
    const [evil, good] = await Promise.all([sign('acme/evil', tag), sign('acme/ok', tag)]);
    let applying = true;
    const outcomes: { repo: string; status: number }[] = [];
    const hammer = async (repo: string, assertion: string) => {
      while (applying) {
        const r = await postForm(tokenUrl(), { grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: assertion });
        outcomes.push({ repo, status: r.status });
      }
    };
    const loops = [hammer('evil', evil), hammer('evil', evil), hammer('evil', evil), hammer('evil', evil), hammer('good', good)];
    await new Promise((r) => setTimeout(r, 30));
    await applyDoc(doc);
    applying = false;
    await Promise.all(loops);
    assert.ok(outcomes.length > 10, `requests ran during the apply (${outcomes.length})`);
    assert.deepEqual(outcomes.filter((o) => o.repo === 'evil' && o.status === 200), [], 'no token while the provider trusts the source but the client lacks its policy');
    const afterwards = await postForm(tokenUrl(), { grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: good });
    assert.equal(afterwards.status, 200, JSON.stringify(afterwards.body));
    const refused = await postForm(tokenUrl(), { grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: evil });
    assert.equal(refused.status, 400);
  });
});
