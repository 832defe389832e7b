/** High-entropy secrets: generated URL-safe, stored as SHA-256, compared in constant time. */
import * as crypto from 'node:crypto';

/**
 * Random bytes from the CSPRNG, drawn 4 KiB at a time: every request makes a secret or a user
 * code, and one large draw costs about what one small one does. Each byte is handed out once.
 */
const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let poolOffset = POOL_SIZE;

function refill(size: number): void {
  if (poolOffset + size > POOL_SIZE) {
    crypto.randomFillSync(pool);
    poolOffset = 0;
  }
}

export function randomBytesPooled(size: number): Buffer {
  if (size > POOL_SIZE / 4) return crypto.randomBytes(size);
  refill(size);
  const out = Buffer.from(pool.subarray(poolOffset, poolOffset + size));
  // Used bytes are wiped, so what is handed out lives only in its copy.
  pool.fill(0, poolOffset, poolOffset + size);
  poolOffset += size;
  return out;
}

/** A uniform random integer in [0, n) for 2 <= n <= 256: rejection sampling of pooled bytes, no modulo bias. */
export function randomBelow(n: number): number {
  if (!Number.isInteger(n) || n < 2 || n > 256) return crypto.randomInt(n);
  const limit = 256 - (256 % n);
  for (;;) {
    refill(1);
    const byte = pool[poolOffset]!;
    pool[poolOffset++] = 0;
    if (byte < limit) return byte % n;
  }
}

/** 32 random bytes, base64url: URL-safe, so Basic auth needs no encoding (256 bits). */
export function generateSecret(bytes = 32): string {
  return randomBytesPooled(bytes).toString('base64url');
}

// crypto.hash (Node >= 20.12) is the one-shot digest, about twice as fast as createHash for short inputs.
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: string) => string | Buffer }).hash;

export function sha256Hex(value: string): string {
  return oneShot ? (oneShot('sha256', value, 'hex') as string) : crypto.createHash('sha256').update(value, 'utf8').digest('hex');
}

/** The raw SHA-256 digest of a string. */
export function sha256(value: string): Buffer {
  return oneShot ? (oneShot('sha256', value, 'buffer') as Buffer) : crypto.createHash('sha256').update(value, 'utf8').digest();
}

/** Constant-time comparison of a presented secret with a stored SHA-256 hex digest. */
export function secretMatchesHash(presented: string, storedHashHex: string): boolean {
  const a = sha256(presented);
  const b = Buffer.from(storedHashHex, 'hex');
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}
