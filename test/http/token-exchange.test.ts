/**
 * Token exchange (RFC 8693, contract version 2) over HTTP: subject tokens of this server (issued to
 * the client, or naming it in aud) and of federated sources, delegation by may_act or a client
 * policy with act nested (at most 5 deep), scope and lifetime only narrowing, and every refusal a
 * clear OAuth error with the private reason in a LOGIN_FAILED event.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { basic, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { seedMachineClient, seedMachineProvider } from '../helpers/seed.js';
import { jwtPayload } from '../helpers/device.js';
import { TOKEN_EXCHANGE, TT, eventsOf, issue, standInIssuer, type StandIn } from '../helpers/workload.js';
import type { Provider } from '../../src/domain/model.js';

let t: TestServer;
let ci: StandIn;
let provider: Provider;
const RS = 'https://orders.example/api';
let rs: { auth: Record<string, string>; id: string };
let caller: { auth: Record<string, string>; clientId: string };

before(async () => {
  t = await startTestServer();
  ci = await standInIssuer(t);
  provider = await seedMachineProvider(t, { federatedSourceIds: [ci.source.id] });
  const server = await seedMachineClient(t, provider, { clientId: RS, grantTypes: ['TOKEN_EXCHANGE'], allowedScopes: ['profile', 'email'] });
  await t.server.services.clients.update(server.client.id, { allowedAudiences: ['https://billing.example'] });
  rs = { auth: { authorization: basic(RS, server.clientSecret!) }, id: server.client.id };
  const c = await seedMachineClient(t, provider, { allowedScopes: ['profile', 'email'] });
  await t.server.services.clients.update(c.client.id, { allowedAudiences: [RS] });
  caller = { auth: { authorization: basic(c.clientId, c.clientSecret!) }, clientId: c.clientId };
});
after(async () => {
  await t.stop();
});

const tokenUrl = () => `${t.url}/application/o/token/`;
const exchange = (form: Record<string, string>, auth = rs.auth) => postForm(tokenUrl(), { grant_type: TOKEN_EXCHANGE, ...form }, auth);

/** The caller's token for the resource server (aud = RS), as a resource server receives it. */
async function callerToken(scope = 'profile email'): Promise<string> {
  const answer = await postForm(tokenUrl(), [['grant_type', 'client_credentials'], ['scope', scope], ['resource', RS]], caller.auth);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return String(answer.body.access_token);
}

async function refused(answer: Awaited<ReturnType<typeof exchange>>, error: string, reason: RegExp) {
  assert.equal(answer.body.error, error, JSON.stringify(answer.body));
  assert.ok(answer.status === 400 || answer.status === 401);
  assert.equal(answer.body.access_token, undefined);
  const events = await eventsOf(t, answer);
  const failed = events.find((e) => e.action === 'LOGIN_FAILED');
  assert.ok(failed, `a LOGIN_FAILED event: ${JSON.stringify(events)}`);
  assert.match(String(failed.context.reason), reason);
}

describe('subject tokens of this server', () => {
  test('a token naming the resource server in aud: same sub, issued_token_type, no refresh token, scope and exp within the subject\'s, TOKEN_EXCHANGED', async () => {
    const subject = await callerToken();
    const answer = await exchange({ subject_token: subject, subject_token_type: TT.access });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.issued_token_type, TT.access);
    assert.equal(answer.body.token_type, 'Bearer');
    assert.equal(answer.body.refresh_token, undefined);
    assert.equal(answer.body.scope, 'profile email');
    const claims = jwtPayload(String(answer.body.access_token));
    const input = jwtPayload(subject);
    assert.equal(claims.sub, input.sub);
    assert.equal(claims.client_id, RS);
    assert.ok(Number(claims.exp) <= Number(input.exp));
    assert.equal(claims.sid, input.sid, 'the new token dies with the credential the subject token was issued on');
    const [event] = (await eventsOf(t, answer)).filter((e) => e.action === 'TOKEN_EXCHANGED');
    assert.equal(event?.context.subjectTokenType, TT.access);
  });

  test('scope may narrow, never widen', async () => {
    const subject = await callerToken('profile');
    assert.equal((await exchange({ subject_token: subject, subject_token_type: TT.access, scope: 'profile' })).body.scope, 'profile');
    const wider = await exchange({ subject_token: subject, subject_token_type: TT.access, scope: 'profile email' });
    await refused(wider, 'invalid_scope', /not granted/);
  });

  test('audience (repeatable) names the new token\'s aud; outside allowedAudiences is invalid_target', async () => {
    const subject = await callerToken();
    const ok = await postForm(tokenUrl(), [['grant_type', TOKEN_EXCHANGE], ['subject_token', subject], ['subject_token_type', TT.access], ['audience', 'https://billing.example']], rs.auth);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(jwtPayload(String(ok.body.access_token)).aud, 'https://billing.example');
    const no = await postForm(tokenUrl(), [['grant_type', TOKEN_EXCHANGE], ['subject_token', subject], ['subject_token_type', TT.access], ['audience', 'https://billing.example'], ['audience', 'payroll']], rs.auth);
    assert.equal(no.body.error, 'invalid_target');
  });

  test("a token of another client that does not name this client is invalid_grant", async () => {
    const plain = await postForm(tokenUrl(), { grant_type: 'client_credentials' }, caller.auth);
    await refused(await exchange({ subject_token: String(plain.body.access_token), subject_token_type: TT.access }), 'invalid_grant', /does not name/);
  });

  test('a token of a provider that is not federated is invalid_grant', async () => {
    const other = await seedMachineProvider(t);
    const c = await seedMachineClient(t, other);
    const token = await postForm(tokenUrl(), { grant_type: 'client_credentials' }, { authorization: basic(c.clientId, c.clientSecret!) });
    await refused(await exchange({ subject_token: String(token.body.access_token), subject_token_type: TT.access }), 'invalid_grant', /not a federated provider/);
  });

  test('a revoked subject token is invalid_grant', async () => {
    const subject = await callerToken();
    assert.equal((await postForm(`${t.url}/application/o/revoke/`, { token: subject }, caller.auth)).status, 200);
    await refused(await exchange({ subject_token: subject, subject_token_type: TT.access }), 'invalid_grant', /revoked/);
  });

  test('the wrong type: our token as jwt, a federated JWT as access_token, is invalid_grant', async () => {
    await refused(await exchange({ subject_token: await callerToken(), subject_token_type: TT.jwt }), 'invalid_grant', /provider/);
    await refused(await exchange({ subject_token: await issue(ci, { sub: 'w' }), subject_token_type: TT.access }), 'invalid_grant', /federated source's JWT/);
  });
});

describe('subject tokens of federated sources', () => {
  test('a source JWT (jwt or id_token type) gets the generated account, expires_in never past its exp', async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const type of [TT.jwt, TT.idToken]) {
      const answer = await exchange({ subject_token: await issue(ci, { sub: 'workload', exp: now + 60 }), subject_token_type: type });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.ok(Number(answer.body.expires_in) <= 60);
      const user = await t.server.services.users.get(String(jwtPayload(String(answer.body.access_token)).sub));
      assert.equal(user?.type, 'GENERATED_SERVICE_ACCOUNT');
    }
  });

  test('expired, not yet valid, unsigned, HS256 with the public key: invalid_grant', async () => {
    const now = Math.floor(Date.now() / 1000);
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: ci.issuer, sub: 'a', aud: 'tessera', exp: now + 60 })).toString('base64url')}.`;
    const { createHmac } = await import('node:crypto');
    const h = Buffer.from(JSON.stringify({ alg: 'HS256', kid: ci.key.kid })).toString('base64url');
    const p = Buffer.from(JSON.stringify({ iss: ci.issuer, sub: 'a', aud: 'tessera', exp: now + 60 })).toString('base64url');
    const hs = `${h}.${p}.${createHmac('sha256', JSON.stringify(ci.key.publicJwk)).update(`${h}.${p}`).digest('base64url')}`;
    const cases: [string, RegExp][] = [
      [await issue(ci, { sub: 'a', exp: now - 5 }), /expired/],
      [await issue(ci, { sub: 'a', nbf: now + 600 }), /not valid before/],
      [none, /none/],
      [hs, /HMAC/],
    ];
    for (const [token, reason] of cases) await refused(await exchange({ subject_token: token, subject_token_type: TT.jwt }), 'invalid_grant', reason);
  });
});

describe('bad parameters', () => {
  test('requested_token_type other than access_token, an unknown token type, missing, empty, oversized or repeated subject_token: invalid_request', async () => {
    const subject = await callerToken();
    const cases: Record<string, string>[] = [
      { subject_token: subject, subject_token_type: TT.access, requested_token_type: TT.refresh },
      { subject_token: subject, subject_token_type: 'urn:example:saml' },
      { subject_token_type: TT.access },
      { subject_token: '', subject_token_type: TT.access },
      { subject_token: subject, subject_token_type: '' },
      { subject_token: 'a'.repeat(16_385), subject_token_type: TT.jwt },
      { subject_token: subject, subject_token_type: TT.access, actor_token: subject },
      { subject_token: subject, subject_token_type: TT.access, actor_token_type: TT.access },
    ];
    for (const form of cases) await refused(await exchange(form), 'invalid_request', /./);
    for (const name of ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'requested_token_type', 'scope']) {
      const pairs: [string, string][] = [['grant_type', TOKEN_EXCHANGE], ['subject_token', subject], ['subject_token_type', TT.access], [name, 'x'], [name, 'x']];
      const answer = await postForm(tokenUrl(), pairs, rs.auth);
      assert.equal(answer.body.error, 'invalid_request', name);
    }
  });

  test('a subject token just under 16 KB is accepted; a client without the grant is unauthorized_client', async () => {
    const big = await issue(ci, { sub: 'big', pad: 'x'.repeat(12_000) });
    assert.ok(big.length <= 16_384 && big.length > 16_000, String(big.length));
    const answer = await exchange({ subject_token: big, subject_token_type: TT.jwt });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal((await exchange({ subject_token: big, subject_token_type: TT.jwt }, caller.auth)).body.error, 'unauthorized_client');
  });
});

describe('delegation (actor_token)', () => {
  const actorOf = () => issue(ci, { sub: 'svc-frontend' });

  test("the subject's may_act names the actor: act {sub, iss}; introspection shows it", async () => {
    const subject = await issue(ci, { sub: 'alice', may_act: { sub: 'svc-frontend', iss: ci.issuer } });
    const answer = await exchange({ subject_token: subject, subject_token_type: TT.jwt, actor_token: await actorOf(), actor_token_type: TT.jwt });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(jwtPayload(String(answer.body.access_token)).act, { sub: 'svc-frontend', iss: ci.issuer });
    const introspected = await postForm(`${t.url}/application/o/introspect/`, { token: String(answer.body.access_token) }, rs.auth);
    assert.equal(introspected.body.active, true);
    assert.deepEqual(introspected.body.act, { sub: 'svc-frontend', iss: ci.issuer });
  });

  test('a may_act naming someone else is invalid_grant, whatever policies say', async () => {
    const subject = await issue(ci, { sub: 'alice', may_act: { sub: 'svc-other' } });
    await refused(await exchange({ subject_token: subject, subject_token_type: TT.jwt, actor_token: await actorOf(), actor_token_type: TT.jwt }), 'invalid_grant', /may_act/);
  });

  test('without may_act a policy bound to the client must allow it; it sees subject_token and actor_token', async () => {
    const subject = await issue(ci, { sub: 'bob' });
    const form = async () => ({ subject_token: subject, subject_token_type: TT.jwt, actor_token: await actorOf(), actor_token_type: TT.jwt });
    await refused(await exchange(await form()), 'invalid_grant', /no policy is bound/);
    const policy = await t.gql<{ createExpressionPolicy: { id: string } }>(
      'mutation($input: CreateExpressionPolicyInput!) { createExpressionPolicy(input: $input) { id } }',
      { input: { name: 'frontend may act for people', expression: 'request.context.actor_token.sub == "svc-frontend" && request.context.subject_token.sub != "root"' } },
    );
    const bound = await t.gql<{ bindPolicy: { id: string } }>('mutation($input: BindPolicyInput!) { bindPolicy(input: $input) { id } }',
      { input: { policyId: policy.createExpressionPolicy.id, targetType: 'CLIENT', targetId: rs.id } });
    try {
      const ok = await exchange(await form());
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.equal((jwtPayload(String(ok.body.access_token)).act as { sub: string }).sub, 'svc-frontend');
      const root = await exchange({ subject_token: await issue(ci, { sub: 'root' }), subject_token_type: TT.jwt, actor_token: await actorOf(), actor_token_type: TT.jwt });
      await refused(root, 'invalid_grant', /frontend may act/);
    } finally {
      await t.gql('mutation($id: ID!) { unbindPolicy(id: $id) }', { id: bound.bindPolicy.id });
    }
  });

  test('an act already in the subject nests inside; a chain deeper than 5 is refused', async () => {
    const chain = (depth: number): Record<string, unknown> | undefined => (depth === 0 ? undefined : { sub: `hop-${depth}`, ...(depth > 1 ? { act: chain(depth - 1) } : {}) });
    const nested = await issue(ci, { sub: 'carol', act: chain(1), may_act: { sub: 'svc-frontend' } });
    const answer = await exchange({ subject_token: nested, subject_token_type: TT.jwt, actor_token: await actorOf(), actor_token_type: TT.jwt });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(jwtPayload(String(answer.body.access_token)).act, { sub: 'svc-frontend', iss: ci.issuer, act: { sub: 'hop-1' } });
    const five = await issue(ci, { sub: 'dave', act: chain(5), may_act: { sub: 'svc-frontend' } });
    const carried = await exchange({ subject_token: five, subject_token_type: TT.jwt });
    assert.equal(carried.status, 200, 'five deep without a new actor is kept as it is');
    assert.deepEqual(jwtPayload(String(carried.body.access_token)).act, chain(5));
    await refused(await exchange({ subject_token: five, subject_token_type: TT.jwt, actor_token: await actorOf(), actor_token_type: TT.jwt }), 'invalid_grant', /at most 5/);
  });
});
