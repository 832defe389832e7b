/**
 * `npm run bench:users`: how the users connection holds up with many users. Seeds BENCH_USERS
 * (default 100,000) users straight into a fresh embedded store (one insertMany: one SQLite
 * transaction), starts a real Tessera on it, and prints p50/p99 latency
 * over GraphQL of a first page, a deep page (after= a cursor near the end) and a search.
 *
 * BENCH_REQUESTS (default 200) sequential requests per line after 20 unmeasured ones, but no more
 * than BENCH_LINE_MS (default 8,000 ms) of them (at least 20): p99 of fewer than 100 is the slowest.
 * One line asks for totalCount right after a write each time (the write not measured): a count
 * that no cache of an earlier answer can serve.
 *
 * The last line is the page `npm run bench` asks for (first: 20 with totalCount) at BENCH_CONNECTIONS
 * (default 10) connections for BENCH_SECONDS (default 5, after 2 s of warm-up): autocannon runs
 * as a child process, so its work does not share this process's event loop with the server.
 *
 * BENCH_LINES='first page;search' (substrings of the line labels, ';' between) runs only those lines. BENCH_CPU_PROFILE=
 * <file.cpuprofile> profiles the measured lines only (not seeding and loading; read it with
 * `node dist/bench/profile-top.js <file>`); the server runs in this process.
 *
 * A script, not a test: 127.0.0.1 only, a bounded number of sequential requests.
 */
import 'reflect-metadata';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Session } from 'node:inspector/promises';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/http/logger.js';
import { startServer } from '../src/server.js';
import { openEmbeddedStore } from '../src/store/sqlite/sqlite-store.js';
import { encodeCursor } from '../src/admin/pagination.js';
import type { User } from '../src/domain/model.js';
import { syntheticUser } from './lib.js';

const USERS = Number(process.env.BENCH_USERS ?? 100_000);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 200);
const LINE_MS = Number(process.env.BENCH_LINE_MS ?? 8_000);
const LINES = process.env.BENCH_LINES?.split(';').map((line) => line.trim().toLowerCase()).filter(Boolean) ?? [];
const PROFILE = process.env.BENCH_CPU_PROFILE;
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const TOKEN = 'bench-admin-token-0123456789abcdef';

async function seed(dataDir: string): Promise<User[]> {
  const start = Date.now() - USERS * 10;
  const users: User[] = [];
  for (let i = 0; i < USERS; i++) users.push(syntheticUser(i, new Date(start + i * 10)));
  const store = await openEmbeddedStore(dataDir);
  await store.users.insertMany(users);
  await store.close();
  return users;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function graphql<T>(url: string, label: string, query: string, variables: Record<string, unknown>): Promise<T> {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { errors?: unknown; data?: T };
  if (body.errors) throw new Error(`${label}: ${JSON.stringify(body.errors)}`);
  return body.data!;
}

type UsersPage = { users: { edges: unknown[]; totalCount?: number } };

/** `before` runs ahead of each request, unmeasured. */
async function measure(url: string, label: string, query: string, variables: Record<string, unknown>, before?: () => Promise<unknown>): Promise<void> {
  if (LINES.length > 0 && !LINES.some((line) => label.toLowerCase().includes(line))) return;
  const run = async () => (await graphql<UsersPage>(url, label, query, variables)).users;
  const check = await run();
  // Warm-up (JIT tiers, the collections after loading): unmeasured.
  for (let i = 0; i < 20; i++) await run();
  const times: number[] = [];
  const started = performance.now();
  const cpu = process.cpuUsage();
  while (times.length < REQUESTS && (times.length < 20 || performance.now() - started < LINE_MS)) {
    await before?.();
    const t = performance.now();
    await run();
    times.push(performance.now() - t);
  }
  const used = process.cpuUsage(cpu);
  times.sort((a, b) => a - b);
  // CPU per request of this whole process (server and client; the writes of `before` included): steadier than latency on a busy machine.
  const cpuMs = (used.user + used.system) / 1000 / times.length;
  console.log(
    `${label.padEnd(40)} p50 ${percentile(times, 50).toFixed(1).padStart(7)} ms   p99 ${percentile(times, 99).toFixed(1).padStart(7)} ms   ` +
      `cpu ${cpuMs.toFixed(1).padStart(6)} ms/req   (${check.edges.length} edges, totalCount ${check.totalCount ?? '-'}, ${times.length} requests)`,
  );
}

interface AutocannonResult { latency: { p50: number; p99: number }; requests: { average: number }; non2xx: number; errors: number }

/** One autocannon run against /graphql (its CLI in a child process), summarised by autocannon's --json. */
function autocannon(url: string, body: string, seconds: number): Promise<AutocannonResult> {
  const cli = createRequire(import.meta.url).resolve('autocannon');
  const child = spawn(process.execPath, [
    cli, '-c', String(CONNECTIONS), '-d', String(seconds), '-m', 'POST', '-H', 'content-type=application/json',
    '-H', `authorization=Bearer ${TOKEN}`, '-b', body, '-j', `${url}/graphql`,
  ], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`autocannon exited with ${code}`));
      else resolve(JSON.parse(out) as AutocannonResult);
    });
  });
}

async function measureConcurrent(url: string, label: string, query: string, variables: Record<string, unknown>): Promise<void> {
  if (LINES.length > 0 && !LINES.some((line) => label.toLowerCase().includes(line))) return;
  const check = (await graphql<UsersPage>(url, label, query, variables)).users;
  const body = JSON.stringify({ query, variables });
  await autocannon(url, body, 2);
  const cpu = process.cpuUsage();
  const result = await autocannon(url, body, SECONDS);
  const used = process.cpuUsage(cpu);
  const requests = Math.round(result.requests.average * SECONDS);
  console.log(
    `${label.padEnd(40)} p50 ${result.latency.p50.toFixed(1).padStart(7)} ms   p99 ${result.latency.p99.toFixed(1).padStart(7)} ms   ` +
      `cpu ${((used.user + used.system) / 1000 / Math.max(1, requests)).toFixed(1).padStart(6)} ms/req   ` +
      `(${result.requests.average.toFixed(0)} requests/s, ${result.non2xx + result.errors} non-2xx/errors, ${check.edges.length} edges, totalCount ${check.totalCount ?? '-'})`,
  );
}

/** The page of `npm run bench` (bench/tessera.ts, graphql-users). */
const RUN_PAGE = '{ users(first: 20) { totalCount edges { cursor node { id username name email type isActive isAdmin createdAt } } pageInfo { hasNextPage endCursor } } }';

const PAGE = `query ($first: Int, $after: String, $filter: UserFilter) {
  users(first: $first, after: $after, filter: $filter) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id username name email type createdAt } } } }`;

const PAGE_ONLY = `query ($first: Int, $after: String) {
  users(first: $first, after: $after) { pageInfo { hasNextPage endCursor } edges { cursor node { id username name email type createdAt } } } }`;

const WRITE = `mutation ($id: ID!, $name: String) { updateUser(id: $id, input: { name: $name }) { id } }`;

const dataDir = await mkdtemp(path.join(os.tmpdir(), 'tessera-bench-users-'));
try {
  let t = performance.now();
  const users = await seed(dataDir);
  console.log(`seeded ${USERS} users into ${dataDir} in ${(performance.now() - t).toFixed(0)} ms`);
  t = performance.now();
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', TESSERA_DATA_DIR: dataDir, TESSERA_BOOTSTRAP_TOKEN: TOKEN, TESSERA_LOG_LEVEL: 'silent' });
  const server = await startServer(config, createLogger(config.logLevel));
  console.log(`server up (store loaded and indexed) in ${(performance.now() - t).toFixed(0)} ms\n`);
  const profiler = PROFILE ? new Session() : null;
  if (profiler) {
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.start');
  }
  try {
    const deep = users[Math.floor(USERS * 0.9)]!;
    await measure(server.url, 'first page, no totalCount', PAGE_ONLY, { first: 50 });
    await measure(server.url, 'first page (first: 50)', PAGE, { first: 50 });
    await measure(server.url, 'deep page, no totalCount', PAGE_ONLY, { first: 50, after: encodeCursor(deep) });
    await measure(server.url, 'deep page (first: 50, after=90%)', PAGE, { first: 50, after: encodeCursor(deep) });
    let writes = 0;
    const write = () => graphql(server.url, 'updateUser', WRITE, { id: users[7]!.id, name: `Renamed ${writes++}` });
    await measure(server.url, 'first page, totalCount after a write', PAGE, { first: 50 }, write);
    await measure(server.url, 'search "number 4242" (first: 50)', PAGE, { first: 50, filter: { search: 'number 4242' } });
    await measure(server.url, 'search "example.com" (all match)', PAGE, { first: 50, filter: { search: 'example.com' } });
    await measure(server.url, 'type SERVICE_ACCOUNT, deep page', PAGE, { first: 50, after: encodeCursor(deep), filter: { type: 'SERVICE_ACCOUNT' } });
    await measureConcurrent(server.url, `bench's page (first: 20), ${CONNECTIONS} connections`, RUN_PAGE, {});
  } finally {
    if (profiler) {
      const { profile } = await profiler.post('Profiler.stop');
      await writeFile(PROFILE!, JSON.stringify(profile));
      profiler.disconnect();
      console.log(`\nCPU profile of the measured lines: ${PROFILE}`);
    }
    await server.stop();
  }
} finally {
  await rm(dataDir, { recursive: true, force: true });
}
