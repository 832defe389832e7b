/** testTokenExchange: the admin's dry run says what an exchange would give, and issues, stores and records nothing. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { seedMachineClient, seedMachineProvider } from '../helpers/seed.js';
import { expectGqlError } from '../helpers/admin.js';
import { TT, issue, standInIssuer, type StandIn } from '../helpers/workload.js';
import { generatedAccountId, sourceIdentityKey } from '../../src/domain/federation/service-accounts.js';
import type { Client, Provider } from '../../src/domain/model.js';

let t: TestServer;
let k8s: StandIn;
let provider: Provider;
let client: Client;
before(async () => {
  t = await startTestServer();
  k8s = await standInIssuer(t);
  provider = await seedMachineProvider(t, { federatedSourceIds: [k8s.source.id] });
  client = (await seedMachineClient(t, provider, { type: 'PUBLIC', grantTypes: ['TOKEN_EXCHANGE'] })).client;
  const policy = await t.gql<{ createExpressionPolicy: { id: string } }>(
    'mutation($input: CreateExpressionPolicyInput!) { createExpressionPolicy(input: $input) { id } }',
    { input: { name: 'no default service account', expression: '!request.context.subject_token.sub.endsWith(":default")' } },
  );
  await t.gql('mutation($input: BindPolicyInput!) { bindPolicy(input: $input) { id } }',
    { input: { policyId: policy.createExpressionPolicy.id, targetType: 'CLIENT', targetId: client.id } });
});
after(async () => {
  await t.stop();
});

const QUERY = `query($p: ID!, $c: String!, $s: String!, $st: String!, $a: String, $at: String) {
  testTokenExchange(providerId: $p, clientId: $c, subjectToken: $s, subjectTokenType: $st, actorToken: $a, actorTokenType: $at) {
    allowed error reason stage rule identity subjectClaims act delegation scope notAfter policies { policy target passed reason }
  }
}`;

interface DryRun {
  allowed: boolean; error: string | null; reason: string | null; stage: string | null; rule: string | null;
  identity: { id: string; exists: boolean } | null; subjectClaims: Record<string, unknown> | null; act: unknown; delegation: string | null;
  policies: { policy: string; target: string; passed: boolean; reason: string | null }[];
}

async function dryRun(subjectToken: string, extra: Record<string, string> = {}): Promise<DryRun> {
  const answer = await t.gql<{ testTokenExchange: DryRun }>(QUERY, { p: provider.id, c: client.clientId, s: subjectToken, st: TT.jwt, ...extra });
  return answer.testTokenExchange;
}

test('an allowed exchange: the rule, the identity (not created), the claims and the policy that passed; nothing stored or recorded', async () => {
  const sub = 'system:serviceaccount:shop:checkout';
  const result = await dryRun(await issue(k8s, { sub }));
  assert.equal(result.allowed, true, JSON.stringify(result));
  assert.equal(result.rule, 'federated_source');
  assert.equal(result.identity?.id, generatedAccountId(sourceIdentityKey(k8s.source.id, sub)));
  assert.equal(result.identity?.exists, false);
  assert.equal(result.subjectClaims?.sub, sub);
  assert.deepEqual(result.policies, [{ policy: 'no default service account', target: 'CLIENT', passed: true, reason: null }]);
  assert.equal(await t.server.services.users.get(result.identity!.id), null, 'no account was created');
  await t.server.services.events.flush();
  assert.equal((await t.server.services.store.events.find({ action: 'TOKEN_EXCHANGED' })).length, 0);
  assert.equal((await t.server.services.store.events.find({ action: 'POLICY_DENIED' })).length, 0);
});

test('a refused one says which policy and why, and which step refused an unverifiable token', async () => {
  const denied = await dryRun(await issue(k8s, { sub: 'system:serviceaccount:shop:default' }));
  assert.equal(denied.allowed, false);
  assert.equal(denied.stage, 'policy');
  assert.match(String(denied.reason), /no default service account/);
  const expired = await dryRun(await issue(k8s, { sub: 'x', exp: Math.floor(Date.now() / 1000) - 1 }));
  assert.equal(expired.stage, 'subject_token');
  assert.equal(expired.error, 'invalid_grant');
  assert.match(String(expired.reason), /expired/);
  const mayAct = await dryRun(await issue(k8s, { sub: 'alice', may_act: { sub: 'other' } }), { a: await issue(k8s, { sub: 'svc' }), at: TT.jwt });
  assert.equal(mayAct.stage, 'delegation');
  assert.match(String(mayAct.reason), /may_act/);
  await t.server.services.events.flush();
  assert.equal((await t.server.services.store.events.find({ action: 'POLICY_DENIED' })).length, 0, 'a dry run records nothing');
});

test('an unknown client or provider is NOT_FOUND', async () => {
  await expectGqlError(t, QUERY, { p: provider.id, c: 'nobody', s: 'x', st: TT.jwt }, 'NOT_FOUND');
});
