/**
 * Finds a MongoDB for tests: TESSERA_TEST_MONGODB_URI when set, else a throwaway server started
 * from a `mongod` binary on PATH (through mongodb-memory-server-core, which is told to use that
 * binary and so never downloads one), else null — callers skip their MongoDB tests then.
 */
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';

export interface TestMongo {
  /** A connection string without a database name; see mongoUriWithDatabase. */
  uri: string;
  /** Stops the server started for the tests; does nothing for TESSERA_TEST_MONGODB_URI. */
  stop: () => Promise<void>;
  /** Where it came from, for the test's diagnostic line. */
  source: string;
}

export const MONGO_SKIP_REASON = 'store contract: MongoDB skipped (no TESSERA_TEST_MONGODB_URI and no mongod on PATH)';

/** The absolute path of an executable `mongod` on PATH, or null. */
export function findMongodOnPath(envPath = process.env.PATH ?? ''): string | null {
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, 'mongod');
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

export async function findTestMongo(): Promise<TestMongo | null> {
  const fromEnv = process.env.TESSERA_TEST_MONGODB_URI?.trim();
  if (fromEnv) return { uri: fromEnv, stop: async () => {}, source: 'TESSERA_TEST_MONGODB_URI' };

  const systemBinary = findMongodOnPath();
  if (!systemBinary) return null;
  // Loaded only when needed: it is a devDependency and pulls in a fair amount of code.
  const { MongoMemoryServer } = await import('mongodb-memory-server-core');
  const server = await MongoMemoryServer.create({ binary: { systemBinary } });
  return {
    uri: server.getUri(),
    stop: async () => {
      await server.stop({ doCleanup: true });
    },
    source: `mongod at ${systemBinary} (mongodb-memory-server-core)`,
  };
}

/** The same connection string with its database set to `database` (any database in it is replaced). */
export function mongoUriWithDatabase(uri: string, database: string): string {
  const match = /^(mongodb(?:\+srv)?:\/\/[^/?]+)(\/[^?]*)?(\?.*)?$/.exec(uri);
  if (!match) throw new Error(`not a MongoDB connection string: ${uri.replace(/\/\/[^@/]*@/, '//***@')}`);
  return `${match[1]}/${database}${match[3] ?? ''}`;
}

/** A database name unique to this run, within MongoDB's 63-character limit. */
export function uniqueDatabaseName(prefix = 'tessera_test'): string {
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
}
