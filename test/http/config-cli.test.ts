/** The `tessera` CLI as a user runs it: a spawned process against a real server. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { signingKey } from '../helpers/federation.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const BIN = path.join(repoRoot, 'bin', 'tessera.js');
const EXAMPLE = path.join(repoRoot, 'examples', 'config.yaml');

interface Run { code: number; stdout: string; stderr: string }

function tessera(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const base: NodeJS.ProcessEnv = { PATH: process.env.PATH, TESSERA_TOKEN: t.adminToken };
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...base, ...env }, cwd: work }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

let t: TestServer;
let work: string;
/** Stands in for GitHub's OIDC discovery and the cluster's JWKS (the machine is offline). */
let issuers: http.Server;
let exampleFile: string;

before(async () => {
  t = await startTestServer();
  work = await mkdtemp(path.join(os.tmpdir(), 'tessera-cli-'));
  const key = await signingKey();
  issuers = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    const base = `http://127.0.0.1:${(issuers.address() as AddressInfo).port}`;
    if (req.url === '/github/.well-known/openid-configuration') {
      res.end(JSON.stringify({ issuer: 'https://token.actions.githubusercontent.com', jwks_uri: `${base}/github/jwks` }));
    } else res.end(JSON.stringify({ keys: [key.publicJwk] }));
  });
  await new Promise<void>((resolve) => issuers.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(issuers.address() as AddressInfo).port}`;
  const text = (await readFile(EXAMPLE, 'utf8'))
    .replace('https://token.actions.githubusercontent.com/.well-known/openid-configuration', `${base}/github/.well-known/openid-configuration`)
    .replace('https://kubernetes.default.svc/openid/v1/jwks', `${base}/kubernetes/jwks`);
  exampleFile = path.join(work, 'config.yaml');
  await writeFile(exampleFile, text);
});
after(async () => {
  issuers.closeAllConnections();
  await new Promise((resolve) => issuers.close(resolve));
  await t.stop();
  await rm(work, { recursive: true, force: true });
});

describe('without a server', () => {
  test('--help and --version print and exit 0; a bad command line exits 1', async () => {
    const help = await tessera(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: tessera <command>/);
    const version = await tessera(['--version']);
    assert.equal(version.code, 0);
    const pkg = JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    assert.equal(version.stdout.trim(), `tessera ${pkg.version}`);
    const unknown = await tessera(['frobnicate', '--url', t.url]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
    const noToken = await tessera(['export', '--url', t.url], { TESSERA_TOKEN: undefined });
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /TESSERA_TOKEN/);
  });
});

describe('the example file, plan and apply', () => {
  test('plan shows the diff and exits 2; apply makes it and writes the secrets 0600; then plan exits 0', async () => {
    const planned = await tessera(['plan', exampleFile, '--url', t.url]);
    assert.equal(planned.code, 2, planned.stderr);
    assert.match(planned.stdout, /^\+ create provider devices$/m);
    assert.match(planned.stdout, /^\+ create client deploy$/m);
    assert.match(planned.stdout, /^\+ create binding client deploy → deploy-from-main$/m);
    assert.match(planned.stdout, /^\s+signingAlgorithm: "ES256"$/m);
    assert.match(planned.stdout, /changes: \d+ to create, 0 to update, 0 to delete\.$/m);
    assert.doesNotMatch(planned.stdout, /\x1b\[/, 'no colour when stdout is not a terminal');
    const coloured = await tessera(['plan', exampleFile, '--url', t.url], { FORCE_COLOR: '1' });
    assert.match(coloured.stdout, /\x1b\[32m\+ create provider/);
    const noColor = await tessera(['plan', exampleFile, '--url', t.url], { FORCE_COLOR: '1', NO_COLOR: '1' });
    assert.doesNotMatch(noColor.stdout, /\x1b\[/, 'NO_COLOR wins');

    const secretsFile = path.join(work, 'secrets.yaml');
    const applied = await tessera(['apply', exampleFile, '--url', t.url, '--secrets-out', secretsFile]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /^Applied\./m);
    assert.match(applied.stderr, /^applying \d+ changes…$/m, 'a progress line');
    assert.equal((await stat(secretsFile)).mode & 0o777, 0o600);
    const { secrets } = YAML.parse(await readFile(secretsFile, 'utf8')) as { secrets: { kind: string; name: string; secret: string }[] };
    assert.deepEqual(secrets.map((s) => `${s.kind} ${s.name}`), ['appPassword backup-robot/backup job']);
    assert.ok(!applied.stdout.includes(secrets[0]!.secret), 'with --secrets-out the secret is not printed');

    const again = await tessera(['plan', exampleFile, '--url', t.url]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /No changes/);
  });

  test('export writes YAML (or JSON) that plans no change', async () => {
    const yaml = await tessera(['export', '--url', t.url]);
    assert.equal(yaml.code, 0, yaml.stderr);
    const exported = YAML.parse(yaml.stdout) as { providers: { slug: string }[] };
    assert.ok(exported.providers.some((p) => p.slug === 'ci'));
    const json = await tessera(['export', '--url', t.url, '--json']);
    assert.deepEqual(JSON.parse(json.stdout), exported);
    const file = path.join(work, 'exported.json');
    await writeFile(file, json.stdout);
    const planned = await tessera(['plan', file, '--url', t.url, '--prune']);
    assert.equal(planned.code, 0, planned.stdout + planned.stderr);
  });

  test('a change in the file is drift: plan exits 2 and shows before → after; apply prints a new secret once', async () => {
    const doc = YAML.parse(await readFile(exampleFile, 'utf8')) as { providers: { slug: string; accessTokenLifetimeSeconds?: number }[]; clients: unknown[] };
    doc.providers.find((p) => p.slug === 'ci')!.accessTokenLifetimeSeconds = 300;
    doc.clients.push({ clientId: 'reporting', provider: 'ci', name: 'Reporting', type: 'CONFIDENTIAL', grantTypes: ['CLIENT_CREDENTIALS'] });
    const file = path.join(work, 'changed.yaml');
    await writeFile(file, YAML.stringify(doc));
    const planned = await tessera(['plan', file, '--url', t.url]);
    assert.equal(planned.code, 2);
    assert.match(planned.stdout, /^~ update provider ci\n {4}accessTokenLifetimeSeconds: 600 → 300$/m);
    const applied = await tessera(['apply', file, '--url', t.url]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /shown only once/);
    assert.match(applied.stdout, /^ {2}client reporting: \S{20,}$/m);
  });

  test('an invalid file, an unreachable server, a bad token: exit 1 with the reason, nothing changed', async () => {
    const before = await t.gql<{ exportConfig: unknown }>('query { exportConfig }');
    const bad = path.join(work, 'bad.yaml');
    await writeFile(bad, YAML.stringify({ providers: [{ slug: 'ok', name: 'OK' }, { slug: 'x', name: 'X', deviceFlow: { userCodeLength: 2 } }] }));
    for (const command of ['plan', 'apply']) {
      const run = await tessera([command, bad, '--url', t.url]);
      assert.equal(run.code, 1);
      assert.match(run.stderr, /BAD_USER_INPUT: providers\[1\]\.deviceFlow\.userCodeLength/);
    }
    const broken = path.join(work, 'broken.yaml');
    await writeFile(broken, 'providers: [\n');
    assert.equal((await tessera(['apply', broken, '--url', t.url])).code, 1);
    const wrongToken = await tessera(['plan', bad, '--url', t.url], { TESSERA_TOKEN: 'not-a-token-at-all-0000' });
    assert.equal(wrongToken.code, 1);
    assert.match(wrongToken.stderr, /UNAUTHENTICATED/);
    const unreachable = await tessera(['export', '--url', 'http://127.0.0.1:1']);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /cannot reach/);
    assert.deepEqual(await t.gql('query { exportConfig }'), before);
  });
});

describe('the README', () => {
  test('its "Configuration as code" example is examples/config.yaml, word for word', async () => {
    const readme = await readFile(path.join(repoRoot, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Configuration as code'));
    const block = /```yaml\n([\s\S]*?)```/.exec(section);
    assert.ok(block, 'a yaml block in the section');
    assert.equal(block[1], await readFile(EXAMPLE, 'utf8'));
  });
});
