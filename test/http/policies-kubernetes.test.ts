/**
 * The Kubernetes walk-through of the authentik reference, end to end over HTTP: a projected
 * service-account token (a JWT with "kubernetes.io": {"namespace": …}) from a federated source is
 * exchanged with client_credentials; a source property mapping copies the namespace into the
 * generated account, a scope mapping puts it into the issued token, and an expression policy on
 * the input JWT's issuer lets one issuer in and keeps another out.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SignJWT, createLocalJWKSet, decodeJwt, exportJWK, generateKeyPair, jwtVerify, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { seedClient, seedProvider, seedUser, unique, type SeededUser } from '../helpers/seed.js';
import { decide, jwtPayload, poll, startDevice, tokenRequest } from '../helpers/device.js';

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const POLICY_EXPRESSION = 'request.context.oauth_jwt.iss == "https://my.issuer"';

let t: TestServer;
let privateKey: CryptoKey;
let kid: string;
let source: { id: string; slug: string };
let provider: { id: string; slug: string; issuer: string };
let clientId: string;

before(async () => {
  t = await startTestServer();
  const pair = await generateKeyPair('ES256', { extractable: true });
  privateKey = pair.privateKey;
  kid = unique('k8s-key');
  const publicJwk: JWK = { ...(await exportJWK(pair.publicKey)), kid, alg: 'ES256', use: 'sig' };

  // 1. An OAuth source with raw JWKS (what the cluster's service-account issuer publishes).
  const created = await t.gql<{ createFederatedSource: { id: string; slug: string } }>(
    'mutation($input: CreateFederatedSourceInput!) { createFederatedSource(input: $input) { id slug } }',
    { input: { name: 'cluster', slug: unique('cluster'), audience: 'tessera', jwks: { keys: [publicJwk] } } },
  );
  source = created.createFederatedSource;
  // 2. The provider trusts the source; a client may ask for the "kubernetes" scope.
  const createdProvider = await t.gql<{ createProvider: { id: string; slug: string; issuer: string } }>(
    'mutation($input: CreateProviderInput!) { createProvider(input: $input) { id slug issuer } }',
    { input: { name: 'k8s', slug: unique('k8s'), federatedSourceIds: [source.id] } },
  );
  provider = createdProvider.createProvider;
  const createdClient = await t.gql<{ createClient: { client: { clientId: string } } }>(
    'mutation($input: CreateClientInput!) { createClient(input: $input) { client { clientId } } }',
    { input: { providerId: provider.id, name: 'ci runner', type: 'PUBLIC', grantTypes: ['CLIENT_CREDENTIALS'], allowedScopes: ['openid', 'kubernetes'] } },
  );
  clientId = createdClient.createClient.client.clientId;
  // 3. The namespace from the input JWT into the generated account ...
  await t.gql('mutation($input: CreateSourcePropertyMappingInput!) { createSourcePropertyMapping(input: $input) { id } }', {
    input: { federatedSourceId: source.id, name: 'kubernetes namespace', expression: '{"kubernetes_namespace": claims["kubernetes.io"].namespace}' },
  });
  // 4. ... and from the account into tokens granted the "kubernetes" scope.
  await t.gql('mutation($input: CreateScopeMappingInput!) { createScopeMapping(input: $input) { id } }', {
    input: { providerId: provider.id, scope: 'kubernetes', name: 'kubernetes namespace', expression: '{"kubernetes_namespace": request.user.attributes.kubernetes_namespace}' },
  });
});
after(async () => {
  await t.stop();
});

function serviceAccountToken(claims: JWTPayload & { iss: string; sub: string }, namespace = 'ci'): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ aud: ['tessera'], ...claims, 'kubernetes.io': { namespace, serviceaccount: { name: 'runner' } } })
    .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(privateKey);
}

function exchange(jwt: string, scope = 'kubernetes') {
  return postForm(`${t.url}/application/o/token/`, {
    grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: jwt, scope,
  });
}

async function verified(accessToken: string): Promise<JWTPayload> {
  const jwks = (await (await fetch(`${t.url}/application/o/${provider.slug}/jwks/`)).json()) as { keys: JWK[] };
  return (await jwtVerify(accessToken, createLocalJWKSet(jwks), { issuer: provider.issuer, typ: 'at+jwt' })).payload;
}

async function generatedAccountFor(sub: string) {
  const users = await t.server.services.store.users.find({ type: 'GENERATED_SERVICE_ACCOUNT' });
  return users.find((u) => u.attributes.federatedSourceId === source.id && u.attributes.sub === sub) ?? null;
}

describe('the Kubernetes walk-through', () => {
  test('the namespace of the input JWT becomes the generated account\'s attribute kubernetes_namespace', async () => {
    const sub = unique('system:serviceaccount:ci:runner');
    const response = await exchange(await serviceAccountToken({ iss: 'https://my.issuer', sub }));
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const account = await generatedAccountFor(sub);
    assert.ok(account, 'a generated service account exists');
    assert.equal(account.attributes.kubernetes_namespace, 'ci');
  });

  test('the issued access token carries kubernetes_namespace when the kubernetes scope is granted', async () => {
    const sub = unique('system:serviceaccount:ci:deployer');
    const response = await exchange(await serviceAccountToken({ iss: 'https://my.issuer', sub }));
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const claims = await verified(String(response.body.access_token));
    assert.equal(claims.kubernetes_namespace, 'ci');
    assert.equal(claims.scope, 'kubernetes');
  });

  test('the id_token carries it too when openid is granted with the scope', async () => {
    const sub = unique('system:serviceaccount:ci:oidc');
    const response = await exchange(await serviceAccountToken({ iss: 'https://my.issuer', sub }), 'openid kubernetes');
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(decodeJwt(String(response.body.id_token)).kubernetes_namespace, 'ci');
  });

  test('userinfo carries kubernetes_namespace for a token granted the kubernetes scope', async () => {
    const sub = unique('system:serviceaccount:ci:userinfo');
    const response = await exchange(await serviceAccountToken({ iss: 'https://my.issuer', sub }));
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const userinfo = await fetch(`${t.url}/application/o/userinfo/`, { headers: { authorization: `Bearer ${String(response.body.access_token)}` } });
    assert.equal(userinfo.status, 200);
    assert.equal(((await userinfo.json()) as Record<string, unknown>).kubernetes_namespace, 'ci');
  });

  test('userinfo says the attributes the latest token request gave an existing account, not a cached older user', async () => {
    const sub = unique('system:serviceaccount:ci:moved');
    const userinfo = async (namespace: string) => {
      const response = await exchange(await serviceAccountToken({ iss: 'https://my.issuer', sub }, namespace));
      assert.equal(response.status, 200, JSON.stringify(response.body));
      const answer = await fetch(`${t.url}/application/o/userinfo/`, { headers: { authorization: `Bearer ${String(response.body.access_token)}` } });
      return ((await answer.json()) as Record<string, unknown>).kubernetes_namespace;
    };
    assert.equal(await userinfo('ci'), 'ci');
    // The same workload, moved: its account's attribute changes on this use, and userinfo reads it.
    assert.equal(await userinfo('prod'), 'prod');
  });

  test('without the kubernetes scope the token carries no kubernetes_namespace', async () => {
    const sub = unique('system:serviceaccount:ci:plain');
    const response = await exchange(await serviceAccountToken({ iss: 'https://my.issuer', sub }), 'openid');
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const claims = await verified(String(response.body.access_token));
    assert.equal(claims.kubernetes_namespace, undefined);
  });

  test('the mapping is applied again on every later use: a new namespace replaces the old', async () => {
    const sub = unique('system:serviceaccount:moving:runner');
    assert.equal((await exchange(await serviceAccountToken({ iss: 'https://my.issuer', sub }, 'staging'))).status, 200);
    const response = await exchange(await serviceAccountToken({ iss: 'https://my.issuer', sub }, 'production'));
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal((await generatedAccountFor(sub))?.attributes.kubernetes_namespace, 'production');
    assert.equal((await verified(String(response.body.access_token))).kubernetes_namespace, 'production');
  });

  describe('an expression policy on the input JWT\'s issuer', () => {
    let policyName: string;
    let bindingId: string;

    before(async () => {
      policyName = unique('only my issuer');
      const policy = await t.gql<{ createExpressionPolicy: { id: string } }>(
        'mutation($input: CreateExpressionPolicyInput!) { createExpressionPolicy(input: $input) { id } }',
        { input: { name: policyName, expression: POLICY_EXPRESSION } },
      );
      const binding = await t.gql<{ bindPolicy: { id: string } }>(
        'mutation($input: BindPolicyInput!) { bindPolicy(input: $input) { id } }',
        { input: { policyId: policy.createExpressionPolicy.id, targetType: 'PROVIDER', targetId: provider.id } },
      );
      bindingId = binding.bindPolicy.id;
    });

    test('lets a token from https://my.issuer in', async () => {
      const response = await exchange(await serviceAccountToken({ iss: 'https://my.issuer', sub: unique('system:serviceaccount:ci:in') }));
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assert.equal((await verified(String(response.body.access_token))).kubernetes_namespace, 'ci');
    });

    test('keeps a token from another issuer out: invalid_grant and a POLICY_DENIED event naming the policy', async () => {
      const response = await exchange(await serviceAccountToken({ iss: 'https://other.issuer', sub: unique('system:serviceaccount:ci:out') }));
      assert.equal(response.status, 400, JSON.stringify(response.body));
      assert.equal(response.body.error, 'invalid_grant');
      assert.equal(response.body.access_token, undefined);
      const requestId = response.headers.get('x-request-id')!;
      await t.server.services.events.flush();
      const denied = await t.server.services.store.events.find({ requestId, action: 'POLICY_DENIED' });
      assert.equal(denied.length, 1);
      assert.equal(denied[0]!.context.policy, policyName);
      assert.equal(denied[0]!.clientId, clientId);
      assert.match(String(denied[0]!.context.reason), /returned false/);
    });

    test('unbinding the policy lets the other issuer in at once (the admin change clears the cache)', async () => {
      await t.gql('mutation($id: ID!) { unbindPolicy(id: $id) }', { id: bindingId });
      const response = await exchange(await serviceAccountToken({ iss: 'https://other.issuer', sub: unique('system:serviceaccount:ci:again') }));
      assert.equal(response.status, 200, JSON.stringify(response.body));
    });
  });

  test('a token request with no bound policy reads no binding from the store once the cache is warm', async () => {
    const bindings = t.server.services.store.policyBindings;
    const original = bindings.find.bind(bindings);
    let reads = 0;
    bindings.find = (...args) => {
      reads += 1;
      return original(...args);
    };
    try {
      t.server.services.policies.invalidate();
      const jwt = await serviceAccountToken({ iss: 'https://my.issuer', sub: unique('system:serviceaccount:ci:hot') });
      assert.equal((await exchange(jwt)).status, 200);
      const afterFirst = reads;
      assert.ok(afterFirst > 0, 'the first request after a change reads the bindings');
      for (let i = 0; i < 3; i++) assert.equal((await exchange(jwt)).status, 200);
      assert.equal(reads, afterFirst, 'no further binding reads within the cache TTL');
    } finally {
      bindings.find = original;
    }
  });
});

describe('policies and scope mappings on the device flow and refresh_token', () => {
  let providerId: string;
  let deviceClientId: string;
  let deviceClientRecordId: string;
  let ops: SeededUser;
  let dev: SeededUser;
  let teamPolicy: string;

  async function createAndBind(expression: string, targetType: 'PROVIDER' | 'CLIENT', targetId: string): Promise<{ name: string; bindingId: string }> {
    const name = unique('policy');
    const policy = await t.gql<{ createExpressionPolicy: { id: string } }>(
      'mutation($input: CreateExpressionPolicyInput!) { createExpressionPolicy(input: $input) { id } }', { input: { name, expression } },
    );
    const binding = await t.gql<{ bindPolicy: { id: string } }>(
      'mutation($input: BindPolicyInput!) { bindPolicy(input: $input) { id } }',
      { input: { policyId: policy.createExpressionPolicy.id, targetType, targetId } },
    );
    return { name, bindingId: binding.bindPolicy.id };
  }

  async function deviceTokens(user: SeededUser, scope = 'openid team') {
    const codes = await startDevice(t, deviceClientId, { scope });
    assert.equal((await decide(t, user.username, user.appPassword, codes.user_code, 'allow')).status, 200);
    return poll(t, deviceClientId, codes.device_code);
  }

  async function policyDenials(requestId: string) {
    await t.server.services.events.flush();
    return t.server.services.store.events.find({ requestId, action: 'POLICY_DENIED' });
  }

  before(async () => {
    providerId = (await seedProvider(t)).id;
    const seeded = await seedClient(t, { providerId, grantTypes: ['DEVICE_CODE', 'REFRESH_TOKEN'], allowedScopes: ['openid', 'team'] });
    deviceClientId = seeded.clientId;
    deviceClientRecordId = seeded.client.id;
    ops = await seedUser(t, { attributes: { team: 'ops' } });
    dev = await seedUser(t, { attributes: { team: 'dev' } });
    await t.gql('mutation($input: CreateScopeMappingInput!) { createScopeMapping(input: $input) { id } }', {
      input: { providerId, scope: 'team', name: 'team', expression: '{"team": request.user.attributes.team}' },
    });
    teamPolicy = (await createAndBind('request.user.attributes.team == "ops"', 'CLIENT', deviceClientRecordId)).name;
  });

  test('device flow: a user the client\'s policy keeps out gets access_denied and a POLICY_DENIED event', async () => {
    const answer = await deviceTokens(dev);
    assert.equal(answer.status, 400, JSON.stringify(answer.body));
    assert.equal(answer.body.error, 'access_denied');
    assert.equal(answer.body.access_token, undefined);
    const denied = await policyDenials(answer.headers.get('x-request-id')!);
    assert.equal(denied.length, 1);
    assert.equal(denied[0]!.context.policy, teamPolicy);
    assert.equal(denied[0]!.username, dev.username);
  });

  test('device flow: a user the policy lets in gets tokens carrying the scope mapping\'s claims', async () => {
    const answer = await deviceTokens(ops);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(jwtPayload(String(answer.body.access_token)).team, 'ops');
    assert.equal(jwtPayload(String(answer.body.id_token)).team, 'ops');
    const userinfo = await fetch(`${t.url}/application/o/userinfo/`, { headers: { authorization: `Bearer ${String(answer.body.access_token)}` } });
    assert.equal(((await userinfo.json()) as Record<string, unknown>).team, 'ops');
  });

  test('refresh_token: a provider policy on the grant type keeps refreshes out with invalid_grant', async () => {
    const first = await deviceTokens(ops);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const refreshToken = String(first.body.refresh_token);
    const { name, bindingId } = await createAndBind('request.context.oauth_grant_type != "refresh_token"', 'PROVIDER', providerId);
    try {
      const answer = await tokenRequest(t, { grant_type: 'refresh_token', client_id: deviceClientId, refresh_token: refreshToken });
      assert.equal(answer.status, 400, JSON.stringify(answer.body));
      assert.equal(answer.body.error, 'invalid_grant');
      const denied = await policyDenials(answer.headers.get('x-request-id')!);
      assert.equal(denied[0]?.context.policy, name);
    } finally {
      await t.gql('mutation($id: ID!) { unbindPolicy(id: $id) }', { id: bindingId });
    }
  });
});
