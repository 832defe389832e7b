/**
 * `npm run bench:compare`: Tessera against node-oidc-provider 9 (devDependency `oidc-provider`),
 * in one invocation, side by side: per scenario, A/B rounds (Tessera, peer, Tessera, peer…), each a
 * measured autocannon run (after one warm-up per target and scenario); medians of the rounds; the
 * ratio Tessera/peer of requests/s. Both servers run as child processes on 127.0.0.1 at the same
 * time (only one is driven at a time), so a noisy machine hits both alike.
 *
 * What differs between the two, so the ratio is read for what it is:
 * - Storage. Tessera persists what the contract needs to its embedded store on disk (device codes
 *   and their poll state, issued tokens' state for introspection and revocation) and writes an
 *   audit event per token request (LOGIN / LOGIN_FAILED). The peer keeps everything in its
 *   default in-memory adapter (a process-local LRU) and writes no audit trail.
 * - client_credentials. Tessera's app-password scenarios (rule 1: username + password params) check
 *   an app password of a user and issue the token for that user; the peer has no app passwords and
 *   no password grant, so those rows compare against its plain client_credentials with the client
 *   secret. Tessera's rule-3 tokens are for a generated service account (created on first use).
 *   The peer issues JWT access tokens through resourceIndicators (a default resource per client
 *   whose resource server says accessTokenFormat 'jwt'), signed at the same algorithm (RS256 /
 *   ES256). Claims differ slightly: the peer's tokens carry no scope when none was asked for.
 * - Introspection. Tessera introspects its JWT access token: the signature is verified the first
 *   time and remembered by the token's SHA-256 until exp (src/domain/tokens.ts), so the rounds,
 *   which introspect one token, measure the repeat; the denylist is read from the store on every
 *   request, the user through a 2 s cache. The peer refuses to introspect JWT access tokens, so it is given an
 *   opaque client_credentials token (no resource indicator), looked up in memory.
 * - Device polls. Both are polled round-robin over codes made up front so each code is polled no
 *   faster than once a second (Tessera's provider has pollIntervalSeconds 1); Tessera records each
 *   poll's time to decide slow_down atomically across nodes, the peer never answers slow_down.
 *   The answer mix is printed per target. The peer's default in-memory adapter is an LRU of about
 *   1,000 entries, so it cycles through 300 codes (more would be evicted and answer invalid_grant).
 * - The GraphQL users page has no counterpart in the peer (Tessera only).
 * - Runtime warnings: oidc-provider 9 prefers Node 22 and says so on start; it runs on Node 20.
 *
 * Environment: as `npm run bench` (BENCH_SECONDS, BENCH_WARMUP_SECONDS, BENCH_CONNECTIONS,
 * BENCH_USERS, BENCH_ONLY, BENCH_NODE_ARGS, BENCH_VERBOSE) plus BENCH_ROUNDS (A/B rounds per
 * scenario, default 3). Exit status 1 when a server fails or a scenario cannot be measured.
 */
import {
  ScenarioFailure,
  benchOptions,
  fmt,
  median,
  mixText,
  progress,
  rssMb,
  runScenario,
  selectedScenarios,
  table,
  titleOf,
  tooManyUnexpected,
  type Measurement,
  type RunHints,
  type ScenarioKey,
  type Target,
} from './lib.js';
import { startPeer } from './peer.js';
import { startTessera } from './tessera.js';

/** Issue 7's targets: requests/s ratio at least this, and p99 no higher than the peer's. */
const RATIO_TARGET: Partial<Record<ScenarioKey, number>> = {
  'cc-apppw-rs256': 1.0,
  'cc-secret-rs256': 1.0,
  'cc-apppw-es256': 1.2,
  'cc-secret-es256': 1.2,
  // Issue 14: DPoP on both sides.
  'cc-dpop-es256': 1.3,
  'device-authorization': 1.2,
  'device-poll': 1.2,
  introspection: 1.2,
  // Issue 13: an exchange (verify one JWT, sign one) against the peer's client_credentials.
  'token-exchange-rs256': 1.2,
};

/** Where Tessera's memory is, from its own /metrics: the V8 heap (young and old generation), used and reserved. */
async function heapOf(url: string): Promise<string> {
  try {
    const text = await (await fetch(`${url}/metrics`)).text();
    const metric = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? NaN) / 1048576;
    const total = metric(/^tessera_nodejs_heap_size_total_bytes (\S+)/m);
    const used = metric(/^tessera_nodejs_heap_size_used_bytes (\S+)/m);
    const young = metric(/^tessera_nodejs_heap_space_size_total_bytes\{space="new"\} (\S+)/m);
    return Number.isNaN(total) ? '' : ` (V8 heap ${fmt.mb(total)} MB reserved, ${fmt.mb(used)} used, young generation ${fmt.mb(young)})`;
  } catch {
    return '';
  }
}

interface Side {
  runs: Measurement[];
  failure: string | null;
}

function summary(side: Side) {
  if (side.failure || side.runs.length === 0) return null;
  return {
    rps: median(side.runs.map((m) => m.rps)),
    p50: median(side.runs.map((m) => m.p50)),
    p99: median(side.runs.map((m) => m.p99)),
    unexpected: side.runs.reduce((sum, m) => sum + m.unexpected, 0),
    bad: side.runs.some(tooManyUnexpected),
    mix: side.runs.reduce<Record<string, number>>((all, m) => {
      for (const [answer, count] of Object.entries(m.mix)) all[answer] = (all[answer] ?? 0) + count;
      return all;
    }, {}),
  };
}

async function measureSide(target: Target, key: ScenarioKey, side: Side, options: ReturnType<typeof benchOptions>, hints: RunHints, round: number) {
  const scenario = target.scenario(key);
  if (!scenario || side.failure) return;
  try {
    side.runs.push(await runScenario(target, scenario, options, hints, round === 0));
  } catch (error) {
    if (!(error instanceof ScenarioFailure)) throw error;
    side.failure = error.message;
  }
}

async function main(): Promise<number> {
  const options = benchOptions();
  const keys = selectedScenarios(options);
  progress(
    `bench:compare: ${keys.length} scenarios × ${options.rounds} A/B rounds of ${options.seconds} s (after ${options.warmupSeconds} s warm-up), ${options.connections} connections`,
  );
  const tessera = await startTessera(options);
  let peer: Target;
  try {
    peer = await startPeer(options);
  } catch (error) {
    await tessera.stop();
    throw error;
  }

  const rows: string[][] = [];
  const notes: string[] = [];
  let failed = false;
  const tesseraHints: RunHints = {};
  const peerHints: RunHints = {};
  try {
    for (const key of keys) {
      const a: Side = { runs: [], failure: null };
      const b: Side = { runs: [], failure: null };
      for (let round = 0; round < options.rounds; round++) {
        progress(`bench:compare: ${key}, round ${round + 1}/${options.rounds}…`);
        await measureSide(tessera, key, a, options, tesseraHints, round);
        await measureSide(peer, key, b, options, peerHints, round);
      }
      const ta = summary(a);
      const pb = summary(b);
      const hasPeer = peer.scenario(key) !== null;
      const ratio = ta && pb ? ta.rps / pb.rps : null;
      const wanted = RATIO_TARGET[key];
      let verdict = '';
      if (ratio !== null && wanted !== undefined) {
        const misses: string[] = [];
        if (ratio < wanted) misses.push(`ratio < ${wanted.toFixed(1)}`);
        if (ta!.p99 > pb!.p99) misses.push('p99 > peer');
        verdict = misses.length === 0 ? `meets (≥ ${wanted.toFixed(1)}×)` : `misses: ${misses.join(', ')}`;
      }
      if (a.failure || b.failure || ta?.bad || pb?.bad) failed = true;
      rows.push([
        titleOf(key),
        ta ? fmt.rps(ta.rps) : 'FAILED',
        hasPeer ? (pb ? fmt.rps(pb.rps) : 'FAILED') : '—',
        ratio !== null ? ratio.toFixed(2) : '—',
        ta ? fmt.ms(ta.p50) : '',
        pb ? fmt.ms(pb.p50) : '',
        ta ? fmt.ms(ta.p99) : '',
        pb ? fmt.ms(pb.p99) : '',
        `${ta ? `${ta.unexpected}${ta.bad ? ' !' : ''}` : '—'}/${pb ? `${pb.unexpected}${pb.bad ? ' !' : ''}` : '—'}`,
        verdict,
      ]);
      if (a.failure) notes.push(`${key}: Tessera FAILED: ${a.failure}`);
      if (b.failure) notes.push(`${key}: peer FAILED: ${b.failure}`);
      const tesseraScenario = tessera.scenario(key);
      const peerScenario = peer.scenario(key);
      if (tesseraScenario?.expect.error || ta?.bad) notes.push(`${key}: Tessera answers: ${ta ? mixText(ta.mix) : ''}`);
      if (peerScenario?.expect.error || pb?.bad) notes.push(`${key}: peer answers: ${pb ? mixText(pb.mix) : ''}`);
      if (tesseraScenario?.note) notes.push(`${key}: Tessera: ${tesseraScenario.note}`);
      if (peerScenario?.note) notes.push(`${key}: peer: ${peerScenario.note}`);
    }
  } finally {
    const tesseraRss = rssMb(tessera.child.pid);
    const peerRss = rssMb(peer.child.pid);
    const heap = await heapOf(tessera.url);
    notes.push(`server RSS after the runs: Tessera ${fmt.mb(tesseraRss)} MB${heap} (issue 12 target ≤ 150), peer ${fmt.mb(peerRss)} MB`);
    await Promise.all([tessera.stop(), peer.stop()]);
  }

  process.stdout.write(
    `\nTessera (embedded store) vs node-oidc-provider (in memory): medians of ${options.rounds} alternating rounds, ` +
      `${options.seconds} s each, ${options.connections} connections\n\n` +
      table(
        ['scenario', 'Tessera req/s', 'peer req/s', 'Tessera/peer', 'p50 T', 'p50 peer', 'p99 T', 'p99 peer', 'unexpected T/peer', 'issue 7 target'],
        rows,
        new Set([1, 2, 3, 4, 5, 6, 7, 8]),
      ) +
      '\n\n' +
      notes.map((n) => `  ${n}`).join('\n') +
      '\n',
  );
  if (failed) process.stdout.write('\nbench:compare: FAILED (see above: a scenario could not be measured, or more than 1% of its answers were unexpected)\n');
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench:compare: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
