/**
 * The evaluation bound holds for what expressions call, over HTTP: an admin's testPolicy and a
 * bound policy evaluated on a caller's claims answer within the bound with a clear error, and
 * /healthz answers meanwhile (the library's duration() once blocked the process 18 s on "1"×4000).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { unique } from '../helpers/seed.js';

const TEST_POLICY = 'query($e: String!, $c: JSON) { testPolicy(expression: $e, context: $c) { passed result error steps } }';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Generous for a shared CI machine; the unbounded evaluations took seconds. */
const ANSWERED_WITHIN_MS = 1_000;

interface TestResult {
  passed: boolean;
  error: string | null;
}

let t: TestServer;

before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.stop();
});

/** Runs `request` while /healthz is asked; both must answer within ANSWERED_WITHIN_MS. */
async function alongsideHealthz<T>(request: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const [answer, health] = await Promise.all([
    request(),
    (async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      const asked = performance.now();
      const response = await fetch(`${t.url}/healthz`);
      return { status: response.status, ms: performance.now() - asked };
    })(),
  ]);
  const elapsed = performance.now() - started;
  assert.ok(elapsed < ANSWERED_WITHIN_MS, `answered in ${elapsed.toFixed(0)} ms`);
  assert.equal(health.status, 200);
  assert.ok(health.ms < ANSWERED_WITHIN_MS, `/healthz answered in ${health.ms.toFixed(0)} ms`);
  return answer;
}

async function timedTestPolicy(expression: string, context: unknown): Promise<TestResult> {
  const answer = await alongsideHealthz(() => t.gqlRaw(TEST_POLICY, { e: expression, c: context }));
  if (answer.body.errors?.length) return { passed: false, error: answer.body.errors[0]!.message };
  return (answer.body.data as { testPolicy: TestResult }).testPolicy;
}

describe('testPolicy with pathological builtin inputs', () => {
  test('duration("1"×4000) answers at once with a clear error, /healthz meanwhile', async () => {
    const result = await timedTestPolicy(`duration("${'1'.repeat(4_000)}") > duration("1s")`, {});
    assert.equal(result.passed, false);
    assert.match(String(result.error), /duration strings are limited to 64 characters/);
  });

  test('duration() of a long digit claim and of a malformed one', async () => {
    const long = await timedTestPolicy('duration(request.d) > duration("1s")', { request: { d: '1'.repeat(40_000) } });
    assert.match(String(long.error), /duration strings are limited/);
    const malformed = await timedTestPolicy('duration(request.d) > duration("1s")', { request: { d: `${'1'.repeat(60)}x` } });
    assert.match(String(malformed.error), /invalid duration string/);
    const valid = await timedTestPolicy('duration(request.d) > duration("1s")', { request: { d: '1h30m' } });
    assert.equal(valid.passed, true);
    assert.equal(valid.error, null);
  });

  test('timestamp() of a 40,000-character claim answers at once with a clear error', async () => {
    const result = await timedTestPolicy('timestamp(request.t) > timestamp(0)', { request: { t: '2'.repeat(40_000) } });
    assert.equal(result.passed, false);
    assert.match(String(result.error), /timestamp\(\) requires a string in ISO 8601 format/);
  });

  test('a regular expression is refused before it runs (matches() is not allowed)', async () => {
    const result = await timedTestPolicy('request.s.matches("^(a+)+$")', { request: { s: `${'a'.repeat(40)}!` } });
    assert.match(String(result.error), /matches\(\) is not allowed/);
  });

  test('join() over a list of 65,536 references to one claim is stopped before it builds 327 M characters', async () => {
    let expression = 'size(L.join()) > 0';
    for (let i = 0; i < 8; i++) expression = `cel.bind(L, L + L + L + L, ${expression})`;
    const result = await timedTestPolicy(`cel.bind(L, [request.s], ${expression})`, { request: { s: 'a'.repeat(5_000) } });
    assert.equal(result.passed, false);
    assert.match(String(result.error), /evaluation stopped: a value larger than 100000/);
  });

  test('a 200,000-character claim is refused when read', async () => {
    const result = await timedTestPolicy('size(request.s) > 0', { request: { s: 'a'.repeat(200_000) } });
    assert.match(String(result.error), /evaluation stopped: a value larger than 100000/);
  });
});

describe('a bound policy evaluated on a caller\'s crafted claim', () => {
  let privateKey: CryptoKey;
  let kid: string;
  let clientId: string;
  let policyName: string;
  let audience: string;

  before(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    privateKey = pair.privateKey;
    kid = unique('key');
    const publicJwk: JWK = { ...(await exportJWK(pair.publicKey)), kid, alg: 'ES256', use: 'sig' };
    const source = (await t.gql<{ createFederatedSource: { id: string } }>(
      'mutation($input: CreateFederatedSourceInput!) { createFederatedSource(input: $input) { id } }',
      { input: { name: 'workloads', slug: unique('workloads'), jwks: { keys: [publicJwk] } } },
    )).createFederatedSource;
    const provider = (await t.gql<{ createProvider: { id: string; issuer: string } }>(
      'mutation($input: CreateProviderInput!) { createProvider(input: $input) { id issuer } }',
      { input: { name: 'bounded', slug: unique('bounded'), federatedSourceIds: [source.id] } },
    )).createProvider;
    audience = provider.issuer;
    clientId = (await t.gql<{ createClient: { client: { clientId: string } } }>(
      'mutation($input: CreateClientInput!) { createClient(input: $input) { client { clientId } } }',
      { input: { providerId: provider.id, name: 'runner', type: 'PUBLIC', grantTypes: ['CLIENT_CREDENTIALS'] } },
    )).createClient.client.clientId;
    policyName = unique('short-lived only');
    const policy = (await t.gql<{ createExpressionPolicy: { id: string } }>(
      'mutation($input: CreateExpressionPolicyInput!) { createExpressionPolicy(input: $input) { id } }',
      { input: { name: policyName, expression: 'duration(request.context.oauth_jwt.ttl) <= duration("1h")' } },
    )).createExpressionPolicy;
    await t.gql('mutation($input: BindPolicyInput!) { bindPolicy(input: $input) { id } }', {
      input: { policyId: policy.id, targetType: 'PROVIDER', targetId: provider.id },
    });
  });

  async function exchange(ttl: string) {
    const now = Math.floor(Date.now() / 1000);
    const jwt = await new SignJWT({ ttl })
      .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
      .setIssuer('https://workloads.example')
      .setSubject(unique('workload'))
      .setAudience(audience)
      .setIssuedAt(now)
      .setExpirationTime(now + 600)
      .sign(privateKey);
    return postForm(`${t.url}/application/o/token/`, {
      grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: jwt,
    });
  }

  test('a claim of "1"×4000 is denied within the bound (invalid_grant, POLICY_DENIED naming duration()), /healthz meanwhile', async () => {
    const response = await alongsideHealthz(() => exchange('1'.repeat(4_000)));
    assert.equal(response.status, 400, JSON.stringify(response.body));
    assert.equal(response.body.error, 'invalid_grant');
    await t.server.services.events.flush();
    const denied = await t.server.services.store.events.find({ requestId: response.headers.get('x-request-id')!, action: 'POLICY_DENIED' });
    assert.equal(denied.length, 1);
    assert.equal(denied[0]!.context.policy, policyName);
    assert.match(String(denied[0]!.context.reason), /duration strings are limited to 64 characters/);
  });

  test('a well-formed claim still passes', async () => {
    const response = await exchange('30m');
    assert.equal(response.status, 200, JSON.stringify(response.body));
  });
});
