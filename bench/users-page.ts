/**
 * `npm run bench:users`: how the users connection holds up with many users. Seeds BENCH_USERS
 * (default 100,000) users straight into a fresh embedded store's datafile (the bulk path: one
 * file write instead of 100,000 appends), starts a real Tessera on it, and prints p50/p99 latency
 * over GraphQL of a first page, a deep page (after= a cursor near the end) and a search.
 *
 * A script, not a test: 127.0.0.1 only, a bounded number of sequential requests.
 */
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/http/logger.js';
import { startServer } from '../src/server.js';
import { toStored } from '../src/store/codec.js';
import { COLLECTION_SPECS } from '../src/store/specs.js';
import { encodeCursor } from '../src/admin/pagination.js';
import type { User } from '../src/domain/model.js';

const USERS = Number(process.env.BENCH_USERS ?? 100_000);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 40);
const TOKEN = 'bench-admin-token-0123456789abcdef';

/** NeDB's datafile format: one JSON document per line, dates as {"$$date": ms}. */
function nedbLine(doc: Record<string, unknown>): string {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(doc)) out[key] = value instanceof Date ? { $$date: value.getTime() } : value;
  return JSON.stringify(out);
}

async function seed(dataDir: string): Promise<User[]> {
  const start = Date.now() - USERS * 10;
  const users: User[] = [];
  const lines: string[] = [];
  for (let i = 0; i < USERS; i++) {
    const createdAt = new Date(start + i * 10);
    const user: User = {
      id: randomUUID(),
      username: `user-${String(i).padStart(6, '0')}`,
      name: `User Number ${i}`,
      email: `user${i}@example.com`,
      type: i % 10 === 0 ? 'SERVICE_ACCOUNT' : 'INTERNAL',
      isActive: true,
      isAdmin: false,
      attributes: { n: i },
      passwordHash: null,
      expiresAt: null,
      createdAt,
      updatedAt: createdAt,
    };
    users.push(user);
    lines.push(nedbLine(toStored(user, COLLECTION_SPECS.users)));
  }
  await writeFile(path.join(dataDir, 'users.db'), `${lines.join('\n')}\n`);
  return users;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function measure(url: string, label: string, query: string, variables: Record<string, unknown>): Promise<void> {
  const run = async () => {
    const response = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as { errors?: unknown; data?: { users: { edges: unknown[]; totalCount?: number } } };
    if (body.errors) throw new Error(`${label}: ${JSON.stringify(body.errors)}`);
    return body.data!.users;
  };
  const check = await run();
  for (let i = 0; i < 3; i++) await run();
  const times: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const t = performance.now();
    await run();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  console.log(
    `${label.padEnd(34)} p50 ${percentile(times, 50).toFixed(1).padStart(7)} ms   p99 ${percentile(times, 99).toFixed(1).padStart(7)} ms   ` +
      `(${check.edges.length} edges, totalCount ${check.totalCount ?? '-'}, ${REQUESTS} requests)`,
  );
}

const PAGE = `query ($first: Int, $after: String, $filter: UserFilter) {
  users(first: $first, after: $after, filter: $filter) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id username name email type createdAt } } } }`;

const PAGE_ONLY = `query ($first: Int) { users(first: $first) { pageInfo { hasNextPage endCursor } edges { cursor node { id username name email type createdAt } } } }`;

const dataDir = await mkdtemp(path.join(os.tmpdir(), 'tessera-bench-users-'));
try {
  let t = performance.now();
  const users = await seed(dataDir);
  console.log(`seeded ${USERS} users into ${dataDir} in ${(performance.now() - t).toFixed(0)} ms`);
  t = performance.now();
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', TESSERA_DATA_DIR: dataDir, TESSERA_BOOTSTRAP_TOKEN: TOKEN, TESSERA_LOG_LEVEL: 'silent' });
  const server = await startServer(config, createLogger(config.logLevel));
  console.log(`server up (store loaded and indexed) in ${(performance.now() - t).toFixed(0)} ms\n`);
  try {
    const deep = users[Math.floor(USERS * 0.9)]!;
    await measure(server.url, 'first page, no totalCount', PAGE_ONLY, { first: 50 });
    await measure(server.url, 'first page (first: 50)', PAGE, { first: 50 });
    await measure(server.url, 'deep page (first: 50, after=90%)', PAGE, { first: 50, after: encodeCursor(deep) });
    await measure(server.url, 'search "number 4242" (first: 50)', PAGE, { first: 50, filter: { search: 'number 4242' } });
    await measure(server.url, 'search "example.com" (all match)', PAGE, { first: 50, filter: { search: 'example.com' } });
    await measure(server.url, 'type SERVICE_ACCOUNT, deep page', PAGE, { first: 50, after: encodeCursor(deep), filter: { type: 'SERVICE_ACCOUNT' } });
  } finally {
    await server.stop();
  }
} finally {
  await rm(dataDir, { recursive: true, force: true });
}
