/** A key another server process made is picked up when a token names its kid. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT, generateKeyPair } from 'jose';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { seedMachineClient, seedMachineProvider } from '../helpers/seed.js';
import { SigningKeyService } from '../../src/domain/keys.js';
import { resolveSecretKey } from '../../src/config.js';

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(() => server.stop());

test('an access token signed with a key made by another process verifies (unknown kid reloads the keys once)', async () => {
  const { services } = server.server;
  const provider = await seedMachineProvider(server);
  // A real client: a token dies with the client it was issued to (contract v2).
  await seedMachineClient(server, provider, { clientId: 'c1' });
  const user = await services.users.create({ username: 'key-reload-user' });
  const first = await services.tokens.issueAccessToken({ provider, client: { clientId: 'c1' }, user, scopes: [] });
  assert.ok(await services.tokens.verifyAccessToken(first.token), 'a token of the current key verifies (and warms the cache)');

  // Another node on the same store rotates the key (as an algorithm change there would).
  const otherNode = new SigningKeyService(services.store, resolveSecretKey(services.config));
  await otherNode.createKey(provider.id, 'ES256');
  const key = await otherNode.activeKey(provider.id);
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ client_id: 'c1', scope: '', jti: 'rotated-1', sub: user.id, aud: 'c1' })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })
    .setIssuer(services.providers.issuer(provider)).setIssuedAt(now).setExpirationTime(now + 60)
    .sign(key.privateKey);

  const verified = await services.tokens.verifyAccessToken(token);
  assert.equal(verified?.claims.jti, 'rotated-1');
  assert.ok(await services.tokens.verifyAccessToken(first.token), 'the old key is still published');
});

test('a token with a kid no process made does not verify', async () => {
  const { services } = server.server;
  const provider = await seedMachineProvider(server);
  await seedMachineClient(server, provider, { clientId: 'c2' });
  const user = await services.users.create({ username: 'key-reload-forged' });
  const now = Math.floor(Date.now() / 1000);
  const { privateKey } = await generateKeyPair('ES256');
  const token = await new SignJWT({ client_id: 'c2', scope: '', jti: 'forged', sub: user.id })
    .setProtectedHeader({ alg: 'ES256', kid: 'made-up', typ: 'at+jwt' })
    .setIssuer(services.providers.issuer(provider)).setIssuedAt(now).setExpirationTime(now + 60)
    .sign(privateKey);
  assert.equal(await services.tokens.verifyAccessToken(token), null);
});
