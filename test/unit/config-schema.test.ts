import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CONFIG_SCHEMA_FILE, printConfigSchema } from '../../scripts/print-schema.js';

test('schema/config.schema.json is generated from the document schema the server validates with (npm run schema)', () => {
  assert.equal(readFileSync(CONFIG_SCHEMA_FILE, 'utf8'), printConfigSchema());
});

test('the JSON Schema describes the document: defaulted fields optional, unknown fields refused', () => {
  const schema = JSON.parse(printConfigSchema()) as { properties: Record<string, { items: { required?: string[]; additionalProperties?: boolean } }> };
  const provider = schema.properties.providers!.items;
  assert.deepEqual(provider.required, ['slug', 'name']);
  assert.equal(provider.additionalProperties, false);
  assert.deepEqual(schema.properties.clients!.items.required, ['clientId', 'provider', 'name', 'type', 'grantTypes']);
});
