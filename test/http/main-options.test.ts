/**
 * `node dist/src/main.js --help` / `--version`, spawned as a user runs them: they print and exit 0
 * without starting a server (nothing listens on PORT, no data directory is made); any other
 * argument exits 2, also without starting.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../helpers/server.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const main = path.join(root, 'dist/src/main.js');
const version = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;

async function run(args: string[]) {
  const port = await freePort();
  const dataDir = path.join(os.tmpdir(), `tessera-main-options-${process.pid}-${port}`);
  const result = spawnSync(process.execPath, [main, ...args], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', TESSERA_DATA_DIR: dataDir, TESSERA_LOG_LEVEL: 'info' },
    encoding: 'utf8', timeout: 20_000,
  });
  const listening = await new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
  return { ...result, listening, dataDirMade: existsSync(dataDir) };
}

for (const flag of ['--help', '-h']) {
  test(`${flag} prints the usage and exits 0 without starting a server`, async () => {
    const r = await run([flag]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Tessera \d+\.\d+\.\d+/);
    assert.match(r.stdout, /Usage: node dist\/src\/main\.js/);
    assert.match(r.stdout, /OTEL_EXPORTER_OTLP_ENDPOINT/);
    assert.equal(r.stderr, '');
    assert.doesNotMatch(r.stdout, /Admin token|tessera ready/);
    assert.equal(r.listening, false);
    assert.equal(r.dataDirMade, false, 'no store was opened');
  });
}

for (const flag of ['--version', '-v']) {
  test(`${flag} prints package.json's version and exits 0 without starting a server`, async () => {
    const r = await run([flag]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${version}\n`);
    assert.equal(r.listening, false);
    assert.equal(r.dataDirMade, false);
  });
}

test('an unknown argument exits 2 with a one-line reason, without starting a server', async () => {
  const r = await run(['--port', '1234']);
  assert.equal(r.status, 2);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^tessera: unknown argument "--port 1234"/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.equal(r.dataDirMade, false);
});
