/**
 * The JWT bearer grant (RFC 7523 §2.1, contract version 2): the assertion goes through rule 4's
 * checks (the one verifier) and gets rule 4's identity, for public and confidential clients;
 * events LOGIN / LOGIN_FAILED with rule jwt_bearer.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { basic, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { JWT_BEARER, signingKey } from '../helpers/federation.js';
import { seedMachineClient, seedMachineProvider } from '../helpers/seed.js';
import { jwtPayload } from '../helpers/device.js';
import { JWT_BEARER_GRANT, eventsOf, issue, standInIssuer, type StandIn } from '../helpers/workload.js';
import { generatedAccountId, sourceIdentityKey } from '../../src/domain/federation/service-accounts.js';
import type { Provider } from '../../src/domain/model.js';

let t: TestServer;
let ci: StandIn;
let provider: Provider;
let publicId: string;
before(async () => {
  t = await startTestServer();
  ci = await standInIssuer(t);
  provider = await seedMachineProvider(t, { federatedSourceIds: [ci.source.id] });
  publicId = (await seedMachineClient(t, provider, { type: 'PUBLIC', grantTypes: ['JWT_BEARER'] })).clientId;
});
after(async () => {
  await t.stop();
});

const tokenUrl = () => `${t.url}/application/o/token/`;
const bearer = (form: Record<string, string>, headers: Record<string, string> = {}) => postForm(tokenUrl(), { grant_type: JWT_BEARER_GRANT, ...form }, headers);

describe('jwt-bearer', () => {
  test("a public client: the source's JWT gets the generated account of (source, sub), event LOGIN rule jwt_bearer", async () => {
    const answer = await bearer({ client_id: publicId, assertion: await issue(ci, { sub: 'job-1' }) });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.refresh_token, undefined);
    const claims = jwtPayload(String(answer.body.access_token));
    assert.equal(claims.sub, generatedAccountId(sourceIdentityKey(ci.source.id, 'job-1')));
    assert.ok(await t.server.services.store.users.findOne({ id: String(claims.sub) }), 'the account was saved');
    const [event] = await eventsOf(t, answer);
    assert.equal(event?.action, 'LOGIN');
    assert.equal(event?.context.rule, 'jwt_bearer');
    assert.equal(event?.context.identityRule, 'federated_source');
  });

  test('the same identity as rule 4 of client_credentials gives for the same JWT', async () => {
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC', grantTypes: ['JWT_BEARER', 'CLIENT_CREDENTIALS'] });
    const jwt = await issue(ci, { sub: 'same-sub' });
    const viaBearer = await bearer({ client_id: clientId, assertion: jwt });
    const viaRule4 = await postForm(tokenUrl(), { grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: jwt });
    assert.equal(jwtPayload(String(viaBearer.body.access_token)).sub, jwtPayload(String(viaRule4.body.access_token)).sub);
  });

  test('a confidential client proves its secret first: a wrong one is invalid_client', async () => {
    const { clientId, clientSecret } = await seedMachineClient(t, provider, { grantTypes: ['JWT_BEARER'] });
    const assertion = await issue(ci, { sub: 'svc' });
    assert.equal((await bearer({ assertion }, { authorization: basic(clientId, clientSecret!) })).status, 200);
    const wrong = await bearer({ assertion }, { authorization: basic(clientId, 'wrong') });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error, 'invalid_client');
  });

  test('an access token of a federated provider gets the same user, its scope the most', async () => {
    const upstream = await seedMachineProvider(t);
    const downstream = await seedMachineProvider(t, { federatedProviderIds: [upstream.id] });
    const up = await seedMachineClient(t, upstream, { allowedScopes: ['profile', 'email'] });
    const issued = await postForm(tokenUrl(), { grant_type: 'client_credentials', scope: 'profile' }, { authorization: basic(up.clientId, up.clientSecret!) });
    const down = await seedMachineClient(t, downstream, { type: 'PUBLIC', grantTypes: ['JWT_BEARER'], allowedScopes: ['profile', 'email'] });
    const ok = await bearer({ client_id: down.clientId, assertion: String(issued.body.access_token), scope: 'profile' });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(jwtPayload(String(ok.body.access_token)).sub, jwtPayload(String(issued.body.access_token)).sub);
    const wider = await bearer({ client_id: down.clientId, assertion: String(issued.body.access_token), scope: 'email' });
    assert.equal(wider.body.error, 'invalid_scope');
  });

  test('refused assertions are invalid_grant with the private reason in LOGIN_FAILED, never a token', async () => {
    const other = await signingKey();
    const now = Math.floor(Date.now() / 1000);
    const cases: [string, string, RegExp][] = [
      ['expired', await issue(ci, { sub: 'a', exp: now - 10 }), /expired/],
      ['not yet valid', await issue(ci, { sub: 'a', nbf: now + 600 }), /not valid before/],
      ['wrong audience', await issue(ci, { sub: 'a', aud: 'someone-else' }), /aud/],
      ['another key', await issue({ ...ci, key: { ...other, kid: ci.key.kid } }, { sub: 'a' }), /signature/],
      ['unsigned', `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: ci.issuer, sub: 'a', aud: 'tessera', exp: now + 60 })).toString('base64url')}.`, /none/],
      ['HS256 with the public key', await hs256WithPublicKey(now), /HMAC/],
    ];
    for (const [name, assertion, reason] of cases) {
      const answer = await bearer({ client_id: publicId, assertion });
      assert.equal(answer.status, 400, name);
      assert.equal(answer.body.error, 'invalid_grant', name);
      assert.equal(answer.body.access_token, undefined, name);
      const [event] = await eventsOf(t, answer);
      assert.equal(event?.action, 'LOGIN_FAILED', name);
      assert.equal(event?.context.rule, 'jwt_bearer', name);
      assert.match(String(event?.context.reason), reason, name);
      assert.doesNotMatch(JSON.stringify(answer.body), reason, `${name}: the reason stays private`);
    }
  });

  test('missing, empty, repeated or oversized assertion is invalid_request; without the grant unauthorized_client', async () => {
    assert.equal((await bearer({ client_id: publicId })).body.error, 'invalid_request');
    assert.equal((await bearer({ client_id: publicId, assertion: '' })).body.error, 'invalid_request');
    assert.equal((await bearer({ client_id: publicId, assertion: 'a'.repeat(16_385) })).body.error, 'invalid_request');
    const repeated = await fetch(tokenUrl(), {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `grant_type=${encodeURIComponent(JWT_BEARER_GRANT)}&client_id=${publicId}&assertion=a.b.c&assertion=a.b.c`,
    });
    assert.equal(((await repeated.json()) as { error: string }).error, 'invalid_request');
    const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC', grantTypes: ['CLIENT_CREDENTIALS'] });
    assert.equal((await bearer({ client_id: clientId, assertion: await issue(ci, { sub: 'a' }) })).body.error, 'unauthorized_client');
  });
});

async function hs256WithPublicKey(now: number): Promise<string> {
  const { createHmac } = await import('node:crypto');
  const header = Buffer.from(JSON.stringify({ alg: 'HS256', kid: ci.key.kid })).toString('base64url');
  const payload = Buffer.from(JSON.stringify({ iss: ci.issuer, sub: 'a', aud: 'tessera', exp: now + 60 })).toString('base64url');
  const mac = createHmac('sha256', JSON.stringify(ci.key.publicJwk)).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${mac}`;
}
