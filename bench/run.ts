/**
 * `npm run bench`: Tessera's hot paths under load, one table.
 *
 * Starts `node dist/src/main.js` as a child process on the embedded store in a temp dir, seeds it
 * through the admin GraphQL API (an RS256 and an ES256 provider, a confidential client with
 * CLIENT_CREDENTIALS on each, a public DEVICE_CODE client, a user with an app password, and
 * BENCH_USERS users), then drives each scenario with autocannon: a warm-up run, then a measured run.
 *
 * Environment: BENCH_SECONDS (measured seconds per scenario, default 10), BENCH_WARMUP_SECONDS
 * (default a third of that), BENCH_CONNECTIONS (default 10), BENCH_USERS (default 1000),
 * BENCH_ONLY (comma-separated scenario keys), BENCH_NODE_ARGS (node flags for the server, e.g.
 * "--cpu-prof --cpu-prof-dir=/tmp/prof"), BENCH_VERBOSE=1 (echo the server's output).
 *
 * Exit status: 0 when every scenario was measured with at most 1% unexpected answers; 1 when the
 * server failed to start or seed, died, or a scenario could not be measured.
 */
import {
  ScenarioFailure,
  benchOptions,
  fmt,
  mixText,
  progress,
  rssMb,
  runScenario,
  selectedScenarios,
  table,
  titleOf,
  tooManyUnexpected,
  type RunHints,
} from './lib.js';
import { startTessera } from './tessera.js';

async function main(): Promise<number> {
  const options = benchOptions();
  const keys = selectedScenarios(options);
  progress(`bench: ${keys.length} scenarios, ${options.warmupSeconds} s warm-up + ${options.seconds} s measured each, ${options.connections} connections`);
  const target = await startTessera(options);
  const rows: string[][] = [];
  const notes: string[] = [];
  let failed = false;
  const hints: RunHints = {};
  try {
    for (const key of keys) {
      const scenario = target.scenario(key)!;
      progress(`bench: ${key}…`);
      try {
        const m = await runScenario(target, scenario, options, hints, true);
        const bad = tooManyUnexpected(m);
        failed ||= bad;
        rows.push([
          titleOf(key),
          fmt.rps(m.rps),
          fmt.ms(m.p50),
          fmt.ms(m.p99),
          `${m.non2xx}/${m.errors}`,
          `${m.unexpected}${bad ? ' !' : ''}`,
          fmt.mb(rssMb(target.child.pid)),
        ]);
        if (scenario.expect.error || bad) notes.push(`${key}: ${mixText(m.mix)}`);
        if (scenario.note) notes.push(`${key}: ${scenario.note}`);
      } catch (error) {
        if (!(error instanceof ScenarioFailure)) throw error;
        failed = true;
        rows.push([titleOf(key), 'FAILED', '', '', '', '', fmt.mb(rssMb(target.child.pid))]);
        notes.push(`${key}: FAILED: ${error.message}`);
      }
    }
  } finally {
    await target.stop();
  }

  process.stdout.write(
    `\nTessera (${target.url}, embedded store), ${options.connections} connections, ${options.seconds} s measured after ${options.warmupSeconds} s warm-up\n\n` +
      table(['scenario', 'requests/s', 'p50 ms', 'p99 ms', 'non-2xx/errors', 'unexpected', 'server RSS MB'], rows, new Set([1, 2, 3, 4, 5, 6])) +
      '\n\n' +
      notes.map((n) => `  ${n}`).join('\n') +
      '\n',
  );
  if (failed) process.stdout.write('\nbench: FAILED (see above: a scenario could not be measured, or more than 1% of its answers were unexpected)\n');
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
