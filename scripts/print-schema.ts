/** Writes schema/schema.graphql from the resolvers (`npm run schema`); test/unit/schema.test.ts fails when it is stale. */
import 'reflect-metadata';
import { writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { lexicographicSortSchema, printSchema } from 'graphql';
import { buildAdminSchema } from '../src/admin/schema.js';

/** The repository root: dist/scripts/ → ../.. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SCHEMA_FILE = path.join(REPO_ROOT, 'schema', 'schema.graphql');

export async function printAdminSchema(): Promise<string> {
  return `${printSchema(lexicographicSortSchema(await buildAdminSchema()))}\n`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await mkdir(path.dirname(SCHEMA_FILE), { recursive: true });
  await writeFile(SCHEMA_FILE, await printAdminSchema());
  console.log(`wrote ${path.relative(process.cwd(), SCHEMA_FILE)}`);
}
