/**
 * Brute-force protection for user codes (RFC 8628 §5.1): more than 20 wrong codes within a minute
 * from one client address, or by one user, and further entries are refused for the rest of that
 * minute. The counters live where the other state lives: in MongoDB when the store is MongoDB (so
 * they hold across processes), in memory with the embedded store (one process owns it).
 */
import { createRequire } from 'node:module';
import type * as Flexible from 'rate-limiter-flexible';
import type { StoreAdapter } from '../store/ports.js';

// The package's index loads every backend it has (Redis, Postgres, Prisma, …): about 60 ms of
// start-up. Only the two backends used here are loaded, the MongoDB one only with MongoDB.
const require = createRequire(import.meta.url);
const RateLimiterRes = require('rate-limiter-flexible/lib/RateLimiterRes.js') as typeof Flexible.RateLimiterRes;
type RateLimiterAbstract = Flexible.RateLimiterAbstract;

export const WRONG_USER_CODES_PER_MINUTE = 20;
const WINDOW_SECONDS = 60;

export interface RateLimitSubject {
  /** The client address (IP) of the request. */
  address: string;
  /** The signed-in user's id, once known. */
  userId?: string | null;
}

export type RateLimitVerdict = { limited: false } | { limited: true; retryAfterSeconds: number };

/** What the MongoDB store offers rate-limiter-flexible: its client and the counters' collection. */
interface MongoRateLimitBackend { storeClient: unknown; tableName: string }

function mongoBackendOf(store: StoreAdapter): MongoRateLimitBackend | null {
  const candidate = (store as StoreAdapter & { mongoRateLimits?: MongoRateLimitBackend }).mongoRateLimits;
  return store.kind === 'mongodb' && candidate ? candidate : null;
}

/** A counter in the store's own backend: MongoDB across processes, memory for the single embedded process. */
function createLimiter(store: StoreAdapter, options: { keyPrefix: string; points: number; duration: number }): RateLimiterAbstract {
  const mongo = mongoBackendOf(store);
  if (mongo) {
    const RateLimiterMongo = require('rate-limiter-flexible/lib/RateLimiterMongo.js') as typeof Flexible.RateLimiterMongo;
    // The store made the collection's indexes at start-up (a failure stopped it there); left to
    // the library, they would be made unawaited, with a failure only on console.error. Its
    // store errors reach the request (StoreUnavailableError: 503), logged by the HTTP layer.
    return new RateLimiterMongo({ ...options, ...mongo, disableIndexesCreation: true }) as unknown as RateLimiterAbstract;
  }
  const RateLimiterMemory = require('rate-limiter-flexible/lib/RateLimiterMemory.js') as typeof Flexible.RateLimiterMemory;
  return new RateLimiterMemory(options);
}

export function createUserCodeLimiter(store: StoreAdapter): WrongUserCodeLimiter {
  return new WrongUserCodeLimiter(createLimiter(store, { keyPrefix: 'tessera_wrong_user_code', points: WRONG_USER_CODES_PER_MINUTE, duration: WINDOW_SECONDS }));
}

/**
 * Failed sign-ins (the /device page and its JSON form) per username: more than
 * FAILED_SIGN_INS_PER_WINDOW within SIGN_IN_WINDOW_SECONDS and further attempts for that username
 * are refused until the window passes, so a password cannot be guessed at argon2's pace. Counted
 * per username, not per address, so one noisy address cannot lock everyone out.
 */
export const FAILED_SIGN_INS_PER_WINDOW = 30;
export const SIGN_IN_WINDOW_SECONDS = 300;

export class FailedSignInLimiter {
  private readonly limiter: RateLimiterAbstract;

  constructor(store: StoreAdapter) {
    this.limiter = createLimiter(store, { keyPrefix: 'tessera_failed_sign_in', points: FAILED_SIGN_INS_PER_WINDOW, duration: SIGN_IN_WINDOW_SECONDS });
  }

  async check(username: string): Promise<RateLimitVerdict> {
    const res = await this.limiter.get(`user:${username.slice(0, 150)}`);
    return res && res.consumedPoints >= FAILED_SIGN_INS_PER_WINDOW
      ? { limited: true, retryAfterSeconds: Math.ceil(res.msBeforeNext / 1000) }
      : { limited: false };
  }

  async recordFailure(username: string): Promise<void> {
    try {
      await this.limiter.consume(`user:${username.slice(0, 150)}`, 1);
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
    }
  }
}

export class WrongUserCodeLimiter {
  constructor(private readonly limiter: RateLimiterAbstract) {}

  private keys(subject: RateLimitSubject): string[] {
    const keys = [`address:${subject.address}`];
    if (subject.userId) keys.push(`user:${subject.userId}`);
    return keys;
  }

  /** Whether the subject has already used up its wrong entries for this minute. */
  async check(subject: RateLimitSubject): Promise<RateLimitVerdict> {
    let retry = 0;
    for (const key of this.keys(subject)) {
      const res = await this.limiter.get(key);
      if (res && res.consumedPoints > WRONG_USER_CODES_PER_MINUTE) retry = Math.max(retry, res.msBeforeNext);
    }
    return retry > 0 ? { limited: true, retryAfterSeconds: Math.ceil(retry / 1000) } : { limited: false };
  }

  /** Counts one wrong entry; the answer says whether that one went over the limit. */
  async recordWrongCode(subject: RateLimitSubject): Promise<RateLimitVerdict> {
    let retry = 0;
    for (const key of this.keys(subject)) {
      try {
        await this.limiter.consume(key, 1);
      } catch (rejection) {
        if (!(rejection instanceof RateLimiterRes)) throw rejection;
        retry = Math.max(retry, rejection.msBeforeNext);
      }
    }
    return retry > 0 ? { limited: true, retryAfterSeconds: Math.ceil(retry / 1000) } : { limited: false };
  }
}
