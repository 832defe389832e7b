/** peekJwt and looksLikeJwt (verify-assertion.ts) decide which rule a secret goes to; their memo must not change the answer. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { looksLikeJwt, peekJwt } from '../../src/domain/federation/verify-assertion.js';

const part = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

test('a JSON header with alg makes a JWT even when the payload does not decode; peekJwt then has nothing to give', () => {
  const broken = `${part({ alg: 'ES256' })}.${part('not json')}.c2ln`;
  for (let i = 0; i < 2; i++) {
    assert.equal(looksLikeJwt(broken), true, `looksLikeJwt, call ${i + 1}`);
    assert.equal(peekJwt(broken), null, `peekJwt, call ${i + 1}`);
  }
});

test('a whole JWT is peeked, the same on every call, and cannot be changed by one reader for the next', () => {
  const jwt = `${part({ alg: 'ES256', typ: 'JWT' })}.${part({ iss: 'https://issuer.example', sub: 'w' })}.c2ln`;
  const first = peekJwt(jwt)!;
  assert.equal(first.payload.iss, 'https://issuer.example');
  assert.throws(() => { (first.payload as Record<string, unknown>).iss = 'https://other.example'; }, TypeError);
  assert.equal(peekJwt(jwt)!.payload.iss, 'https://issuer.example');
  assert.equal(looksLikeJwt(jwt), true);
});

test('no alg, not three parts, or over 16 KB: not a JWT', () => {
  assert.equal(looksLikeJwt(`${part({ typ: 'JWT' })}.${part({})}.`), false);
  assert.equal(looksLikeJwt('a.b'), false);
  assert.equal(looksLikeJwt(`${part({ alg: 'ES256' })}.${'A'.repeat(16_400)}.c2ln`), false);
});
