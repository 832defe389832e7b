/**
 * Brute-force protection for user codes (RFC 8628 §5.1): more than 20 wrong codes within a minute
 * from one client address, or by one user, and further entries are refused for the rest of that
 * minute. The counters live where the other state lives: in MongoDB when the store is MongoDB (so
 * they hold across processes), in memory with the embedded store (one process owns it).
 */
import { createRequire } from 'node:module';
import type { Connection } from 'mongoose';
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

function mongooseConnectionOf(store: StoreAdapter): Connection | null {
  const candidate = (store as StoreAdapter & { mongooseConnection?: Connection }).mongooseConnection;
  return store.kind === 'mongodb' && candidate ? candidate : null;
}

export function createUserCodeLimiter(store: StoreAdapter): WrongUserCodeLimiter {
  const options = { keyPrefix: 'tessera_wrong_user_code', points: WRONG_USER_CODES_PER_MINUTE, duration: WINDOW_SECONDS };
  const connection = mongooseConnectionOf(store);
  let limiter: RateLimiterAbstract;
  if (connection) {
    const RateLimiterMongo = require('rate-limiter-flexible/lib/RateLimiterMongo.js') as typeof Flexible.RateLimiterMongo;
    limiter = new RateLimiterMongo({ ...options, storeClient: connection, tableName: 'rateLimits' }) as unknown as RateLimiterAbstract;
  } else {
    const RateLimiterMemory = require('rate-limiter-flexible/lib/RateLimiterMemory.js') as typeof Flexible.RateLimiterMemory;
    limiter = new RateLimiterMemory(options);
  }
  return new WrongUserCodeLimiter(limiter);
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
