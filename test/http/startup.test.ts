/**
 * The process itself (`node dist/src/main.js`, what `npm start` runs): configuration errors as one
 * stderr line, the first-start admin token, start-up time, graceful shutdown on SIGTERM, and no
 * acknowledged write lost to a kill -9.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { freePort, startTestServer } from '../helpers/server.js';

const MAIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/main.js');
const ROOT = path.resolve(path.dirname(MAIN), '../..');
const BOOTSTRAP = 'startup-test-token-0123456789abcdef';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-startup-'));
  dirs.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** The parent's environment without anything Tessera reads, so only what a test sets applies. */
function cleanEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('TESSERA_') && name !== 'PORT' && name !== 'HOST' && !name.startsWith('NODE_TEST')) base[name] = value;
  }
  return { ...base, ...env };
}

interface Tessera {
  child: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function spawnTessera(env: Record<string, string>): Tessera {
  const child = spawn(process.execPath, [MAIN], { cwd: ROOT, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  return { child, url: `http://127.0.0.1:${env.PORT ?? '9000'}`, stdout: () => out, stderr: () => err, exited };
}

async function startTessera(dataDir: string, env: Record<string, string> = {}): Promise<Tessera & { readyMs: number }> {
  const port = await freePort();
  const started = performance.now();
  const tessera = spawnTessera({ PORT: String(port), HOST: '127.0.0.1', TESSERA_DATA_DIR: dataDir, TESSERA_LOG_LEVEL: 'warn', ...env });
  let exitedEarly = false;
  void tessera.exited.then(() => (exitedEarly = true));
  for (;;) {
    if (exitedEarly) throw new Error(`tessera exited before ready: ${tessera.stderr()}`);
    if (performance.now() - started > 15_000) {
      tessera.child.kill('SIGKILL');
      throw new Error(`tessera not ready after 15 s: ${tessera.stderr()}`);
    }
    try {
      const response = await fetch(`${tessera.url}/readyz`);
      if (response.status === 200) {
        await response.body?.cancel();
        return { ...tessera, readyMs: Math.round(performance.now() - started) };
      }
      await response.body?.cancel();
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function stopTessera(tessera: Tessera): Promise<number | null> {
  tessera.child.kill('SIGTERM');
  const { code } = await tessera.exited;
  return code;
}

async function graphql(url: string, token: string, query: string, variables?: Record<string, unknown>): Promise<{ status: number; body: { data?: Record<string, unknown>; errors?: unknown[] } }> {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  return { status: response.status, body: (await response.json()) as { data?: Record<string, unknown>; errors?: unknown[] } };
}

describe('a bad configuration stops start-up with one line naming the variable', () => {
  const cases: [string, Record<string, string>, string][] = [
    ['PORT=abc', { PORT: 'abc' }, 'PORT'],
    ['TESSERA_PUBLIC_URL=notaurl', { TESSERA_PUBLIC_URL: 'notaurl' }, 'TESSERA_PUBLIC_URL'],
    ['TESSERA_LOG_LEVEL=loud', { TESSERA_LOG_LEVEL: 'loud' }, 'TESSERA_LOG_LEVEL'],
    ['TESSERA_MONGODB_URI without TESSERA_SECRET_KEY', { TESSERA_MONGODB_URI: 'mongodb://127.0.0.1:1/tessera' }, 'TESSERA_SECRET_KEY'],
    ['TESSERA_MONGODB_URI=postgres://…', { TESSERA_MONGODB_URI: 'postgres://db/x', TESSERA_SECRET_KEY: 'k'.repeat(40) }, 'TESSERA_MONGODB_URI'],
    ['TESSERA_SECRET_KEY too short', { TESSERA_SECRET_KEY: 'short' }, 'TESSERA_SECRET_KEY'],
    ['TESSERA_BOOTSTRAP_TOKEN too short', { TESSERA_BOOTSTRAP_TOKEN: 'short' }, 'TESSERA_BOOTSTRAP_TOKEN'],
    ['TESSERA_BOOTSTRAP_PASSWORD too short', { TESSERA_BOOTSTRAP_PASSWORD: 'short' }, 'TESSERA_BOOTSTRAP_PASSWORD'],
    ['HOST with a space', { HOST: 'bad host' }, 'HOST'],
  ];
  for (const [name, env, variable] of cases) {
    test(`${name}: exit 1, one stderr line naming ${variable}, no stack trace`, async () => {
      const dataDir = await tempDir();
      const tessera = spawnTessera({ PORT: String(await freePort()), TESSERA_DATA_DIR: dataDir, ...env });
      const { code } = await tessera.exited;
      assert.equal(code, 1);
      const lines = tessera.stderr().split('\n').filter((l) => l !== '');
      assert.equal(lines.length, 1, `one line, got: ${tessera.stderr()}`);
      assert.match(lines[0]!, new RegExp(`^tessera: .*\\b${variable}\\b`));
      assert.ok(!/\n\s+at /.test(tessera.stderr()), 'no stack trace');
      assert.equal(tessera.stdout(), '', 'nothing on stdout, no admin token printed');
    });
  }

  test('a data dir that is a file: exit 1, one line naming TESSERA_DATA_DIR', async () => {
    const file = path.join(await tempDir(), 'a-file');
    await writeFile(file, 'not a directory');
    const tessera = spawnTessera({ PORT: String(await freePort()), TESSERA_DATA_DIR: file });
    assert.equal((await tessera.exited).code, 1);
    const lines = tessera.stderr().split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, tessera.stderr());
    assert.match(lines[0]!, /TESSERA_DATA_DIR/);
  });

  test('a TESSERA_SECRET_KEY that does not decrypt the stored signing keys: exit 1, one line naming it', async () => {
    const dataDir = await tempDir();
    const seeded = await startTestServer({}, dataDir);
    await seeded.gql('mutation { createProvider(input: { name: "k", slug: "k", signingAlgorithm: EdDSA }) { id } }');
    await seeded.stop();
    const tessera = spawnTessera({ PORT: String(await freePort()), TESSERA_DATA_DIR: dataDir, TESSERA_SECRET_KEY: 'a-different-secret-key-0123456789abcdef' });
    assert.equal((await tessera.exited).code, 1);
    const lines = tessera.stderr().split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, tessera.stderr());
    assert.match(lines[0]!, /TESSERA_SECRET_KEY: does not decrypt the signing keys/);

    // A lost secret.key is refused the same way (a new one would be generated and decrypt nothing).
    await rm(path.join(dataDir, 'secret.key'));
    const lost = spawnTessera({ PORT: String(await freePort()), TESSERA_DATA_DIR: dataDir });
    assert.equal((await lost.exited).code, 1);
    assert.match(lost.stderr(), /TESSERA_SECRET_KEY: the key kept in .*secret\.key does not decrypt/);
  });

  test('a port already in use: exit 1, one line naming the address', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as net.AddressInfo;
    try {
      const tessera = spawnTessera({ PORT: String(port), HOST: '127.0.0.1', TESSERA_DATA_DIR: await tempDir(), TESSERA_LOG_LEVEL: 'warn' });
      assert.equal((await tessera.exited).code, 1);
      const lines = tessera.stderr().split('\n').filter((l) => l !== '');
      assert.equal(lines.length, 1, tessera.stderr());
      assert.match(lines[0]!, new RegExp(`127\\.0\\.0\\.1:${port}.*EADDRINUSE`));
    } finally {
      blocker.close();
    }
  });
});

describe('first start', () => {
  test('an empty data dir without a bootstrap token prints one Admin token line once; the token works', async () => {
    const dataDir = await tempDir();
    // Default log level: the info logs share stdout, the token line must still be there exactly once.
    const first = await startTessera(dataDir, { TESSERA_LOG_LEVEL: 'info' });
    const tokenLines = first.stdout().split('\n').filter((l) => l.startsWith('Admin token:'));
    assert.equal(tokenLines.length, 1, first.stdout());
    const token = /^Admin token: (\S+)$/.exec(tokenLines[0]!)?.[1];
    assert.ok(token && token.length >= 32, tokenLines[0]);
    assert.ok(!first.stderr().includes(token), 'the token is not logged elsewhere');
    assert.equal(first.stdout().split(token).length - 1, 1, 'the token appears once in the whole output');
    const answer = await graphql(first.url, token, '{ providers { id } }');
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body.data, { providers: [] });
    assert.equal(await stopTessera(first), 0);

    const second = await startTessera(dataDir, { TESSERA_LOG_LEVEL: 'info' });
    assert.ok(!second.stdout().includes('Admin token:'), 'no token on the second start');
    assert.equal((await graphql(second.url, token, '{ providers { id } }')).status, 200, 'the first token still works');
    assert.equal(await stopTessera(second), 0);
  });

  test('with TESSERA_BOOTSTRAP_TOKEN no token is printed and the given one works', async () => {
    const tessera = await startTessera(await tempDir(), { TESSERA_BOOTSTRAP_TOKEN: BOOTSTRAP, TESSERA_LOG_LEVEL: 'info' });
    assert.ok(!tessera.stdout().includes('Admin token:'));
    assert.ok(!tessera.stdout().includes(BOOTSTRAP) && !tessera.stderr().includes(BOOTSTRAP), 'the bootstrap token is never logged');
    assert.equal((await graphql(tessera.url, BOOTSTRAP, '{ providers { id } }')).status, 200);
    assert.equal(await stopTessera(tessera), 0);
  });
});

describe('start-up time', () => {
  /** CPU seconds the process has used (Linux /proc), a number the machine's other load does not inflate much. */
  function cpuMs(pid: number | undefined): number | null {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime, in 1/100 s
    } catch {
      return null;
    }
  }

  /** Starts on `dataDir` up to three times (the machine is shared: the best start says what the code costs). */
  async function bestStart(label: string, dataDir: () => Promise<string>, t: { diagnostic: (message: string) => void }): Promise<number> {
    const times: number[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      const tessera = await startTessera(await dataDir(), { TESSERA_BOOTSTRAP_TOKEN: BOOTSTRAP });
      const cpu = cpuMs(tessera.child.pid);
      assert.equal(await stopTessera(tessera), 0);
      times.push(tessera.readyMs);
      t.diagnostic(`${label}: ready in ${tessera.readyMs} ms wall${cpu === null ? '' : `, ${cpu} ms CPU`} (attempt ${attempt + 1})`);
      if (tessera.readyMs < 2000) break;
    }
    return Math.min(...times);
  }

  test('node dist/src/main.js reaches /readyz 200 in under 2 s, on an empty and on a populated data dir', async (t) => {
    const empty = await bestStart('empty data dir', tempDir, t);

    // Populate: providers with keys of every algorithm, users with app passwords.
    const dataDir = await tempDir();
    const seeded = await startTestServer({}, dataDir);
    for (let i = 0; i < 30; i++) {
      const alg = ['EdDSA', 'ES256', 'RS256'][i % 3]!;
      await seeded.gql(`mutation { createProvider(input: { name: "p${i}", slug: "p${i}", signingAlgorithm: ${alg} }) { id } }`);
    }
    for (let i = 0; i < 50; i++) {
      const user = await seeded.server.services.users.create({ username: `user${i}` });
      await seeded.server.services.appPasswords.create({ userId: user.id });
    }
    await seeded.stop();
    const populated = await bestStart('populated data dir (30 providers, 51 users)', async () => dataDir, t);

    const check = await startTessera(dataDir, { TESSERA_BOOTSTRAP_TOKEN: BOOTSTRAP });
    const { body } = await graphql(check.url, BOOTSTRAP, '{ providers { id } }');
    assert.equal((body.data as { providers: unknown[] }).providers.length, 30, 'the populated start served the data');
    assert.equal(await stopTessera(check), 0);

    assert.ok(empty < 2000, `empty: best ${empty} ms`);
    assert.ok(populated < 2000, `populated: best ${populated} ms`);
  });
});

describe('graceful shutdown', () => {
  test('SIGTERM: new connections are refused, the in-flight request completes, exit 0, the data is kept', async () => {
    const dataDir = await tempDir();
    const tessera = await startTessera(dataDir, { TESSERA_BOOTSTRAP_TOKEN: BOOTSTRAP });
    const port = Number(new URL(tessera.url).port);

    // Hold a createProvider (RS256: a key to generate) open: headers and half the body sent.
    const body = JSON.stringify({ query: 'mutation { createProvider(input: { name: "In flight", slug: "in-flight", signingAlgorithm: RS256 }) { id slug } }' });
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    let response = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (response += chunk));
    const closed = new Promise<void>((resolve) => socket.once('close', resolve));
    const half = Math.floor(body.length / 2);
    socket.write(`POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAuthorization: Bearer ${BOOTSTRAP}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, half)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));

    const signalledAt = performance.now();
    tessera.child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(tessera.child.exitCode, null, 'still running while a request is in flight');
    await assert.rejects(fetch(`${tessera.url}/healthz`), 'no new connections after SIGTERM');

    socket.write(body.slice(half));
    const { code } = await tessera.exited;
    const exitMs = Math.round(performance.now() - signalledAt);
    await closed;
    assert.equal(code, 0);
    assert.match(response, /^HTTP\/1\.1 200 /);
    assert.match(response, /"slug":"in-flight"/);
    assert.ok(exitMs < 5000, `exited ${exitMs} ms after SIGTERM (keep-alive must not hold it open)`);

    const restarted = await startTestServer({}, dataDir);
    try {
      const provider = await restarted.server.services.providers.getBySlug('in-flight');
      assert.ok(provider, 'the provider written by the in-flight request is there after a restart');
      assert.equal((await fetch(`${restarted.url}/application/o/in-flight/jwks/`)).status, 200);
    } finally {
      await restarted.stop();
    }
  });

  test('npm start: SIGTERM sent to npm reaches the server, which drains and exits 0, leaving nothing running', async () => {
    const port = await freePort();
    const npm = spawn('npm', ['start', '--silent'], {
      cwd: ROOT, env: cleanEnv({ PORT: String(port), HOST: '127.0.0.1', TESSERA_DATA_DIR: await tempDir(), TESSERA_LOG_LEVEL: 'warn' }), stdio: 'ignore',
    });
    const exited = new Promise<number | null>((resolve) => npm.on('exit', (code) => resolve(code)));
    const url = `http://127.0.0.1:${port}`;
    const started = performance.now();
    for (;;) {
      assert.ok(performance.now() - started < 15_000, 'npm start reached ready');
      try {
        if ((await fetch(`${url}/readyz`)).status === 200) break;
      } catch {
        // not yet
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // Process managers signal the process they started, npm; the server must get it too.
    npm.kill('SIGTERM');
    assert.equal(await exited, 0);
    await assert.rejects(fetch(`${url}/healthz`), 'the server is gone, not orphaned');
  });

  test('SIGINT on an idle server exits 0 promptly, keep-alive connections included', async () => {
    const tessera = await startTessera(await tempDir());
    // An idle keep-alive connection from an earlier request must not hold the process open.
    await (await fetch(`${tessera.url}/healthz`)).text();
    const start = performance.now();
    tessera.child.kill('SIGINT');
    const { code } = await tessera.exited;
    assert.equal(code, 0);
    assert.ok(performance.now() - start < 3000);
  });
});

describe('crash safety', () => {
  test('a kill -9 in the middle of a burst of writes loses nothing that was acknowledged', async () => {
    const dataDir = await tempDir();
    const tessera = await startTessera(dataDir, { TESSERA_BOOTSTRAP_TOKEN: BOOTSTRAP });
    const acknowledged: string[] = [];
    let killed = false;
    const writer = async (lane: number) => {
      for (let i = 0; !killed; i++) {
        const slug = `burst-${lane}-${i}`;
        try {
          const { status, body } = await graphql(tessera.url, BOOTSTRAP, `mutation { createProvider(input: { name: "${slug}", slug: "${slug}", signingAlgorithm: EdDSA }) { id } }`);
          if (status === 200 && !body.errors) acknowledged.push(slug);
        } catch {
          return; // the connection died with the process
        }
      }
    };
    const lanes = [0, 1, 2, 3].map(writer);
    while (acknowledged.length < 40) await new Promise((resolve) => setTimeout(resolve, 5));
    tessera.child.kill('SIGKILL');
    killed = true;
    const { signal } = await tessera.exited;
    assert.equal(signal, 'SIGKILL');
    await Promise.all(lanes);

    const restarted = await startTestServer({}, dataDir);
    try {
      const { services } = restarted.server;
      const missing: string[] = [];
      for (const slug of acknowledged) {
        const provider = await services.providers.getBySlug(slug);
        if (!provider) missing.push(slug);
        else await services.keys.activeKey(provider.id); // its key is there and decrypts
      }
      assert.deepEqual(missing, [], `acknowledged ${acknowledged.length}, lost ${missing.length}`);
    } finally {
      await restarted.stop();
    }
  });
});
