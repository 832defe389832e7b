/**
 * What `npm run bench` and `npm run bench:compare` share: options from the environment, the
 * servers as child processes, the scenarios' shape, one autocannon measurement, and the table.
 *
 * These are scripts, not tests: they drive real servers on 127.0.0.1 only, for a bounded time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import type { User } from '../src/domain/model.js';

/** The repository root (this file runs as dist/bench/lib.js). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

// ---------------------------------------------------------------------------------------------
// Options

export interface BenchOptions {
  /** Seconds of each measured run (BENCH_SECONDS, default 10). */
  seconds: number;
  /** Seconds of the warm-up run before the measured ones (BENCH_WARMUP_SECONDS, default a third of `seconds`, at least 1). */
  warmupSeconds: number;
  /** Concurrent connections (BENCH_CONNECTIONS, default 10). */
  connections: number;
  /** A/B rounds per scenario in bench:compare (BENCH_ROUNDS, default 3). */
  rounds: number;
  /** Only these scenario keys (BENCH_ONLY, comma separated), or all. */
  only: Set<string> | null;
  /** Users seeded for the GraphQL page (BENCH_USERS, default 1000). */
  users: number;
  /** Extra node flags for the servers under test (BENCH_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"). */
  serverNodeArgs: string[];
}

function positive(name: string, fallback: number, { integer = true, min = 1 } = {}): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new Error(`${name} must be ${integer ? 'an integer' : 'a number'} ≥ ${min} (got ${JSON.stringify(raw)})`);
  }
  return value;
}

export function benchOptions(): BenchOptions {
  const seconds = positive('BENCH_SECONDS', 10, { integer: false, min: 0.5 });
  const only = process.env.BENCH_ONLY?.trim();
  return {
    seconds,
    warmupSeconds: positive('BENCH_WARMUP_SECONDS', Math.max(1, Math.round(seconds / 3)), { integer: false, min: 0 }),
    connections: positive('BENCH_CONNECTIONS', 10),
    rounds: positive('BENCH_ROUNDS', 3),
    only: only ? new Set(only.split(',').map((s) => s.trim()).filter(Boolean)) : null,
    users: positive('BENCH_USERS', 1000, { min: 0 }),
    serverNodeArgs: (process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean),
  };
}

// ---------------------------------------------------------------------------------------------
// Child servers

export interface ChildServer {
  label: string;
  pid: number;
  process: ChildProcess;
  /** Set once the process has exited, whoever asked it to. */
  exited: { code: number | null; signal: NodeJS.Signals | null } | null;
  /** True when it exited without stop() asking it to. */
  diedUnexpectedly(): boolean;
  /** The last lines it printed (stdout and stderr), for failure messages. */
  tail(): string;
  /** Resolves with the first stdout line starting with `prefix`; rejects if the process exits first. */
  waitForLine(prefix: string, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export function spawnServer(label: string, args: string[], env: NodeJS.ProcessEnv, nodeArgs: string[] = []): ChildServer {
  const child = spawn(process.execPath, [...nodeArgs, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`${label}: could not start ${args.join(' ')}`);
  const lines: string[] = [];
  const waiters: { prefix: string; resolve: (line: string) => void }[] = [];
  let stopping = false;
  const state: ChildServer = {
    label,
    pid: child.pid,
    process: child,
    exited: null,
    diedUnexpectedly: () => state.exited !== null && !stopping,
    tail: () => lines.slice(-20).join('\n'),
    waitForLine(prefix, timeoutMs = 30_000) {
      const seen = lines.find((line) => line.startsWith(prefix));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${label}: no "${prefix}" line within ${timeoutMs} ms; last output:\n${state.tail()}`)), timeoutMs);
        const onExit = () => {
          clearTimeout(timer);
          reject(new Error(`${label} exited (code ${state.exited?.code}, signal ${state.exited?.signal}) before printing "${prefix}"; last output:\n${state.tail()}`));
        };
        child.once('exit', onExit);
        waiters.push({
          prefix,
          resolve: (line) => {
            clearTimeout(timer);
            child.off('exit', onExit);
            resolve(line);
          },
        });
      });
    },
    stop(graceMs = 10_000) {
      stopping = true;
      if (state.exited) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        child.once('exit', () => {
          clearTimeout(killer);
          resolve();
        });
        child.kill('SIGTERM');
      });
    },
  };
  const collect = (stream: NodeJS.ReadableStream) => {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      partial += chunk;
      let newline: number;
      while ((newline = partial.indexOf('\n')) !== -1) {
        const line = partial.slice(0, newline);
        partial = partial.slice(newline + 1);
        lines.push(line);
        if (lines.length > 200) lines.splice(0, lines.length - 200);
        if (process.env.BENCH_VERBOSE) process.stderr.write(`[${label}] ${line}\n`);
        for (let i = waiters.length - 1; i >= 0; i--) {
          if (line.startsWith(waiters[i]!.prefix)) waiters.splice(i, 1)[0]!.resolve(line);
        }
      }
    });
  };
  collect(child.stdout!);
  collect(child.stderr!);
  child.on('exit', (code, signal) => {
    state.exited = { code, signal };
    if (!stopping) process.stderr.write(`${label} (pid ${child.pid}) exited unexpectedly: code ${code}, signal ${signal}\n`);
  });
  return state;
}

/** The `i`th of the users the bench scripts seed straight into a store (one in ten a service account). */
export function syntheticUser(i: number, createdAt: Date): User {
  return {
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
}

/** A port free right now on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Polls `url` until it answers 200 (or the child dies, or time runs out). */
export async function waitForHttp(url: string, child: ChildServer, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exited) throw new Error(`${child.label} exited (code ${child.exited.code}) while starting; last output:\n${child.tail()}`);
    try {
      const response = await fetch(url);
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${child.label} did not answer ${url} within ${timeoutMs} ms; last output:\n${child.tail()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Resident set size of a process in MB, from /proc (Linux); null elsewhere or once it has gone. */
export function rssMb(pid: number): number | null {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

export const SCENARIOS = [
  { key: 'cc-apppw-rs256', title: 'client_credentials, app password (rule 1), RS256' },
  { key: 'cc-secret-rs256', title: 'client_credentials, client secret (rule 3), RS256' },
  { key: 'cc-apppw-es256', title: 'client_credentials, app password (rule 1), ES256' },
  { key: 'cc-secret-es256', title: 'client_credentials, client secret (rule 3), ES256' },
  { key: 'cc-dpop-es256', title: 'client_credentials, client secret, DPoP (ES256 proofs), ES256' },
  { key: 'device-authorization', title: 'device authorization' },
  { key: 'device-poll', title: 'device poll, pending (round-robin codes)' },
  { key: 'introspection', title: 'introspection of a fresh access token' },
  { key: 'graphql-users', title: 'GraphQL users page (first: 20)' },
  { key: 'token-exchange-rs256', title: 'token exchange, federated JWT (ES256) for an RS256 token' },
] as const;
export type ScenarioKey = (typeof SCENARIOS)[number]['key'];

/** What earlier scenarios learnt that later ones size themselves by. */
export interface RunHints {
  /** Requests/s of the last device-authorization run against this target, if any. */
  deviceAuthorizationRps?: number;
}

export interface Scenario {
  key: ScenarioKey;
  /** How this target serves the scenario, when it differs from the title (shown under the table). */
  note?: string;
  method: 'POST' | 'GET';
  path: string;
  headers: Record<string, string>;
  body?: string;
  /** Bodies sent round-robin across all connections (each request takes the next). */
  bodies?: string[];
  /** The answer that counts as the scenario's own: a status and, for error answers, the `error` code. */
  expect: { status: number; error?: string; tolerated?: string[] };
  /** Checks one answer before the load starts (so a broken endpoint fails with its own words); returns a problem or null. */
  check?: (status: number, body: string) => string | null;
  /** Runs before each warm-up (fresh tokens, device codes to poll). */
  prepare?: (hints: RunHints) => Promise<void>;
  /** DPoP proofs, one per request (header `DPoP`), signed ahead of every run (bench/dpop.ts). */
  proofs?: ProofPool;
}

export interface ProofPool {
  /** Signs enough fresh proofs for a run of `seconds`. */
  refill(seconds: number): Promise<void>;
  /** The next unused proof. */
  next(): string;
}

export interface Measurement {
  rps: number;
  p50: number;
  p99: number;
  total: number;
  non2xx: number;
  /** Answers other than the expected one (and the tolerated ones), plus connection errors and timeouts. */
  unexpected: number;
  errors: number;
  /** Per answer ("400 authorization_pending", "200"…) where the scenario classifies bodies. */
  mix: Record<string, number>;
}

const ERROR_CODE = /"error"\s*:\s*"([^"]+)"/;

export function describeAnswer(status: number, body: string): string {
  const code = ERROR_CODE.exec(body)?.[1];
  return code ? `${status} ${code}` : String(status);
}

/** One request the way the scenario sends it, answered as text: the start-of-run check. */
export async function probe(url: string, scenario: Scenario): Promise<string | null> {
  // The last of rotated bodies: the load starts with the first, which must not have just been sent.
  const body = scenario.bodies?.at(-1) ?? scenario.body;
  const init: RequestInit = { method: scenario.method, headers: scenario.proofs ? { ...scenario.headers, dpop: scenario.proofs.next() } : scenario.headers };
  if (body !== undefined) init.body = body;
  let status: number;
  let text: string;
  try {
    const response = await fetch(url + scenario.path, init);
    status = response.status;
    text = await response.text();
  } catch (error) {
    return `${scenario.method} ${scenario.path} failed: ${(error as Error).message}`;
  }
  const expected = scenario.expect.error ? `${scenario.expect.status} ${scenario.expect.error}` : String(scenario.expect.status);
  const answer = describeAnswer(status, text);
  const tolerated = (scenario.expect.tolerated ?? []).map((code) => `${scenario.expect.status} ${code}`);
  if (answer !== expected && !tolerated.includes(answer) && !(scenario.expect.error === undefined && status === scenario.expect.status)) {
    return `${scenario.method} ${scenario.path} answered ${status} ${text.slice(0, 300)} (expected ${expected})`;
  }
  return scenario.check?.(status, text) ?? null;
}

const rotation = new WeakMap<string[], { next: number }>();

/** One autocannon run of `seconds` (or of `amount` requests), summarised. */
export async function load(
  url: string,
  scenario: Scenario,
  run: { seconds?: number; amount?: number; connections: number; onBody?: (status: number, body: string) => void },
): Promise<Measurement> {
  const classify = scenario.expect.error !== undefined;
  const mix: Record<string, number> = {};
  const onBody = run.onBody;
  const request: autocannon.Request = { method: scenario.method, path: scenario.path, headers: scenario.headers };
  if (scenario.body !== undefined) request.body = scenario.body;
  const bodies = scenario.bodies;
  if (bodies && bodies.length > 0) {
    // One cursor for all connections, kept across runs: each body is sent once per len(bodies) requests.
    let cursor = rotation.get(bodies);
    if (!cursor) rotation.set(bodies, (cursor = { next: 0 }));
    const state = cursor;
    request.setupRequest = (req) => ({ ...req, body: bodies[state.next++ % bodies.length]! });
  }
  const proofs = scenario.proofs;
  if (proofs) request.setupRequest = (req) => ({ ...req, headers: { ...req.headers, dpop: proofs.next() } });
  if (classify || onBody) {
    request.onResponse = (status, body) => {
      if (classify) {
        const answer = describeAnswer(status, body);
        mix[answer] = (mix[answer] ?? 0) + 1;
      }
      onBody?.(status, body);
    };
  }
  const options: autocannon.Options = { url, connections: run.connections, requests: [request], timeout: 10 };
  if (run.amount !== undefined) options.amount = run.amount;
  else options.duration = run.seconds ?? 10;
  const result = await autocannon(options);

  const total = result.requests.total;
  let expected: number;
  if (classify) {
    const names = [scenario.expect.error!, ...(scenario.expect.tolerated ?? [])].map((code) => `${scenario.expect.status} ${code}`);
    expected = names.reduce((sum, name) => sum + (mix[name] ?? 0), 0);
  } else {
    expected = result.statusCodeStats?.[String(scenario.expect.status) as `${number}`]?.count ?? 0;
    for (const [status, stat] of Object.entries(result.statusCodeStats ?? {})) mix[status] = stat.count ?? 0;
  }
  return {
    rps: result.duration > 0 ? total / result.duration : 0,
    p50: result.latency.p50,
    p99: result.latency.p99,
    total,
    non2xx: result.non2xx,
    unexpected: total - expected + result.errors,
    errors: result.errors,
    mix,
  };
}

// ---------------------------------------------------------------------------------------------
// Output

export function table(header: string[], rows: string[][], rightAligned: Set<number> = new Set()): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((cell, i) => (rightAligned.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export const fmt = {
  rps: (value: number) => value.toFixed(0),
  ms: (value: number) => (value < 10 ? value.toFixed(2) : value.toFixed(1)),
  mb: (value: number | null) => (value === null ? '?' : value.toFixed(0)),
};

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** "400 authorization_pending 98%, 400 slow_down 2%": the answers of a classified run. */
export function mixText(mix: Record<string, number>): string {
  const total = Object.values(mix).reduce((a, b) => a + b, 0);
  if (total === 0) return '';
  return Object.entries(mix)
    .sort((a, b) => b[1] - a[1])
    .map(([answer, count]) => `${answer} ${((count / total) * 100).toFixed(count === total ? 0 : 1)}%`)
    .join(', ');
}

export function progress(message: string): void {
  process.stderr.write(`${message}\n`);
}

// ---------------------------------------------------------------------------------------------
// Targets

/** A server under test, started and seeded, that can say how it serves each scenario. */
export interface Target {
  name: string;
  url: string;
  child: ChildServer;
  /** How this target serves the scenario, or null when it has no equivalent. */
  scenario(key: ScenarioKey): Scenario | null;
  stop(): Promise<void>;
}

/**
 * Device codes to poll: `count` device authorizations made up front (an unmeasured autocannon run),
 * so the pending-poll scenario can cycle through them and poll each code no faster than its interval.
 */
export async function collectDeviceCodes(url: string, authorization: Scenario, count: number, connections: number): Promise<string[]> {
  const codes: string[] = [];
  const pattern = /"device_code"\s*:\s*"([^"]+)"/;
  await load(url, authorization, {
    amount: count,
    connections,
    onBody: (status, body) => {
      const code = status === 200 ? pattern.exec(body)?.[1] : undefined;
      if (code) codes.push(code);
    },
  });
  if (codes.length < count * 0.99) throw new Error(`device authorization made only ${codes.length} of ${count} device codes`);
  return codes;
}

/** How many codes the poll scenario needs: its requests/s (guessed from device authorization's) × the interval, with room to spare. */
export function deviceCodesNeeded(hints: RunHints, intervalSeconds: number): number {
  const rate = hints.deviceAuthorizationRps ?? 3000;
  return Math.min(60_000, Math.max(1000, Math.ceil(rate * intervalSeconds * 3)));
}

export function form(params: Record<string, string>): string {
  return new URLSearchParams(params).toString();
}

export function basicAuth(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

export const FORM = 'application/x-www-form-urlencoded';

/** The scenario could not be measured on this target; the message says why in the server's words. */
export class ScenarioFailure extends Error {}

/**
 * Prepares (on the first round), checks one answer, warms up, then measures one scenario against
 * one target. Throws ScenarioFailure when the endpoint does not answer as the scenario expects, and
 * Error when the server died.
 */
export async function runScenario(target: Target, scenario: Scenario, options: BenchOptions, hints: RunHints, firstRound: boolean): Promise<Measurement> {
  if (firstRound) {
    try {
      await scenario.prepare?.(hints);
    } catch (error) {
      throw new ScenarioFailure((error as Error).message);
    }
    await scenario.proofs?.refill(options.warmupSeconds);
    const problem = await probe(target.url, scenario);
    if (problem) throw new ScenarioFailure(problem);
    if (options.warmupSeconds > 0) await load(target.url, scenario, { seconds: options.warmupSeconds, connections: options.connections });
  }
  await scenario.proofs?.refill(options.seconds);
  const measured = await load(target.url, scenario, { seconds: options.seconds, connections: options.connections });
  if (target.child.exited) {
    throw new Error(`${target.name} (pid ${target.child.pid}) died during "${scenario.key}": code ${target.child.exited.code}, signal ${target.child.exited.signal}; last output:\n${target.child.tail()}`);
  }
  if (scenario.key === 'device-authorization') hints.deviceAuthorizationRps = measured.rps;
  return measured;
}

/** More than 1% of answers not the scenario's own: the number is not worth reading. */
export function tooManyUnexpected(m: Measurement): boolean {
  return m.total === 0 || m.unexpected > m.total * 0.01;
}

export function selectedScenarios(options: BenchOptions): ScenarioKey[] {
  const keys = SCENARIOS.map((s) => s.key);
  if (!options.only) return keys;
  const unknown = [...options.only].filter((k) => !keys.includes(k as ScenarioKey));
  if (unknown.length > 0) throw new Error(`BENCH_ONLY: unknown scenario ${unknown.join(', ')} (known: ${keys.join(', ')})`);
  return keys.filter((k) => options.only!.has(k));
}

export function titleOf(key: ScenarioKey): string {
  return SCENARIOS.find((s) => s.key === key)!.title;
}
