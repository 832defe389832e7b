// Runs every compiled test file (dist/test/**/*.test.js) with node's test runner.
// Node 20's runner takes files, not globs, so they are listed here.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function collect(dir) {
  const files = [];
  for (const name of readdirSync(dir).sort()) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) files.push(...collect(full));
    // A compiled test whose source was deleted (tsc leaves its output behind) is not run.
    else if (name.endsWith('.test.js') && existsSync(full.replace(/^dist[\\/]/, '').replace(/\.js$/, '.ts'))) files.push(full);
  }
  return files;
}

const only = process.argv.slice(2);
const files = only.length > 0 ? only : collect('dist/test');
const result = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);
