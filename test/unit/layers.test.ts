/**
 * Layers point one way (docs/ARCHITECTURE.md): every import statement of src/ is read, and an
 * import from a lower layer into a higher one fails this test, naming the file and the import.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

// dist/test/unit → the source tree.
const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../src');

interface Rule {
  /** The files (relative to src/, with '/') the rule is about. */
  from: string;
  /** Imports they must not make: src/ paths (a prefix) or package names. */
  forbidden: string[];
  /** Exceptions to `forbidden`. */
  allowed?: string[];
}

const RULES: Rule[] = [
  // The domain knows no transport and no admin API: no Koa, no GraphQL, no driver of a store.
  {
    from: 'domain/',
    forbidden: ['oauth/', 'http/', 'admin/', 'verification/', 'cli/', 'app.ts', 'server.ts', 'koa', '@koa/router', 'graphql', 'type-graphql', '@apollo/server', 'mongoose', 'mongodb', 'better-sqlite3'],
  },
  // The store implements the port over the domain's records, never over its services.
  { from: 'store/', forbidden: ['domain/', 'oauth/', 'http/', 'admin/', 'verification/', 'cli/'], allowed: ['domain/model.ts', 'domain/errors.ts'] },
  // The HTTP plumbing serves the endpoints; the endpoints import it, not the other way.
  { from: 'http/', forbidden: ['oauth/', 'admin/', 'verification/'] },
];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? sourceFiles(full) : full.endsWith('.ts') ? [full] : [];
  });
}

/** The module specifiers of a file's static and dynamic imports and re-exports. */
export function importsOf(source: string): string[] {
  const found: string[] = [];
  for (const match of source.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'";]*?\bfrom\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g)) {
    found.push((match[1] ?? match[2] ?? match[3])!);
  }
  return found;
}

/** An import as a src/ path ('domain/model.ts') or a package name ('koa', '@koa/router'). */
function target(file: string, specifier: string): string {
  if (specifier.startsWith('.')) {
    return path.relative(SRC, path.resolve(path.dirname(file), specifier)).split(path.sep).join('/').replace(/\.js$/, '.ts');
  }
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

export function violations(rules: readonly Rule[], files: ReadonlyMap<string, string>): string[] {
  const found: string[] = [];
  for (const [relative, source] of files) {
    for (const rule of rules.filter((r) => relative.startsWith(r.from))) {
      for (const specifier of importsOf(source)) {
        const to = target(path.join(SRC, relative), specifier);
        const hit = rule.forbidden.some((f) => (f.endsWith('/') || f.endsWith('.ts') ? to.startsWith(f) : to === f));
        if (hit && !(rule.allowed ?? []).includes(to)) found.push(`src/${relative} imports ${specifier} (${to})`);
      }
    }
  }
  return found;
}

const ALL = new Map(sourceFiles(SRC).map((f) => [path.relative(SRC, f).split(path.sep).join('/'), readFileSync(f, 'utf8')]));

test('no lower layer imports a higher one (domain, store, http)', () => {
  assert.ok(ALL.size > 100, `read ${ALL.size} files of src/`);
  assert.deepEqual(violations(RULES, ALL), []);
});

test('the scan sees the imports it must refuse', () => {
  const planted = new Map([
    ['http/planted.ts', "import { OAuthError } from '../oauth/errors.js';"],
    ['domain/planted.ts', "import type { Context } from 'koa';\nexport { x } from '../admin/context.js';\nconst m = await import('../http/frame.js');"],
    ['store/planted.ts', "import type { User } from '../domain/model.js';\nimport { TokenService } from '../domain/tokens.js';"],
  ]);
  assert.deepEqual(violations(RULES, planted), [
    'src/http/planted.ts imports ../oauth/errors.js (oauth/errors.ts)',
    'src/domain/planted.ts imports koa (koa)',
    'src/domain/planted.ts imports ../admin/context.js (admin/context.ts)',
    'src/domain/planted.ts imports ../http/frame.js (http/frame.ts)',
    'src/store/planted.ts imports ../domain/tokens.js (domain/tokens.ts)',
  ]);
});
