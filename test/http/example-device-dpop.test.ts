/**
 * `npm run example:device -- --dpop` end to end: the example device, holding its key in memory,
 * binds the device code and the tokens to it, reads userinfo with a proof, and sees the same token
 * refused as Bearer.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { seedClient, seedProvider, seedUser } from '../helpers/seed.js';
import { decide } from '../helpers/device.js';

const example = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples/device.js');

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server.stop();
});

test('the example device with --dpop gets a DPoP-bound token, uses it with a proof, and a copy without the key is refused', { timeout: 60_000 }, async () => {
  const provider = await seedProvider(server, { deviceFlow: { pollIntervalSeconds: 1 } });
  const { clientId } = await seedClient(server, { providerId: provider.id, grantTypes: ['DEVICE_CODE', 'REFRESH_TOKEN'], allowedScopes: ['openid', 'profile'] });
  const person = await seedUser(server);
  const child = spawn(process.execPath, [example, server.server.services.config.publicUrl, clientId, 'openid profile', '--dpop'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let approved = false;
  const done = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    const code = /and enter the code\n {2}(\S+)/.exec(output);
    if (code && !approved) {
      approved = true;
      void decide(server, person.username, person.appPassword, code[1]!, 'allow');
    }
  });
  assert.equal(await done, 0, output);
  assert.match(output, /Signed in\. DPoP access token/);
  assert.match(output, /"cnf": \{\s*"jkt": "[A-Za-z0-9_-]{43}"/);
  assert.match(output, /userinfo with a DPoP proof: HTTP 200/);
  assert.match(output, /as Bearer\): HTTP 401, DPoP /);
});
