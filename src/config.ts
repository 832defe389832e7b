/**
 * Environment → one typed, validated Config. A bad value stops start-up with one line naming the
 * variable (ConfigError), never a stack trace.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { z } from 'zod';

export interface Config {
  port: number;
  host: string;
  /** Without a trailing slash. */
  publicUrl: string;
  mongodbUri: string | null;
  dataDir: string;
  bootstrapToken: string | null;
  bootstrapPassword: string | null;
  /** Null until resolved: with the embedded store it is generated and kept in the data dir. */
  secretKey: string | null;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  workers: number;
  /** Audit events are removed this many days after they were written (both stores). */
  eventRetentionDays: number;
  /** The embedded store keeps the newest this many audit events (on disk, with a small index of each in memory). */
  embeddedMaxEvents: number;
  /** Failed sign-ins (the /device page and its JSON form) one client address may make in 5 minutes. */
  signInPerAddress: number;
  /** Device authorization requests one client address may make in a minute. */
  deviceAuthorizationsPerMinute: number;
  /** Addresses and CIDR ranges of proxies whose X-Forwarded-For is believed (none by default). */
  trustProxy: string[];
  /** TESSERA_DURABILITY: `full` fsyncs every embedded-store commit (survives power loss), `normal` at checkpoints. */
  durability: 'normal' | 'full';
}

export class ConfigError extends Error {
  constructor(readonly variable: string, problem: string) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

const optional = (value: string | undefined): string | undefined => (value === undefined || value === '' ? undefined : value);

/** Plain decimal digits only: Number() would take ' ' as 0, '0x10' as 16 and '1e3' as 1000. */
const integer = (min: number, max: number) =>
  z.string()
    .regex(/^\d{1,6}$/, `must be a whole number from ${min} to ${max}`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `must be a whole number from ${min} to ${max}`);

const rules = {
  PORT: integer(0, 65535),
  HOST: z.string().regex(/^[^\s/]+$/, 'must be an address or host name, without spaces'),
  TESSERA_PUBLIC_URL: z.url({ protocol: /^https?$/, error: 'must be an absolute http:// or https:// URL' })
    .refine((u) => !u.includes('?') && !u.includes('#'), 'must not have a query or fragment'),
  TESSERA_MONGODB_URI: z.string().regex(/^mongodb(\+srv)?:\/\//, 'must start with mongodb:// or mongodb+srv://'),
  TESSERA_DATA_DIR: z.string().min(1),
  TESSERA_BOOTSTRAP_TOKEN: z.string().min(16, 'must be at least 16 characters').max(512).regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces'),
  TESSERA_BOOTSTRAP_PASSWORD: z.string().min(8, 'must be at least 8 characters').max(1024),
  TESSERA_SECRET_KEY: z.string().min(32, 'must be at least 32 characters (for example: openssl rand -base64 48)'),
  TESSERA_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    error: 'must be one of fatal, error, warn, info, debug, trace, silent',
  }),
  TESSERA_WORKERS: integer(1, 64),
  // 24,855 days is the most a MongoDB TTL index holds: expireAfterSeconds is at most 2^31 - 1.
  TESSERA_EVENT_RETENTION_DAYS: integer(1, 24855),
  TESSERA_EMBEDDED_MAX_EVENTS: integer(1000, 999999),
  TESSERA_SIGNIN_PER_ADDRESS: integer(1, 999999),
  TESSERA_DEVICE_AUTHORIZATIONS_PER_MINUTE: integer(1, 999999),
  TESSERA_TRUST_PROXY: z.string()
    .transform((list) => list.split(',').map((entry) => entry.trim()).filter((entry) => entry !== ''))
    .refine((entries) => entries.every(isAddressOrRange), 'must be a comma-separated list of IP addresses or CIDR ranges (10.0.0.0/8, ::1)'),
  TESSERA_DURABILITY: z.enum(['normal', 'full'], { error: 'must be normal or full' }),
} as const;

/** An IPv4 or IPv6 address, or one with a prefix length in range (192.168.0.0/16, fd00::/8). */
function isAddressOrRange(entry: string): boolean {
  const slash = entry.indexOf('/');
  const address = slash === -1 ? entry : entry.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return false;
  if (slash === -1) return true;
  const prefix = entry.slice(slash + 1);
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

function read<K extends keyof typeof rules>(env: NodeJS.ProcessEnv, name: K, fallback?: string): z.infer<(typeof rules)[K]> | undefined {
  const raw = optional(env[name]) ?? fallback;
  if (raw === undefined) return undefined;
  const result = rules[name].safeParse(raw);
  if (!result.success) throw new ConfigError(name, result.error.issues[0]?.message ?? 'invalid value');
  return result.data as z.infer<(typeof rules)[K]>;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const port = read(env, 'PORT', '9000')!;
  const mongodbUri = read(env, 'TESSERA_MONGODB_URI') ?? null;
  const secretKey = read(env, 'TESSERA_SECRET_KEY') ?? null;
  if (mongodbUri && !secretKey) {
    throw new ConfigError('TESSERA_SECRET_KEY', 'is required with TESSERA_MONGODB_URI (every node must share it)');
  }
  const publicUrl = read(env, 'TESSERA_PUBLIC_URL', `http://localhost:${port}`)!.replace(/\/+$/, '');
  return {
    port,
    host: read(env, 'HOST', '0.0.0.0')!,
    publicUrl,
    mongodbUri,
    dataDir: path.resolve(read(env, 'TESSERA_DATA_DIR', './data')!),
    bootstrapToken: read(env, 'TESSERA_BOOTSTRAP_TOKEN') ?? null,
    bootstrapPassword: read(env, 'TESSERA_BOOTSTRAP_PASSWORD') ?? null,
    secretKey,
    logLevel: read(env, 'TESSERA_LOG_LEVEL', 'info')!,
    workers: read(env, 'TESSERA_WORKERS', '1')!,
    eventRetentionDays: read(env, 'TESSERA_EVENT_RETENTION_DAYS', '30')!,
    embeddedMaxEvents: read(env, 'TESSERA_EMBEDDED_MAX_EVENTS', '100000')!,
    signInPerAddress: read(env, 'TESSERA_SIGNIN_PER_ADDRESS', '100')!,
    deviceAuthorizationsPerMinute: read(env, 'TESSERA_DEVICE_AUTHORIZATIONS_PER_MINUTE', '60')!,
    trustProxy: read(env, 'TESSERA_TRUST_PROXY') ?? [],
    durability: read(env, 'TESSERA_DURABILITY', 'normal')!,
  };
}

/** With the embedded store, a secret key is generated once and kept (mode 600) beside the data. */
export function resolveSecretKey(config: Config): string {
  if (config.secretKey) return config.secretKey;
  const file = path.join(config.dataDir, 'secret.key');
  try {
    if (existsSync(file)) {
      const key = readFileSync(file, 'utf8').trim();
      if (key.length < 32) throw new ConfigError('TESSERA_SECRET_KEY', `the key kept in ${file} is too short; remove it or set the variable`);
      return key;
    }
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    const key = randomBytes(48).toString('base64url');
    writeFileSync(file, `${key}\n`, { mode: 0o600, flag: 'wx' });
    return key;
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    // An unusable data dir (a file, no permission, read-only) is a configuration problem, not a crash.
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ConfigError('TESSERA_DATA_DIR', `cannot use ${config.dataDir} (${code})`);
  }
}
