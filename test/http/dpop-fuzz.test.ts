/**
 * Property: whatever a client puts in the DPoP header — any string, JWS-shaped garbage, signed
 * proofs with hostile headers and claims — the token endpoint answers 400 invalid_dpop_proof
 * (the contract's JSON, never a 5xx, never a token), unless the proof is genuinely good, and then
 * the token is bound to exactly the proof's key. Userinfo answers such headers with a 401.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { SignJWT, calculateJwkThumbprint } from 'jose';
import { startTestServer, basic, postForm, type TestServer } from '../helpers/server.js';
import { seedMachineClient, seedMachineProvider } from '../helpers/seed.js';
import { proofKey, rawJws, type ProofKey } from '../helpers/dpop.js';

let server: TestServer;
let credentials: { clientId: string; clientSecret: string };
let key: ProofKey;
let tokenUrl: string;
let boundToken: string;

before(async () => {
  server = await startTestServer();
  const provider = await seedMachineProvider(server);
  const made = await seedMachineClient(server, provider);
  credentials = { clientId: made.clientId, clientSecret: made.clientSecret! };
  key = await proofKey('ES256');
  tokenUrl = `${server.server.services.config.publicUrl}/application/o/token/`;
  const proof = await new SignJWT({ htm: 'POST', htu: tokenUrl, iat: Math.floor(Date.now() / 1000), jti: crypto.randomUUID() })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk }).sign(key.privateKey);
  boundToken = String((await ask(proof)).body.access_token);
});
after(async () => {
  await server.stop();
});

function ask(proof: string) {
  return postForm(`${server.url}/application/o/token/`, { grant_type: 'client_credentials' }, {
    authorization: basic(credentials.clientId, credentials.clientSecret), dpop: proof,
  });
}

/** What fetch can send as a header value: visible ASCII and inner spaces. */
const headerValue = fc.oneof(
  fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 300 }),
  fc.constantFrom('.', '..', 'a.b.c', 'e30.e30.', 'e30.e30.e30', '=', 'null', 'a'.repeat(8_193)),
);

const hostileValue = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.string({ maxLength: 20 }), fc.integer(), fc.constant(undefined));

const proofParts = fc.record({
  alg: fc.constantFrom('ES256', 'none', 'HS256', 'RS256', 'EdDSA', '', 'es256'),
  typ: fc.constantFrom('dpop+jwt', 'JWT', 'at+jwt', undefined, 'DPOP+JWT'),
  jwk: fc.oneof(fc.constant('own'), hostileValue, fc.record({ kty: fc.constantFrom('EC', 'oct', 'RSA', 'OKP'), crv: fc.string({ maxLength: 6 }), x: fc.string({ maxLength: 10 }), d: fc.option(fc.string({ maxLength: 10 }), { nil: undefined }) })),
  htm: fc.oneof(fc.constant('POST'), hostileValue),
  htu: fc.oneof(fc.constant('own'), hostileValue, fc.webUrl()),
  iat: fc.oneof(fc.constant('now'), hostileValue, fc.integer({ min: -1e10, max: 1e10 }), fc.double()),
  jti: fc.oneof(fc.uuid(), hostileValue, fc.string({ maxLength: 300 })),
  extra: fc.dictionary(fc.constantFrom('ath', 'nonce', 'cnf', '__proto__', 'exp', 'nbf'), hostileValue, { maxKeys: 3 }),
  sign: fc.boolean(),
});

type ProofParts = typeof proofParts extends fc.Arbitrary<infer T> ? T : never;

async function buildProof(parts: ProofParts): Promise<string> {
  const header: Record<string, unknown> = { alg: parts.alg, typ: parts.typ, jwk: parts.jwk === 'own' ? key.publicJwk : parts.jwk };
  const claims: Record<string, unknown> = {
    ...parts.extra, htm: parts.htm, htu: parts.htu === 'own' ? tokenUrl : parts.htu,
    iat: parts.iat === 'now' ? Math.floor(Date.now() / 1000) : parts.iat, jti: parts.jti,
  };
  for (const name of Object.keys(header)) if (header[name] === undefined) delete header[name];
  for (const name of Object.keys(claims)) if (claims[name] === undefined) delete claims[name];
  if (parts.sign && parts.alg === 'ES256') return new SignJWT(claims).setProtectedHeader(header as never).sign(key.privateKey);
  return rawJws(header, claims, parts.sign ? 'c2lnbmF0dXJl' : '');
}

function assertContractRefusal(answer: { status: number; body: Record<string, unknown> }, expected: string) {
  assert.ok(answer.status < 500, `5xx: ${JSON.stringify(answer.body)}`);
  assert.equal(answer.status, 400, JSON.stringify(answer.body));
  assert.equal(answer.body.error, expected);
  assert.equal(typeof answer.body.error_description, 'string');
  assert.equal(answer.body.access_token, undefined);
}

describe('DPoP header fuzz', () => {
  test('any header value at the token endpoint: invalid_dpop_proof, never a 5xx or a token', async () => {
    await fc.assert(fc.asyncProperty(headerValue, async (value) => assertContractRefusal(await ask(value), 'invalid_dpop_proof')), { numRuns: 150 });
  });

  test('JWS-shaped proofs with hostile headers and claims: refused, or a token bound to exactly that key', async () => {
    const jkt = await calculateJwkThumbprint(key.publicJwk, 'sha256');
    await fc.assert(fc.asyncProperty(proofParts, async (parts) => {
      const answer = await ask(await buildProof(parts));
      if (answer.status === 200) {
        assert.equal(answer.body.token_type, 'DPoP');
        const payload = JSON.parse(Buffer.from(String(answer.body.access_token).split('.')[1]!, 'base64url').toString()) as { cnf?: { jkt: string } };
        assert.deepEqual(payload.cnf, { jkt });
        return;
      }
      assertContractRefusal(answer, 'invalid_dpop_proof');
    }), { numRuns: 150 });
  });

  test('any DPoP header with a bound token at userinfo: 401 with the DPoP challenge, never a 5xx', async () => {
    await fc.assert(fc.asyncProperty(headerValue, async (value) => {
      const answer = await fetch(`${server.url}/application/o/userinfo/`, { headers: { authorization: `DPoP ${boundToken}`, dpop: value } });
      assert.equal(answer.status, 401, await answer.text());
      assert.match(answer.headers.get('www-authenticate') ?? '', /^DPoP /);
    }), { numRuns: 60 });
  });
});
