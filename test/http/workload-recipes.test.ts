/**
 * The README's workload recipes, as written there, against stand-in issuers (a cluster, GitHub
 * Actions) and this server's own tokens: a Kubernetes workload exchanging its projected token for
 * an audience (the default service account refused by a policy), a GitHub Actions job by
 * jwt-bearer bound by repository_id / repository_owner_id, and a service calling another on behalf
 * of its user (token exchange with an actor, act in the token).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { basic, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { seedMachineClient, seedMachineProvider, seedUserWithAppPassword, unique } from '../helpers/seed.js';
import { jwtPayload } from '../helpers/device.js';
import { JWT_BEARER_GRANT, TOKEN_EXCHANGE, TT, issue, standInIssuer } from '../helpers/workload.js';

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.stop();
});

const tokenUrl = () => `${t.url}/application/o/token/`;

/** createExpressionPolicy + bindPolicy to a client, as the README does it. */
async function bindClientPolicy(clientRecordId: string, name: string, expression: string): Promise<void> {
  const policy = await t.gql<{ createExpressionPolicy: { id: string } }>(
    'mutation($input: CreateExpressionPolicyInput!) { createExpressionPolicy(input: $input) { id } }', { input: { name, expression } });
  await t.gql('mutation($input: BindPolicyInput!) { bindPolicy(input: $input) { id } }',
    { input: { policyId: policy.createExpressionPolicy.id, targetType: 'CLIENT', targetId: clientRecordId } });
}

describe('README recipes', () => {
  test('Kubernetes: the projected token exchanged for a token for https://orders.internal; the default service account refused', async () => {
    const cluster = await standInIssuer(t, { audience: 'tessera', maxTokenAgeSeconds: 900 });
    const provider = await seedMachineProvider(t, { federatedSourceIds: [cluster.source.id] });
    const { client } = await seedMachineClient(t, provider, { clientId: unique('k8s-workloads'), type: 'PUBLIC', grantTypes: ['TOKEN_EXCHANGE'] });
    await t.server.services.clients.update(client.id, { allowedAudiences: ['https://orders.internal'] });
    await bindClientPolicy(client.id, unique('k8s: not the default service account'),
      'request.context.subject_token["kubernetes.io"].serviceaccount.name != "default"');
    const projected = (name: string) => issue(cluster, {
      sub: `system:serviceaccount:shop:${name}`, 'kubernetes.io': { namespace: 'shop', serviceaccount: { name, uid: crypto.randomUUID() } },
    });
    const form = async (name: string) => ({
      grant_type: TOKEN_EXCHANGE, client_id: client.clientId, subject_token: await projected(name), subject_token_type: TT.jwt,
      resource: 'https://orders.internal',
    });
    const ok = await postForm(tokenUrl(), await form('deployer'));
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(jwtPayload(String(ok.body.access_token)).aud, 'https://orders.internal');
    const refused = await postForm(tokenUrl(), await form('default'));
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error, 'invalid_grant');
  });

  test('GitHub Actions: jwt-bearer, let in by repository_owner_id and repository_id, not by the name', async () => {
    const github = await standInIssuer(t, { issuer: 'https://token.actions.githubusercontent.com', audience: 'https://tessera.example.com' });
    const provider = await seedMachineProvider(t, { federatedSourceIds: [github.source.id] });
    const { client } = await seedMachineClient(t, provider, { clientId: unique('ci'), type: 'PUBLIC', grantTypes: ['JWT_BEARER'] });
    await bindClientPolicy(client.id, unique('only acme/deploy main'),
      'request.context.oauth_jwt.repository_owner_id == "1234567" && request.context.oauth_jwt.repository_id == "89012345" && request.context.oauth_jwt.ref == "refs/heads/main"');
    const job = (ownerId: string, repoId: string) => issue(github, {
      sub: 'repo:acme/deploy:ref:refs/heads/main', repository: 'acme/deploy', repository_owner_id: ownerId, repository_id: repoId, ref: 'refs/heads/main',
    });
    const ok = await postForm(tokenUrl(), { grant_type: JWT_BEARER_GRANT, client_id: client.clientId, assertion: await job('1234567', '89012345') });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const squatter = await postForm(tokenUrl(), { grant_type: JWT_BEARER_GRANT, client_id: client.clientId, assertion: await job('7654321', '99999999') });
    assert.equal(squatter.body.error, 'invalid_grant', 'a re-registered acme/deploy has other ids');
  });

  test("on behalf of a user: the frontend exchanges its caller's token, with its own as the actor, for the orders service", async () => {
    const provider = await seedMachineProvider(t);
    const frontend = await seedMachineClient(t, provider, { clientId: unique('frontend'), grantTypes: ['CLIENT_CREDENTIALS', 'TOKEN_EXCHANGE'], allowedScopes: ['profile'] });
    await t.server.services.clients.update(frontend.client.id, { allowedAudiences: ['https://orders.internal'] });
    await bindClientPolicy(frontend.client.id, unique('frontend acts for its users'), `request.context.actor_token == null || request.context.actor_token.client_id == "${frontend.clientId}"`);
    const auth = { authorization: basic(frontend.clientId, frontend.clientSecret!) };
    // The user signed in to the frontend (here with an app password, rule 1).
    const person = await seedUserWithAppPassword(t, { username: unique('alice'), type: 'INTERNAL' });
    const userToken = await postForm(tokenUrl(), { grant_type: 'client_credentials', username: person.username, password: person.appPassword, scope: 'profile' }, auth);
    assert.equal(userToken.status, 200, JSON.stringify(userToken.body));
    const own = await postForm(tokenUrl(), { grant_type: 'client_credentials' }, auth);
    assert.equal(own.status, 200, JSON.stringify(own.body));
    const exchanged = await postForm(tokenUrl(), {
      grant_type: TOKEN_EXCHANGE, subject_token: String(userToken.body.access_token), subject_token_type: TT.access,
      actor_token: String(own.body.access_token), actor_token_type: TT.access, resource: 'https://orders.internal',
    }, auth);
    assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
    const claims = jwtPayload(String(exchanged.body.access_token));
    assert.equal(claims.sub, person.user.id);
    assert.equal(claims.aud, 'https://orders.internal');
    assert.equal(claims.scope, 'profile');
    assert.deepEqual(claims.act, { sub: jwtPayload(String(own.body.access_token)).sub, iss: t.server.services.providers.issuer(provider) });
    // Revoking the user's app password ends the exchanged token too (it carries the same sid).
    await t.gql('mutation($id: ID!) { revokeAppPassword(id: $id) }', { id: person.appPasswordId });
    const introspected = await postForm(`${t.url}/application/o/introspect/`, { token: String(exchanged.body.access_token) }, auth);
    assert.equal(introspected.body.active, false);
  });
});
