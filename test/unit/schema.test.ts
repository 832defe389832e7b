/** The generated schema is committed and current, and it breaks nothing the contract fixes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSchema, findBreakingChanges } from 'graphql';
import { printAdminSchema } from '../../scripts/print-schema.js';

// dist/test/unit/ → the repository root.
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function contractText(): string {
  const shared = path.resolve(repoRoot, '../shared/contract/admin.graphql');
  return readFileSync(existsSync(shared) ? shared : path.join(repoRoot, 'test/fixtures/contract-admin.graphql'), 'utf8');
}

test('schema/schema.graphql is what the resolvers print (run `npm run schema` after changing them)', async () => {
  const committed = readFileSync(path.join(repoRoot, 'schema/schema.graphql'), 'utf8');
  assert.equal(committed, await printAdminSchema(), 'schema/schema.graphql is stale: run `npm run schema` and commit it');
});

test('the schema has no breaking change against the contract (admin.graphql)', async () => {
  const changes = findBreakingChanges(buildSchema(contractText()), buildSchema(readFileSync(path.join(repoRoot, 'schema/schema.graphql'), 'utf8')));
  assert.deepEqual(changes, []);
});

test('the committed copy of the contract is byte-identical to the shared one', { skip: !existsSync(path.resolve(repoRoot, '../shared/contract/admin.graphql')) }, () => {
  assert.equal(readFileSync(path.join(repoRoot, 'test/fixtures/contract-admin.graphql'), 'utf8'), contractText());
});
