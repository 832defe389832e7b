/** The pieces of RFC 8707 / 8693 handling below HTTP: repeated form parameters, audience lists, aud claims, act chains. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allValues, parseFormEncoded } from '../../src/http/body.js';
import { AudienceRefused, audClaim, narrowedAudience, requestedAudience, validateAllowedAudiences } from '../../src/domain/audiences.js';
import { actDepth } from '../../src/domain/token-exchange.js';
import { ValidationError } from '../../src/domain/errors.js';
import { OAuthError } from '../../src/oauth/errors.js';

test('only resource and audience may repeat; allValues keeps their order', () => {
  const params = parseFormEncoded('resource=https%3A%2F%2Fa&scope=x&resource=https%3A%2F%2Fb&audience=c&audience=d', 'body');
  assert.deepEqual(allValues(params, 'resource'), ['https://a', 'https://b']);
  assert.deepEqual(allValues(params, 'audience'), ['c', 'd']);
  assert.deepEqual(allValues(params, 'scope'), ['x']);
  assert.deepEqual(allValues(params, 'absent'), []);
  assert.equal(params.get('resource'), 'https://a');
  for (const name of ['scope', 'subject_token', 'actor_token', 'assertion', 'requested_token_type']) {
    assert.throws(() => parseFormEncoded(`${name}=1&${name}=2`, 'body'), (e: unknown) => e instanceof OAuthError && e.code === 'invalid_request', name);
  }
});

test('allowedAudiences: URIs and plain strings, at most 20, duplicates dropped', () => {
  assert.deepEqual(validateAllowedAudiences('allowedAudiences', ['https://a.example/x', 'urn:example:b', 'plain', 'plain']), ['https://a.example/x', 'urn:example:b', 'plain']);
  for (const bad of [[''], ['a b'], ['https://[x'], ['é'], Array.from({ length: 21 }, (_, i) => `a${i}`)]) {
    assert.throws(() => validateAllowedAudiences('allowedAudiences', bad), ValidationError, JSON.stringify(bad).slice(0, 40));
  }
});

test('requested audiences: resources are absolute URIs without fragments, every value allowed', () => {
  const allowed = ['https://a.example', 'b'];
  assert.deepEqual(requestedAudience(['https://a.example'], ['b', 'b'], allowed), ['https://a.example', 'b']);
  assert.throws(() => requestedAudience(['b'], [], allowed), AudienceRefused, 'a resource must be a URI');
  assert.throws(() => requestedAudience(['https://a.example#f'], [], [...allowed, 'https://a.example#f']), AudienceRefused);
  assert.throws(() => requestedAudience([], ['c'], allowed), AudienceRefused);
  assert.deepEqual(narrowedAudience([], ['https://a.example', 'gone'], allowed), ['https://a.example'], 'one the admin took away is not renewed');
  assert.throws(() => narrowedAudience(['b'], ['https://a.example'], allowed), AudienceRefused);
});

test('aud: the client_id for none, a string for one, an array for several', () => {
  assert.equal(audClaim([], 'cid'), 'cid');
  assert.equal(audClaim(['x'], 'cid'), 'x');
  assert.deepEqual(audClaim(['x', 'y'], 'cid'), ['x', 'y']);
});

test('act chains: depth counted, malformed ones refused', () => {
  assert.equal(actDepth({ sub: 'a' }), 1);
  assert.equal(actDepth({ sub: 'a', act: { sub: 'b', act: { sub: 'c' } } }), 3);
  assert.equal(actDepth({ sub: 1 }), null);
  assert.equal(actDepth('x'), null);
  assert.equal(actDepth({ sub: 'a', act: [] }), null);
  let deep: Record<string, unknown> = { sub: 'x' };
  for (let i = 0; i < 10_000; i++) deep = { sub: `x${i}`, act: deep };
  assert.ok((actDepth(deep) ?? 0) > 5, 'a very deep chain stops counting early');
});
