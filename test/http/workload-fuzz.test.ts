/**
 * Property: whatever a client sends to the new grants (token exchange, jwt-bearer) and with
 * resource/audience — odd or repeated parameters, JWT-shaped garbage, validly signed JWTs with
 * hostile claims (may_act, act, aud of every shape) — the answer is never a 5xx, every error is
 * the contract's JSON, and a token that is issued never carries an act chain deeper than 5.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { startTestServer, basic, type TestServer } from '../helpers/server.js';
import { seedMachineClient, seedMachineProvider } from '../helpers/seed.js';
import { jwtPayload } from '../helpers/device.js';
import { JWT_BEARER_GRANT, TOKEN_EXCHANGE, TT, issue, standInIssuer, type StandIn } from '../helpers/workload.js';

let t: TestServer;
let ci: StandIn;
let publicId: string;
let confidentialAuth: string;
let ownToken: string;

before(async () => {
  t = await startTestServer();
  ci = await standInIssuer(t);
  const provider = await seedMachineProvider(t, { federatedSourceIds: [ci.source.id] });
  const pub = await seedMachineClient(t, provider, { type: 'PUBLIC', grantTypes: ['TOKEN_EXCHANGE', 'JWT_BEARER'] });
  await t.server.services.clients.update(pub.client.id, { allowedAudiences: ['https://a.example', 'b'] });
  publicId = pub.clientId;
  const conf = await seedMachineClient(t, provider, { grantTypes: ['TOKEN_EXCHANGE', 'JWT_BEARER', 'CLIENT_CREDENTIALS'] });
  confidentialAuth = basic(conf.clientId, conf.clientSecret!);
  const issued = await fetch(`${t.url}/application/o/token/`, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: confidentialAuth }, body: 'grant_type=client_credentials',
  });
  ownToken = ((await issued.json()) as { access_token: string }).access_token;
});
after(async () => {
  await t.stop();
});

const anyString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom('', ' ', '%', '+', '\u0000', 'a.b.c', 'a'.repeat(16_385), '{"$ne":null}', 'https://a.example', 'https://a.example#x', 'b'),
);
const tokenType = fc.oneof(fc.constantFrom(TT.access, TT.jwt, TT.idToken, TT.refresh), anyString);
const b64url = (value: unknown) => Buffer.from(JSON.stringify(value) ?? 'null').toString('base64url');
const jwtShaped = fc.record({ header: fc.jsonValue({ maxDepth: 2 }), payload: fc.jsonValue({ maxDepth: 3 }) })
  .map(({ header, payload }) => `${b64url(header)}.${b64url(payload)}.${b64url('sig')}`);
const tokenish = () => fc.oneof(anyString, jwtShaped, fc.constant(ownToken));

const PARAMS: Record<string, () => fc.Arbitrary<string>> = {
  grant_type: () => fc.oneof(fc.constantFrom(TOKEN_EXCHANGE, JWT_BEARER_GRANT), anyString),
  client_id: () => fc.oneof(fc.constant(publicId), anyString),
  subject_token: tokenish, actor_token: tokenish, assertion: tokenish,
  subject_token_type: () => tokenType, actor_token_type: () => tokenType, requested_token_type: () => tokenType,
  scope: () => fc.oneof(fc.constantFrom('profile', 'openid email', 'x y'), anyString),
  resource: () => anyString, audience: () => anyString,
};

/** Pairs of the new grants' parameters; any may repeat (only resource and audience may). */
const formArb = fc.array(fc.constantFrom(...Object.keys(PARAMS)), { maxLength: 12 })
  .chain((names) => fc.tuple(...names.map((n) => PARAMS[n]!().map((v) => [n, v] as [string, string]))));

async function send(pairs: [string, string][], auth: string | undefined) {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (auth) headers.authorization = auth;
  const response = await fetch(`${t.url}/application/o/token/`, { method: 'POST', headers, body: new URLSearchParams(pairs).toString() });
  const text = await response.text();
  assert.ok(response.status < 500, `answered ${response.status}: ${text}`);
  const json = JSON.parse(text) as Record<string, unknown>;
  if (response.status >= 400) {
    assert.equal(typeof json.error, 'string', text);
    assert.equal(json.access_token, undefined, text);
    return;
  }
  let depth = 0;
  for (let act = jwtPayload(String(json.access_token)).act as Record<string, unknown> | undefined; act; act = act.act as Record<string, unknown> | undefined) depth++;
  assert.ok(depth <= 5, text);
}

const hostileClaims = fc.record({
  sub: fc.oneof(fc.string({ maxLength: 10 }), fc.integer(), fc.constant(undefined)),
  aud: fc.oneof(fc.constant('tessera'), fc.array(fc.constantFrom('tessera', 'x'), { maxLength: 3 }), fc.jsonValue({ maxDepth: 1 })),
  may_act: fc.option(fc.oneof(fc.record({ sub: fc.constantFrom('actor', 'other') }), fc.jsonValue({ maxDepth: 2 })), { nil: undefined }),
  act: fc.option(fc.letrec<{ node: unknown }>((tie) => ({
    node: fc.oneof({ depthSize: 'small' }, fc.jsonValue({ maxDepth: 1 }), fc.record({ sub: fc.string({ maxLength: 4 }), act: fc.option(tie('node'), { nil: undefined }) })),
  })).node, { nil: undefined }),
});

describe('fuzzing the workload grants', () => {
  test('structured parameters never give a 5xx or a token with an error', async () => {
    await fc.assert(fc.asyncProperty(formArb, fc.option(fc.constant(confidentialAuth), { nil: undefined }), async (pairs, auth) => {
      await send(pairs, auth);
    }), { numRuns: 300 });
  });

  test('validly signed subject, actor and assertion JWTs with hostile claims never give a 5xx', async () => {
    await fc.assert(fc.asyncProperty(hostileClaims, hostileClaims, fc.boolean(), async (subject, actor, bearer) => {
      const clean = (claims: Record<string, unknown>) => Object.fromEntries(Object.entries(claims).filter(([, v]) => v !== undefined));
      const subjectJwt = await issue(ci, clean(subject));
      const pairs: [string, string][] = bearer
        ? [['grant_type', JWT_BEARER_GRANT], ['client_id', publicId], ['assertion', subjectJwt]]
        : [['grant_type', TOKEN_EXCHANGE], ['client_id', publicId], ['subject_token', subjectJwt], ['subject_token_type', TT.jwt],
          ['actor_token', await issue(ci, { ...clean(actor), sub: 'actor' })], ['actor_token_type', TT.jwt]];
      await send(pairs, undefined);
    }), { numRuns: 150 });
  });
});
