/** The "find a MongoDB for tests" helper's pure parts (test/helpers/mongo.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { findMongodOnPath, mongoUriWithDatabase, uniqueDatabaseName } from '../helpers/mongo.js';

test('mongoUriWithDatabase sets the database and keeps hosts and options', () => {
  assert.equal(mongoUriWithDatabase('mongodb://127.0.0.1:27017/', 'db1'), 'mongodb://127.0.0.1:27017/db1');
  assert.equal(mongoUriWithDatabase('mongodb://127.0.0.1:27017', 'db1'), 'mongodb://127.0.0.1:27017/db1');
  assert.equal(mongoUriWithDatabase('mongodb://u:p@a:1,b:2/old?replicaSet=rs0', 'db1'), 'mongodb://u:p@a:1,b:2/db1?replicaSet=rs0');
  assert.equal(mongoUriWithDatabase('mongodb+srv://cluster.example.org/?retryWrites=true', 'db1'),
    'mongodb+srv://cluster.example.org/db1?retryWrites=true');
  assert.throws(() => mongoUriWithDatabase('postgres://u:secret@h/db', 'db1'), (error: Error) => !error.message.includes('secret'));
});

test('uniqueDatabaseName gives distinct names MongoDB accepts', () => {
  const names = new Set(Array.from({ length: 50 }, () => uniqueDatabaseName()));
  assert.equal(names.size, 50);
  for (const name of names) assert.match(name, /^[A-Za-z0-9_]{1,63}$/);
});

test('findMongodOnPath finds an executable mongod and ignores one that is not executable', async () => {
  const withBinary = await mkdtemp(path.join(os.tmpdir(), 'tessera-path-'));
  const withFile = await mkdtemp(path.join(os.tmpdir(), 'tessera-path-'));
  try {
    await writeFile(path.join(withBinary, 'mongod'), '#!/bin/sh\n');
    await chmod(path.join(withBinary, 'mongod'), 0o755);
    await writeFile(path.join(withFile, 'mongod'), 'not a program');
    await chmod(path.join(withFile, 'mongod'), 0o644);
    const pathOf = (...dirs: string[]) => dirs.join(path.delimiter);
    assert.equal(findMongodOnPath(pathOf(withFile, withBinary)), path.join(withBinary, 'mongod'));
    // root may execute anything with an x bit; a file without one is never taken
    assert.equal(findMongodOnPath(pathOf(withFile)), null);
    assert.equal(findMongodOnPath(''), null);
  } finally {
    await rm(withBinary, { recursive: true, force: true });
    await rm(withFile, { recursive: true, force: true });
  }
});
