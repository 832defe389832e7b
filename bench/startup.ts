/**
 * `npm run bench:startup`: the two numbers of "The state layer" that belong to the process itself,
 * measured on this machine.
 *
 * 1. Start-up: wall ms from spawning `node dist/src/main.js` (what `npm start` runs) to the first
 *    200 of `GET /readyz` (polled every 10 ms), on a fresh empty data dir and on a data dir holding
 *    STARTUP_USERS (default 100,000) users and STARTUP_EVENTS (default 100,000) audit events.
 *    The populated dir is seeded once, straight through the embedded store (insertMany in chunks),
 *    before any start; each empty start gets a new empty dir. STARTUP_RUNS (default 5) starts per
 *    dir, alternating empty / populated, each stopped by SIGTERM and waited for before the next.
 *    Prints min / median / max per dir against the target (< 1500 ms), and the size of tessera.db.
 * 2. Idle RSS: on the last populated start, the server's VmRSS (/proc/<pid>/status) 5 s and
 *    STARTUP_IDLE_SECONDS (default 60; 0 skips this part) after ready, with no requests in between,
 *    against the target (≤ 90 MB).
 *
 * Exits 1 (with the server's output) when a start fails. A script, not a test: 127.0.0.1 only.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { openEmbeddedStore } from '../src/store/sqlite/sqlite-store.js';
import { timeOrderedHex, timeOrderedUuid } from '../src/domain/time-ordered-id.js';
import type { AuditEvent } from '../src/domain/model.js';
import { fmt, freePort, median, rssMb, spawnServer, syntheticUser, table, type ChildServer } from './lib.js';

function count(name: string, fallback: number, min: number): number {
  const raw = process.env[name]?.trim();
  const value = raw ? Number(raw) : fallback;
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer ≥ ${min} (got ${JSON.stringify(raw)})`);
  return value;
}

const USERS = count('STARTUP_USERS', 100_000, 0);
const EVENTS = count('STARTUP_EVENTS', 100_000, 0);
const RUNS = count('STARTUP_RUNS', 5, 1);
const IDLE_SECONDS = count('STARTUP_IDLE_SECONDS', 60, 0);
const N = (n: number) => n.toLocaleString('en');
const TOKEN = 'bench-startup-token-0123456789abcdef';
const CHUNK = 10_000;
const READY_TARGET_MS = 1500;
const RSS_TARGET_MB = 90;

/** The `i`th event: mostly client_credentials tokens, some failed logins and admin changes, as the server records them. */
function syntheticEvent(i: number, createdAt: Date): AuditEvent {
  const at = createdAt.getTime();
  const base = { id: timeOrderedUuid(at), requestId: timeOrderedHex(at), createdAt };
  const clientAddress = `10.0.${(i >> 8) & 255}.${i & 255}`;
  if (i % 20 === 0) {
    return { ...base, action: 'LOGIN_FAILED', clientId: `client-${i % 50}`, username: `user-${String(i % Math.max(1, USERS)).padStart(6, '0')}`,
      context: { grantType: 'client_credentials', rule: 1, error: 'invalid_grant', reason: 'the password does not match', clientAddress } };
  }
  if (i % 100 === 1) {
    return { ...base, action: 'UPDATE', clientId: null, username: 'admin', context: { model: 'User', pk: `user-${i % 1000}`, fields: ['name'] } };
  }
  return { ...base, action: 'TOKEN_ISSUED', clientId: `client-${i % 50}`, username: `user-${String(i % Math.max(1, USERS)).padStart(6, '0')}`,
    context: { grantType: 'client_credentials', providerId: `provider-${i % 3}`, scope: 'openid profile', jti: timeOrderedHex(at),
      aud: `client-${i % 50}`, refreshToken: false, idToken: false, clientAddress } };
}

/** Users and events straight into the embedded store, CHUNK at a time (one transaction each), spaced 10 ms apart ending now. */
async function seed(dataDir: string): Promise<void> {
  const store = await openEmbeddedStore(dataDir);
  try {
    const now = Date.now();
    for (let from = 0; from < USERS; from += CHUNK) {
      const users = [];
      for (let i = from; i < Math.min(USERS, from + CHUNK); i++) users.push(syntheticUser(i, new Date(now - (USERS - i) * 10)));
      await store.users.insertMany(users);
    }
    for (let from = 0; from < EVENTS; from += CHUNK) {
      const events = [];
      for (let i = from; i < Math.min(EVENTS, from + CHUNK); i++) events.push(syntheticEvent(i, new Date(now - (EVENTS - i) * 10)));
      await store.events.insertMany(events);
    }
  } finally {
    await store.close();
  }
}

/** The parent's environment without anything Tessera reads, then the start's own. */
function serverEnv(port: number, dataDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('TESSERA_') && name !== 'PORT' && name !== 'HOST') env[name] = value;
  }
  return { ...env, PORT: String(port), HOST: '127.0.0.1', TESSERA_DATA_DIR: dataDir, TESSERA_BOOTSTRAP_TOKEN: TOKEN, TESSERA_LOG_LEVEL: 'warn' };
}

class StartFailure extends Error {}

function fail(server: ChildServer, why: string): never {
  throw new StartFailure(`${server.label}: ${why}; its output:\n${server.tail()}`);
}

/** Spawns the server and polls /readyz every 10 ms; resolves with the running server and the ms to its first 200. */
async function start(label: string, dataDir: string): Promise<{ server: ChildServer; readyMs: number }> {
  const port = await freePort();
  const started = performance.now();
  const server = spawnServer(label, ['dist/src/main.js'], serverEnv(port, dataDir));
  for (;;) {
    if (server.exited) fail(server, `exited (code ${server.exited.code}, signal ${server.exited.signal}) before /readyz answered 200`);
    try {
      const response = await fetch(`http://127.0.0.1:${port}/readyz`);
      await response.arrayBuffer();
      if (response.status === 200) return { server, readyMs: performance.now() - started };
    } catch {
      // not listening yet
    }
    if (performance.now() - started > 60_000) {
      await server.stop();
      fail(server, 'no 200 from /readyz within 60 s');
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function stop(server: ChildServer): Promise<void> {
  await server.stop();
  if (server.exited?.code !== 0) fail(server, `exit code ${server.exited?.code}, signal ${server.exited?.signal} after SIGTERM`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const dirs: string[] = [];
const tempDir = async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-bench-startup-'));
  dirs.push(dir);
  return dir;
};

try {
  const populated = await tempDir();
  let t = performance.now();
  await seed(populated);
  const dbMb = (await stat(path.join(populated, 'tessera.db'))).size / 1024 / 1024;
  console.log(`seeded ${N(USERS)} users and ${N(EVENTS)} events into ${populated} in ${(performance.now() - t).toFixed(0)} ms; tessera.db ${dbMb.toFixed(1)} MB\n`);

  const times = { empty: [] as number[], populated: [] as number[] };
  const idle: { afterMs: number; mb: number | null }[] = [];
  for (let run = 1; run <= RUNS; run++) {
    const empty = await start(`empty #${run}`, await tempDir());
    times.empty.push(empty.readyMs);
    await stop(empty.server);

    const full = await start(`populated #${run}`, populated);
    times.populated.push(full.readyMs);
    if (run === RUNS && IDLE_SECONDS > 0) {
      // No requests from here on: the polling above has stopped.
      t = performance.now();
      for (const seconds of [...new Set([Math.min(5, IDLE_SECONDS), IDLE_SECONDS])]) {
        await sleep(seconds * 1000 - (performance.now() - t));
        idle.push({ afterMs: performance.now() - t, mb: rssMb(full.server.pid) });
      }
    }
    await stop(full.server);
    process.stderr.write(`run ${run}/${RUNS}: empty ${fmt.ms(empty.readyMs)} ms, populated ${fmt.ms(full.readyMs)} ms\n`);
  }

  const row = (label: string, values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    return [label, fmt.ms(sorted[0]!), fmt.ms(median(sorted)), fmt.ms(sorted.at(-1)!), `< ${READY_TARGET_MS}`];
  };
  console.log(`node dist/src/main.js, spawn to the first 200 of /readyz (${RUNS} starts each, ms):\n`);
  console.log(table(['data dir', 'min', 'median', 'max', 'target'], [
    row('empty (a new dir each start)', times.empty),
    row(`${N(USERS)} users, ${N(EVENTS)} events`, times.populated),
  ], new Set([1, 2, 3])));
  if (idle.length > 0) {
    console.log(`\nidle RSS of the last populated start, no requests after ready (target ≤ ${RSS_TARGET_MB} MB):\n`);
    console.log(table(['after ready', 'VmRSS MB'], idle.map(({ afterMs, mb }) => [`${(afterMs / 1000).toFixed(0)} s`, fmt.mb(mb)]), new Set([1])));
  }
  console.log(`\ntessera.db of ${N(USERS)} users and ${N(EVENTS)} events: ${dbMb.toFixed(1)} MB`);
} catch (error) {
  if (!(error instanceof StartFailure)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exitCode = 1;
} finally {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
}
