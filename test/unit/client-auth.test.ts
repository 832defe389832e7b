/**
 * src/oauth/client-auth.ts on its own (RFC 6749 §2.3, Appendix B; contract "Client authentication"):
 * what a request presents, malformed Basic headers, encodings, conflicts, and the secret check.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  authenticateClient, extractClientCredentials, parseBasicAuthorization, requireGrant, type PresentedClient,
} from '../../src/oauth/client-auth.js';
import { OAuthError } from '../../src/oauth/errors.js';
import { sha256Hex } from '../../src/domain/secrets.js';
import type { Client, Provider } from '../../src/domain/model.js';
import { DEFAULT_DEVICE_FLOW } from '../../src/domain/providers.js';

const b64 = (text: string | Buffer) => Buffer.from(text).toString('base64');
const form = (entries: Record<string, string> = {}) => new Map(Object.entries(entries));

function throwsOAuth(fn: () => unknown, code: string, status: number, wwwAuthenticate?: string | null): OAuthError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof OAuthError, `expected an OAuthError, got ${String(caught)}`);
  assert.equal(caught.code, code);
  assert.equal(caught.status, status);
  if (wwwAuthenticate !== undefined) assert.equal(caught.headers['WWW-Authenticate'], wwwAuthenticate ?? undefined);
  return caught;
}

describe('HTTP Basic parsing', () => {
  test('plain client_id:secret', () => {
    assert.deepEqual(parseBasicAuthorization(`Basic ${b64('tv:s3cret')}`), { clientIds: ['tv'], secrets: ['s3cret'] });
  });

  test('the scheme is case-insensitive', () => {
    assert.deepEqual(parseBasicAuthorization(`basic ${b64('tv:x')}`).clientIds, ['tv']);
  });

  test("a public client's 'client_id:' has no secret", () => {
    assert.deepEqual(parseBasicAuthorization(`Basic ${b64('tv:')}`), { clientIds: ['tv'], secrets: [] });
  });

  test('urlencoded values are decoded, and also kept as sent', () => {
    assert.deepEqual(parseBasicAuthorization(`Basic ${b64('my%20tv:p%40ss')}`), { clientIds: ['my tv', 'my%20tv'], secrets: ['p@ss', 'p%40ss'] });
  });

  test("'+' in a secret: decoded as a space (Appendix B) and also taken as sent", () => {
    assert.deepEqual(parseBasicAuthorization(`Basic ${b64('tv:a+b')}`).secrets, ['a b', 'a+b']);
  });

  test("'%3D' in a secret: decoded to '=' and also taken as sent", () => {
    assert.deepEqual(parseBasicAuthorization(`Basic ${b64('tv:abc%3D')}`).secrets, ['abc=', 'abc%3D']);
  });

  test('a value that is not valid percent-encoding is taken as sent', () => {
    assert.deepEqual(parseBasicAuthorization(`Basic ${b64('tv:100%zz')}`).secrets, ['100%zz']);
  });

  test('a colon in the secret belongs to the secret', () => {
    assert.deepEqual(parseBasicAuthorization(`Basic ${b64('tv:a:b')}`).secrets, ['a:b']);
  });

  test('no colon: invalid_client, 401, WWW-Authenticate', () => {
    throwsOAuth(() => parseBasicAuthorization(`Basic ${b64('tv')}`), 'invalid_client', 401, 'Basic realm="tessera"');
  });

  test('bad base64: invalid_client', () => {
    throwsOAuth(() => parseBasicAuthorization('Basic !!!notbase64'), 'invalid_client', 401, 'Basic realm="tessera"');
    throwsOAuth(() => parseBasicAuthorization('Basic abcde'), 'invalid_client', 401);
  });

  test('no credentials after the scheme: invalid_client', () => {
    throwsOAuth(() => parseBasicAuthorization('Basic'), 'invalid_client', 401);
    throwsOAuth(() => parseBasicAuthorization('Basic '), 'invalid_client', 401);
  });

  test('non-UTF-8 credentials: invalid_client', () => {
    throwsOAuth(() => parseBasicAuthorization(`Basic ${b64(Buffer.from([0x74, 0x76, 0x3a, 0xff, 0xfe]))}`), 'invalid_client', 401, 'Basic realm="tessera"');
  });

  test('an empty client_id: invalid_client', () => {
    throwsOAuth(() => parseBasicAuthorization(`Basic ${b64(':secret')}`), 'invalid_client', 401, 'Basic realm="tessera"');
  });

  test('an oversized header: invalid_client', () => {
    throwsOAuth(() => parseBasicAuthorization(`Basic ${b64(`tv:${'x'.repeat(10_000)}`)}`), 'invalid_client', 401);
  });
});

describe('what a request presents', () => {
  test('Basic alone', () => {
    const p = extractClientCredentials(`Basic ${b64('tv:s')}`, form());
    assert.deepEqual(p, { clientIds: ['tv'], secrets: ['s'], method: 'client_secret_basic', viaBasic: true });
  });

  test("Basic 'client_id:' alone is the public-client method none (the authentik report)", () => {
    const p = extractClientCredentials(`Basic ${b64('tv:')}`, form());
    assert.deepEqual(p, { clientIds: ['tv'], secrets: [], method: 'none', viaBasic: true });
  });

  test('body client_id alone', () => {
    assert.deepEqual(extractClientCredentials(undefined, form({ client_id: 'tv' })), { clientIds: ['tv'], secrets: [], method: 'none', viaBasic: false });
  });

  test('body client_id and client_secret', () => {
    assert.equal(extractClientCredentials(undefined, form({ client_id: 'tv', client_secret: 's' })).method, 'client_secret_post');
  });

  test('body values are not decoded a second time', () => {
    assert.deepEqual(extractClientCredentials(undefined, form({ client_id: 'tv', client_secret: 'a+b%3D' })).secrets, ['a+b%3D']);
  });

  test('Basic and a body client_secret together: invalid_request', () => {
    throwsOAuth(() => extractClientCredentials(`Basic ${b64('tv:s')}`, form({ client_secret: 's' })), 'invalid_request', 400);
  });

  test('a body client_id that differs from the Basic one: invalid_request', () => {
    throwsOAuth(() => extractClientCredentials(`Basic ${b64('tv:s')}`, form({ client_id: 'radio' })), 'invalid_request', 400);
  });

  test('a body client_id equal to the Basic one (decoded or as sent) is fine', () => {
    assert.equal(extractClientCredentials(`Basic ${b64('tv:s')}`, form({ client_id: 'tv' })).viaBasic, true);
    assert.equal(extractClientCredentials(`Basic ${b64('my%20tv:s')}`, form({ client_id: 'my tv' })).viaBasic, true);
  });

  test('nothing at all: invalid_client without WWW-Authenticate (Basic was not used)', () => {
    throwsOAuth(() => extractClientCredentials(undefined, form()), 'invalid_client', 401, null);
  });

  test('an empty body client_id: invalid_client', () => {
    throwsOAuth(() => extractClientCredentials(undefined, form({ client_id: '' })), 'invalid_client', 401);
  });

  test('another scheme (Bearer) is not client authentication: the body decides', () => {
    assert.equal(extractClientCredentials('Bearer abc', form({ client_id: 'tv' })).viaBasic, false);
    throwsOAuth(() => extractClientCredentials('Bearer abc', form()), 'invalid_client', 401);
  });

  test('oversized body credentials: invalid_client', () => {
    throwsOAuth(() => extractClientCredentials(undefined, form({ client_id: 'x'.repeat(9000) })), 'invalid_client', 401);
  });
});

describe('authenticating the client', () => {
  const provider: Provider = {
    id: 'p1', name: 'P', slug: 'p', accessTokenLifetimeSeconds: 600, refreshTokenLifetimeSeconds: 3600, signingAlgorithm: 'RS256',
    deviceFlow: DEFAULT_DEVICE_FLOW, federatedSourceIds: [], federatedProviderIds: [], createdAt: new Date(), updatedAt: new Date(),
  };
  const client = (clientId: string, type: Client['type'], secret: string | null): Client => ({
    id: `id-${clientId}`, providerId: 'p1', name: clientId, clientId, type, grantTypes: ['DEVICE_CODE'], allowedScopes: [],
    secretHash: secret ? sha256Hex(secret) : null, createdAt: new Date(), updatedAt: new Date(),
  });
  const clients = new Map([
    ['tv', client('tv', 'PUBLIC', null)],
    ['server', client('server', 'CONFIDENTIAL', 'right-secret')],
    ['plus', client('plus', 'CONFIDENTIAL', 'a+b')],
    ['orphan', { ...client('orphan', 'PUBLIC', null), providerId: 'gone' }],
  ]);
  const lookups = {
    clients: { getByClientId: async (id: string) => clients.get(id) ?? null },
    providers: { get: async (id: string) => (id === 'p1' ? provider : null) },
  };
  const basicOf = (text: string): PresentedClient => extractClientCredentials(`Basic ${b64(text)}`, form());

  async function rejects(presented: PresentedClient, requireSecret: boolean, wwwAuthenticate: string | null): Promise<void> {
    await assert.rejects(authenticateClient(lookups, presented, { requireSecret }), (error: unknown) => {
      assert.ok(error instanceof OAuthError);
      assert.equal(error.code, 'invalid_client');
      assert.equal(error.status, 401);
      assert.equal(error.headers['WWW-Authenticate'], wwwAuthenticate ?? undefined);
      return true;
    });
  }

  test('a public client needs no secret', async () => {
    const result = await authenticateClient(lookups, basicOf('tv:'), { requireSecret: true });
    assert.equal(result.client.clientId, 'tv');
    assert.equal(result.provider.id, 'p1');
    assert.equal(result.secretVerified, false);
  });

  test('a confidential client with its secret is verified', async () => {
    const result = await authenticateClient(lookups, basicOf('server:right-secret'), { requireSecret: true });
    assert.equal(result.secretVerified, true);
    assert.equal(result.method, 'client_secret_basic');
  });

  test('a confidential client with a wrong secret: invalid_client with WWW-Authenticate over Basic', async () => {
    await rejects(basicOf('server:wrong'), true, 'Basic realm="tessera"');
  });

  test('a confidential client without a secret (body): invalid_client without WWW-Authenticate', async () => {
    await rejects(extractClientCredentials(undefined, form({ client_id: 'server' })), true, null);
  });

  test("a secret with '+' sent unencoded (curl -u) still matches", async () => {
    assert.equal((await authenticateClient(lookups, basicOf('plus:a+b'), { requireSecret: true })).secretVerified, true);
  });

  test("a secret with '+' sent encoded as %2B matches", async () => {
    assert.equal((await authenticateClient(lookups, basicOf('plus:a%2Bb'), { requireSecret: true })).secretVerified, true);
  });

  test('an unknown client: invalid_client', async () => {
    await rejects(basicOf('nobody:'), true, 'Basic realm="tessera"');
  });

  test('a client whose provider is gone: invalid_client', async () => {
    await rejects(basicOf('orphan:'), true, 'Basic realm="tessera"');
  });

  test('requireSecret false lets the grant decide what the secret means', async () => {
    const result = await authenticateClient(lookups, basicOf('server:something-else'), { requireSecret: false });
    assert.equal(result.secretVerified, false);
    assert.equal(result.presentedSecrets[0], 'something-else');
  });

  test('a client without the grant: unauthorized_client', () => {
    throwsOAuth(() => requireGrant(clients.get('tv')!, 'CLIENT_CREDENTIALS'), 'unauthorized_client', 400);
    requireGrant(clients.get('tv')!, 'DEVICE_CODE');
  });
});
