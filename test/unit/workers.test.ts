/**
 * TESSERA_WORKERS: on the embedded store one process runs and a warn line says so; with MongoDB
 * (when test/helpers/mongo.ts finds one) N workers share the port, the bootstrap runs once, a
 * worker that dies is replaced, and SIGTERM stops them all.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { freePort } from '../helpers/server.js';
import { findTestMongo, mongoUriWithDatabase, uniqueDatabaseName } from '../helpers/mongo.js';

const MAIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/main.js');
const ROOT = path.resolve(path.dirname(MAIN), '../..');

interface LogLine {
  level?: number;
  msg?: string;
  worker?: number;
  pid?: number;
}

interface Running {
  child: ChildProcess;
  url: string;
  lines: () => string[];
  logs: () => LogLine[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Waits until `predicate` holds for the output so far. */
  waitFor: (what: string, predicate: (logs: LogLine[], lines: string[]) => boolean, timeoutMs?: number) => Promise<void>;
}

async function startMain(env: Record<string, string>): Promise<Running> {
  const port = await freePort();
  const base: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('TESSERA_') && name !== 'PORT' && name !== 'HOST' && !name.startsWith('NODE_TEST')) base[name] = value;
  }
  const child = spawn(process.execPath, [MAIN], {
    cwd: ROOT,
    env: { ...base, PORT: String(port), HOST: '127.0.0.1', TESSERA_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    }),
  );
  const lines = () => out.split('\n').filter(Boolean);
  const logs = () =>
    lines().flatMap((line) => {
      try {
        return [JSON.parse(line) as LogLine];
      } catch {
        return [];
      }
    });
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    lines,
    logs,
    exited,
    async waitFor(what, predicate, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(logs(), lines())) {
        if (done) throw new Error(`exited before ${what}; output:\n${out}`);
        if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms; output:\n${out}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
  };
}

/** SIGTERM, and SIGKILL if it is still there after `graceMs`; resolves with how it ended. */
async function stop(running: Running, graceMs = 2_000) {
  running.child.kill('SIGTERM');
  const timer = setTimeout(() => running.child.kill('SIGKILL'), graceMs);
  const result = await running.exited;
  clearTimeout(timer);
  return result;
}

const readyLines = (logs: LogLine[]) => logs.filter((l) => l.msg === 'tessera ready');
const adminTokenLines = (lines: string[]) => lines.filter((l) => l.startsWith('Admin token:'));

describe('TESSERA_WORKERS on the embedded store', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  test('TESSERA_WORKERS=2 on the embedded store runs one process and says so in a warn line at start-up', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'tessera-workers-'));
    dirs.push(dataDir);
    const running = await startMain({ TESSERA_DATA_DIR: dataDir, TESSERA_WORKERS: '2' });
    try {
      await running.waitFor('"tessera ready"', (logs) => readyLines(logs).length > 0);
      const warnings = running.logs().filter((l) => l.level === 40 && /TESSERA_WORKERS=2/.test(l.msg ?? ''));
      assert.equal(warnings.length, 1, `one warn line naming TESSERA_WORKERS=2; output:\n${running.lines().join('\n')}`);
      assert.match(warnings[0]!.msg!, /embedded store/);
      assert.match(warnings[0]!.msg!, /one process/);
      // One process serving: it answers, and nothing forks workers or says it did.
      const health = await fetch(`${running.url}/healthz`);
      assert.equal(health.status, 200);
      await health.body?.cancel();
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(readyLines(running.logs()).length, 1);
      assert.ok(running.logs().every((l) => l.worker === undefined && !/workers/.test(l.msg ?? '')), running.lines().join('\n'));
      assert.equal(adminTokenLines(running.lines()).length, 1);
    } finally {
      await stop(running);
    }
  });

  test('TESSERA_WORKERS unset (1) gives no warning', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'tessera-workers-'));
    dirs.push(dataDir);
    const running = await startMain({ TESSERA_DATA_DIR: dataDir });
    try {
      await running.waitFor('"tessera ready"', (logs) => readyLines(logs).length > 0);
      assert.deepEqual(running.logs().filter((l) => /TESSERA_WORKERS/.test(l.msg ?? '')), []);
    } finally {
      await stop(running);
    }
  });
});

const mongo = await findTestMongo();

if (!mongo) {
  const reason = 'TESSERA_WORKERS with MongoDB skipped (no TESSERA_TEST_MONGODB_URI and no mongod on PATH)';
  console.log(reason);
  test('TESSERA_WORKERS=2 with MongoDB', { skip: reason }, () => {});
} else {
  describe(`TESSERA_WORKERS with MongoDB (${mongo.source})`, () => {
    after(() => mongo.stop());

    test('TESSERA_WORKERS=2 with MongoDB: two workers share the port, admin is made and its token printed once, a dead worker is replaced, SIGTERM stops all', async () => {
      const databaseUri = mongoUriWithDatabase(mongo.uri, uniqueDatabaseName('tessera_workers'));
      const running = await startMain({
        TESSERA_MONGODB_URI: databaseUri,
        TESSERA_SECRET_KEY: randomBytes(48).toString('base64url'),
        TESSERA_WORKERS: '2',
      });
      try {
        await running.waitFor('"tessera ready (cluster)"', (logs) => logs.some((l) => l.msg === 'tessera ready (cluster)'), 30_000);
        const ready = readyLines(running.logs());
        assert.deepEqual(ready.map((l) => l.worker).sort(), [1, 2]);
        assert.notEqual(ready[0]!.pid, ready[1]!.pid);
        const tokens = adminTokenLines(running.lines());
        assert.equal(tokens.length, 1, running.lines().join('\n'));
        const token = tokens[0]!.slice('Admin token:'.length).trim();

        // Any worker may answer; each must see the one admin the bootstrap made.
        for (let i = 0; i < 6; i++) {
          const response = await fetch(`${running.url}/graphql`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
            body: JSON.stringify({ query: '{ users(first: 10) { totalCount edges { node { username } } } }' }),
          });
          assert.equal(response.status, 200);
          const body = (await response.json()) as { data: { users: { totalCount: number; edges: { node: { username: string } }[] } } };
          assert.equal(body.data.users.totalCount, 1);
          assert.equal(body.data.users.edges[0]!.node.username, 'admin');
        }

        // A worker that dies is replaced (worker ids grow: the new one is 3).
        process.kill(ready.find((l) => l.worker === 2)!.pid!, 'SIGKILL');
        await running.waitFor('a replacement worker', (logs) => readyLines(logs).some((l) => l.worker === 3));
        const health = await fetch(`${running.url}/healthz`);
        assert.equal(health.status, 200);
        await health.body?.cancel();
        assert.equal(adminTokenLines(running.lines()).length, 1);
      } finally {
        const { code } = await stop(running, 25_000);
        const mongoose = (await import('mongoose')).default;
        const connection = await mongoose.createConnection(databaseUri, { serverSelectionTimeoutMS: 5000 }).asPromise();
        await connection.dropDatabase();
        await connection.close();
        assert.equal(code, 0, `SIGTERM stops the primary and its workers with exit 0; output:\n${running.lines().join('\n')}`);
      }
    });
  });
}
