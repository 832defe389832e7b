/** The storage contract on the embedded (SQLite) adapter, in a fresh temp data dir. */
import { after } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openEmbeddedStore } from '../../src/store/sqlite/sqlite-store.js';
import { withRepositories } from '../../src/store/index.js';
import { runStoreContract } from './contract.js';

console.log('store contract: embedded');

const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

runStoreContract('embedded', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-store-'));
  dirs.push(dir);
  const store = withRepositories(await openEmbeddedStore(dir));
  return {
    store,
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
