/** Writes schema/schema.graphql from the resolvers and schema/config.schema.json from the document schema (`npm run schema`); test/unit/schema.test.ts fails when it is stale. */
import 'reflect-metadata';
import { writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { lexicographicSortSchema, printSchema } from 'graphql';
import { buildAdminSchema } from '../src/admin/schema.js';
import { configJsonSchema } from '../src/domain/config-document/index.js';

/** The repository root: dist/scripts/ → ../.. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SCHEMA_FILE = path.join(REPO_ROOT, 'schema', 'schema.graphql');
/** The configuration document's JSON Schema, for editors (test/unit/config-schema.test.ts fails when it is stale). */
export const CONFIG_SCHEMA_FILE = path.join(REPO_ROOT, 'schema', 'config.schema.json');

export function printConfigSchema(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}

export async function printAdminSchema(): Promise<string> {
  return `${printSchema(lexicographicSortSchema(await buildAdminSchema()))}\n`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await mkdir(path.dirname(SCHEMA_FILE), { recursive: true });
  await writeFile(SCHEMA_FILE, await printAdminSchema());
  await writeFile(CONFIG_SCHEMA_FILE, printConfigSchema());
  console.log(`wrote ${path.relative(process.cwd(), SCHEMA_FILE)} and ${path.relative(process.cwd(), CONFIG_SCHEMA_FILE)}`);
}
