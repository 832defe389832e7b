/** OAuthError: an expected protocol answer captures no stack trace (its cost), and stays an ordinary Error otherwise. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OAuthError, invalidGrant } from '../../src/oauth/errors.js';

test('an expected OAuthError is still an Error and an OAuthError, with its message, but no stack frames', () => {
  const limit = Error.stackTraceLimit;
  const error = new OAuthError('authorization_pending', 'waiting for the user', 'poll 3');
  assert.ok(error instanceof OAuthError);
  assert.ok(error instanceof Error);
  assert.equal(error.name, 'OAuthError');
  assert.equal(error.message, 'authorization_pending: waiting for the user (poll 3)');
  assert.equal(error.code, 'authorization_pending');
  assert.equal(error.status, 400);
  assert.doesNotMatch(error.stack ?? '', /\n\s+at /, 'no frames captured');
  assert.ok(invalidGrant('x') instanceof OAuthError);
  assert.equal(Error.stackTraceLimit, limit, 'the global limit is restored');
  assert.match(new Error('other').stack ?? '', /\n\s+at /, 'other errors keep their stacks');
});

test('a server_error OAuthError keeps its stack trace', () => {
  assert.match(new OAuthError('server_error', 'boom').stack ?? '', /\n\s+at /);
});
