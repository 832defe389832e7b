/**
 * The README's shell walkthroughs, run from the README's own text: every ```sh block, in order, in
 * one `bash -Eeuo pipefail` (a reader pasting the README into one shell, so variables carry over),
 * except a block preceded by `<!-- not run: reason -->`. The only substitutions are the inputs the
 * README tells the reader to supply: the server's address, the admin token, the projected token's
 * path, and the external issuers (a stand-in for the Kubernetes cluster, whose `kubectl` is a shim
 * on PATH, and one for GitHub Actions, with the job's ACTIONS_ID_TOKEN_REQUEST_* variables).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { signingKey, type SigningKey } from '../helpers/federation.js';

const MARKER = '__README_BLOCK__';

interface Block { section: string; line: number; text: string }

/**
 * The ```sh blocks of the README with the section (## heading) and line each starts at, and the
 * `run: |` scripts of a ```yaml workflow marked `<!-- run: steps -->`.
 */
function shellBlocks(readme: string): { run: Block[]; skipped: (Block & { reason: string })[] } {
  const lines = readme.split('\n');
  const run: Block[] = [];
  const skipped: (Block & { reason: string })[] = [];
  let section = '(top)';
  let lastComment: string | null = null;
  let runSteps = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('## ')) section = line.slice(3).trim();
    if (line.trim() === '<!-- run: steps -->') {
      runSteps = true;
      continue;
    }
    if (runSteps && line.trim() === '```yaml') {
      for (i++; i < lines.length && lines[i]!.trim() !== '```'; i++) {
        const step = /^(\s*)run: \|$/.exec(lines[i]!);
        if (!step) continue;
        const body: string[] = [];
        const start = i + 2;
        while (i + 1 < lines.length && (lines[i + 1]!.trim() === '' || indent(lines[i + 1]!) > step[1]!.length)) body.push(lines[++i]!);
        const depth = Math.min(...body.filter((l) => l.trim()).map(indent));
        run.push({ section, line: start, text: body.map((l) => l.slice(depth)).join('\n') });
      }
    }
    const notRun = /^<!-- not run: (.+) -->$/.exec(line.trim());
    if (notRun) {
      lastComment = notRun[1]!;
      continue;
    }
    if (line.trim() === '```sh') {
      const start = i + 1;
      let end = start;
      while (end < lines.length && lines[end]!.trim() !== '```') end++;
      const block = { section, line: start + 1, text: lines.slice(start, end).join('\n') };
      if (lastComment !== null) skipped.push({ ...block, reason: lastComment });
      else run.push(block);
      i = end;
    }
    if (line.trim() !== '') {
      lastComment = null;
      runSteps = false;
    }
  }
  return { run, skipped };
}

const indent = (line: string): number => line.length - line.trimStart().length;

/** A stand-in for a Kubernetes cluster's and GitHub Actions' OIDC issuers on one local port. */
class StandInIssuers {
  base = '';
  k8s!: SigningKey;
  github!: SigningKey;
  readonly jobRequestToken = `job-${crypto.randomUUID()}`;
  private readonly server = http.createServer((req, res) => void this.answer(req, res));

  async start(): Promise<void> {
    [this.k8s, this.github] = await Promise.all([signingKey(), signingKey()]);
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** A projected service-account token of `namespace/name`, as the kubelet writes it. */
  projectedToken(namespace: string, name: string): Promise<string> {
    return this.sign(this.k8s, `${this.base}/k8s`, 'tessera', {
      sub: `system:serviceaccount:${namespace}:${name}`,
      'kubernetes.io': { namespace, serviceaccount: { name, uid: crypto.randomUUID() } },
    });
  }

  private sign(key: SigningKey, iss: string, aud: string, claims: Record<string, unknown>): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss, aud, iat: now, exp: now + 600, ...claims })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' }).sign(key.privateKey);
  }

  private async answer(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.base);
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    for (const [name, key] of [['k8s', this.k8s], ['github', this.github]] as const) {
      const issuer = `${this.base}/${name}`;
      if (url.pathname === `/${name}/.well-known/openid-configuration`) return json(200, { issuer, jwks_uri: `${issuer}/jwks` });
      if (url.pathname === `/${name}/jwks` || (name === 'k8s' && url.pathname === '/k8s/openid/v1/jwks')) return json(200, { keys: [key.publicJwk] });
    }
    // GitHub's token request endpoint: the job's request token in the header, the audience in the query.
    if (url.pathname === '/github/token') {
      if (req.headers.authorization !== `bearer ${this.jobRequestToken}`) return json(401, { message: 'bad request token' });
      const value = await this.sign(this.github, `${this.base}/github`, url.searchParams.get('audience') ?? '', {
        sub: 'repo:acme/deploy:ref:refs/heads/main', repository: 'acme/deploy', repository_owner_id: '1234567',
        repository_id: '89012345', ref: 'refs/heads/main',
      });
      return json(200, { count: value.length, value });
    }
    json(404, { message: 'not found' });
  }
}

let t: TestServer;
let issuers: StandInIssuers;
let work: string;
before(async () => {
  t = await startTestServer();
  issuers = new StandInIssuers();
  await issuers.start();
  work = await mkdtemp(path.join(os.tmpdir(), 'tessera-readme-'));
});
after(async () => {
  await t.stop();
  await issuers.stop();
  await rm(work, { recursive: true, force: true });
});

/** The documented inputs, replaced by this test's values; nothing else in the text changes. */
function substitute(text: string, tokenFile: string): string {
  return text
    .replace(/^(\s*(?:export )?(?:TOKEN|TESSERA_TOKEN))=\.\.\./gm, `$1=${t.adminToken}`)
    .replaceAll('http://localhost:9000', t.url)
    .replaceAll('https://tessera.example.com', t.url)
    .replaceAll('https://token.actions.githubusercontent.com', `${issuers.base}/github`)
    .replaceAll('/var/run/secrets/tessera/token', tokenFile);
}

function runBash(script: string, env: Record<string, string>): Promise<{ code: number | null; output: string; failedAt: string }> {
  return new Promise((resolve, reject) => {
    // Its own process group, so a hung run is stopped with every curl it started.
    const child = spawn('bash', ['-Eeuo', 'pipefail', '-c', script], {
      cwd: work, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
    });
    let output = '';
    let failedAt = '';
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 50_000);
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      const m = /__README_FAILED__ (.*)/.exec(text);
      if (m) failedAt += m[1];
      output += text.replace(/__README_FAILED__ .*\n?/, '');
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output, failedAt });
    });
  });
}

/** The blocks as one script; lineMap[n - 1] names the README line of the script's line n. */
function oneScript(run: Block[], tokenFile: string): { script: string; lineMap: string[] } {
  const lineMap = ['(trap)'];
  const parts = ["trap 'echo \"__README_FAILED__ $LINENO: $BASH_COMMAND\" >&2' ERR"];
  for (const block of run) {
    // A marker line in the output, so an error printed is traced to its block.
    parts.push(`echo; echo '${MARKER} README.md:${block.line} (${block.section.replaceAll("'", '')})'`);
    lineMap.push('(marker)');
    const text = substitute(block.text, tokenFile);
    text.split('\n').forEach((_, i) => lineMap.push(`README.md:${block.line + i} (${block.section})`));
    parts.push(text);
  }
  return { script: parts.join('\n'), lineMap };
}

/** Answers printed that are not successes (GraphQL errors, OAuth errors, a jq "null"), each with its block. */
function errorsPrinted(output: string): string[] {
  const bad: string[] = [];
  let block = '';
  for (const l of output.split(/\n|(?<=\})(?=\{)/)) {
    if (l.startsWith(MARKER)) block = l.slice(MARKER.length + 1);
    // A GraphQL answer may hold an "error" inside its data (an event's context): only "errors" count there.
    else if (/"errors"\s*:|^null$/.test(l) || (!l.startsWith('{"data"') && /"error"\s*:\s*"/.test(l))) bad.push(`${block}: ${l.length > 300 ? `${l.slice(0, 300)}…` : l}`);
  }
  return bad;
}

/** What the walkthroughs did, from the audit log: only the refusal they show, and every way in used. */
async function checkAuditLog(output: string): Promise<void> {
  await t.server.services.events.flush();
  const events = await t.server.services.store.events.find({});
  // A refusal is only one the README makes on purpose and then shows (its events query prints the id).
  const refused = events.filter((e) => e.action === 'LOGIN_FAILED' || e.action === 'POLICY_DENIED');
  const unshown = refused.filter((e) => !output.includes(`"requestId":"${e.requestId}"`));
  assert.deepEqual(unshown.map((e) => e.context), [], 'the README walkthroughs were refused somewhere');
  assert.equal(refused.length, 1, 'the wrong app password of "Machines: client credentials"');
  const rules = new Set(events.filter((e) => e.action === 'LOGIN').map((e) => String(e.context.rule)));
  for (const rule of ['app_password', 'client_secret', 'federated_source', 'jwt_bearer']) {
    assert.ok(rules.has(rule), `no LOGIN by rule ${rule} (rules seen: ${[...rules].join(', ')})`);
  }
  assert.equal(events.filter((e) => e.action === 'TOKEN_EXCHANGED').length, 2, 'the two token exchange recipes');
}

/** The README's walkthroughs need curl and jq (.ci/run installs them). */
function missingTools(): string[] {
  return ['curl', 'jq'].filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
}
const missing = missingTools();

test('every README shell walkthrough runs as pasted, against a real server', {
  timeout: 60_000, skip: missing.length > 0 ? `needs ${missing.join(' and ')} (apt-get install ${missing.join(' ')})` : false,
}, async () => {
  const readme = await readFile(new URL('../../../README.md', import.meta.url), 'utf8');
  const { run, skipped } = shellBlocks(readme);
  assert.ok(run.length >= 10, `expected the README's walkthroughs, found ${run.length} runnable sh blocks`);
  for (const block of skipped) assert.ok(block.reason.length >= 10, `README.md:${block.line}: say why the block is not run`);

  const bin = path.join(work, 'bin');
  const tokenFile = path.join(work, 'projected-token');
  await mkdir(bin);
  // kubectl: only `kubectl get --raw <path>`, answered by the stand-in cluster.
  await writeFile(path.join(bin, 'kubectl'),
    `#!/bin/sh\n[ "$1 $2" = "get --raw" ] || { echo "kubectl stand-in: only 'get --raw PATH'" >&2; exit 1; }\nexec curl -sf "${issuers.base}/k8s$3"\n`);
  await chmod(path.join(bin, 'kubectl'), 0o755);
  await writeFile(tokenFile, await issuers.projectedToken('shop', 'deployer'));

  const { script, lineMap } = oneScript(run, tokenFile);
  const result = await runBash(script, {
    PATH: `${bin}:${process.env.PATH ?? ''}`,
    ACTIONS_ID_TOKEN_REQUEST_URL: `${issuers.base}/github/token?api-version=2.0`,
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: issuers.jobRequestToken,
    GITHUB_ENV: path.join(work, 'github-env'),
  });
  // The ERR trap names the line; an unbound variable stops bash without it, with "line N:".
  const failedAt = result.failedAt || (/bash: line (\d+: .*)/.exec(result.output)?.[1] ?? '');
  const where = (at: string) => {
    const m = /^(\d+): (.*)$/s.exec(at);
    return m ? `${lineMap[Number(m[1]) - 1] ?? `script line ${m[1]}`}: ${m[2]}` : at;
  };
  const tail = result.output.split('\n').filter((l) => l !== '' && !l.startsWith(MARKER)).slice(-20).map((l) => (l.length > 400 ? `${l.slice(0, 400)}…` : l)).join('\n');
  // Every answer printed must be a success.
  const bad = errorsPrinted(result.output);
  const printed = bad.join('\n');
  assert.equal(result.code, 0, `a README walkthrough failed at ${where(failedAt)}\n--- errors printed ---\n${printed}\n--- last output ---\n${tail}`);
  assert.equal(bad.length, 0, `README walkthroughs printed errors:\n${printed}`);

  await checkAuditLog(result.output);
  // Policies and mappings: the namespace went from the projected token to the account to userinfo.
  assert.match(result.output, /"kubernetes_namespace":"shop"/, 'README.md "Policies and mappings": userinfo shows no kubernetes_namespace');
  // The GitHub Actions step hands its token to the next steps through $GITHUB_ENV.
  assert.match(await readFile(path.join(work, 'github-env'), 'utf8'), /^ACCESS_TOKEN=eyJ[\w-]+\.[\w-]+\.[\w-]+$/m);
});
