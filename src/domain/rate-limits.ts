/**
 * The limits on guessing and flooding, all counted before the work they protect (two requests in
 * parallel cannot both pass a check that the first one's count would have failed) and refunded
 * when the attempt turned out to be legitimate:
 * - wrong user codes (RFC 8628 §5.1): more than 20 within a minute from one client address, or by
 *   one user, and further entries are refused for the rest of that minute;
 * - failed sign-ins: 30 per username and TESSERA_SIGNIN_PER_ADDRESS per address in 5 minutes;
 * - device authorization requests: TESSERA_DEVICE_AUTHORIZATIONS_PER_MINUTE per address.
 * The counters live where the other state lives: in MongoDB when the store is MongoDB (so they
 * hold across processes), in memory with the embedded store (one process owns it).
 */
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
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

const ALLOWED: RateLimitVerdict = { limited: false };

/**
 * The counter key of a client address. An IPv6 client usually holds a whole /64 and can pick a
 * fresh address in it for every request, so IPv6 addresses count per /64.
 */
export function addressKey(address: string): string {
  const bare = address.includes('%') ? address.slice(0, address.indexOf('%')) : address;
  if (isIP(bare) !== 6) return `address:${bare.slice(0, 64)}`;
  const [head = '', tail] = bare.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `address:${groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/** A consumption that went over: the verdict with the time until the window frees a point. */
function verdictOf(rejection: unknown): RateLimitVerdict {
  if (!(rejection instanceof RateLimiterRes)) throw rejection;
  return { limited: true, retryAfterSeconds: Math.max(1, Math.ceil(rejection.msBeforeNext / 1000)) };
}

/** Counts `points` against each key in turn; the first key over its limit stops the count. */
async function consumeAll(entries: ReadonlyArray<readonly [RateLimiterAbstract, string]>, points = 1): Promise<RateLimitVerdict> {
  for (const [limiter, key] of entries) {
    try {
      await limiter.consume(key, points);
    } catch (rejection) {
      return verdictOf(rejection);
    }
  }
  return ALLOWED;
}

async function refundAll(entries: ReadonlyArray<readonly [RateLimiterAbstract, string]>, points = 1): Promise<void> {
  for (const [limiter, key] of entries) await limiter.reward(key, points);
}

/** A counter in the store's own backend: MongoDB across processes, memory for the single embedded process. */
function createLimiter(store: StoreAdapter, options: { keyPrefix: string; points: number; duration: number }): RateLimiterAbstract {
  const shared = store.rateLimiterBackend?.() ?? null;
  if (shared) {
    const RateLimiterMongo = require('rate-limiter-flexible/lib/RateLimiterMongo.js') as typeof Flexible.RateLimiterMongo;
    // The store made the collection's indexes at start-up (a failure stopped it there); left to
    // the library, they would be made unawaited, with a failure only on console.error. Its
    // store errors reach the request (StoreUnavailableError: 503), logged by the HTTP layer.
    // A key over its limit is refused from memory until its window ends: a flood past the limit
    // costs MongoDB nothing.
    return new RateLimiterMongo({
      ...options, ...shared, disableIndexesCreation: true, inMemoryBlockOnConsumed: options.points + 1,
    }) as unknown as RateLimiterAbstract;
  }
  return memoryLimiter(options);
}

function memoryLimiter(options: { keyPrefix: string; points: number; duration: number }): RateLimiterAbstract {
  const RateLimiterMemory = require('rate-limiter-flexible/lib/RateLimiterMemory.js') as typeof Flexible.RateLimiterMemory;
  return new RateLimiterMemory(options);
}

export function createUserCodeLimiter(store: StoreAdapter): WrongUserCodeLimiter {
  return new WrongUserCodeLimiter(createLimiter(store, { keyPrefix: 'tessera_wrong_user_code', points: WRONG_USER_CODES_PER_MINUTE, duration: WINDOW_SECONDS }));
}

/**
 * Failed sign-ins (the /device page and its JSON form): more than FAILED_SIGN_INS_PER_WINDOW for
 * one username, or more than the per-address limit from one address, within
 * SIGN_IN_WINDOW_SECONDS, and further attempts are refused until the window passes, so a password
 * cannot be guessed at argon2's pace. The username is the one the server resolves the sign-in to,
 * so every spelling of it shares one count.
 */
export const FAILED_SIGN_INS_PER_WINDOW = 30;
export const SIGN_IN_WINDOW_SECONDS = 300;

export interface SignInAttempt {
  /** The username the sign-in resolves to (or, when it resolves to none, as sent). */
  username: string;
  address: string;
  /** Passwords this attempt checks (the JSON form may try a password as sent and URL-decoded): each counts. */
  guesses?: number;
}

export class FailedSignInLimiter {
  private readonly perUsername: RateLimiterAbstract;
  private readonly perAddress: RateLimiterAbstract;

  constructor(store: StoreAdapter, signInPerAddress: number) {
    this.perUsername = createLimiter(store, { keyPrefix: 'tessera_failed_sign_in', points: FAILED_SIGN_INS_PER_WINDOW, duration: SIGN_IN_WINDOW_SECONDS });
    this.perAddress = createLimiter(store, { keyPrefix: 'tessera_failed_sign_in_address', points: signInPerAddress, duration: SIGN_IN_WINDOW_SECONDS });
  }

  private keys(attempt: SignInAttempt): Array<readonly [RateLimiterAbstract, string]> {
    return [[this.perAddress, addressKey(attempt.address)], [this.perUsername, `user:${attempt.username.slice(0, 150)}`]];
  }

  /** Counts the attempt as failed before the password is checked; `refund` gives the count back. */
  consume(attempt: SignInAttempt): Promise<RateLimitVerdict> {
    return consumeAll(this.keys(attempt), attempt.guesses ?? 1);
  }

  /** The attempt was right (or was never checked): it does not count. */
  refund(attempt: SignInAttempt): Promise<void> {
    return refundAll(this.keys(attempt), attempt.guesses ?? 1);
  }
}

export class WrongUserCodeLimiter {
  constructor(private readonly limiter: RateLimiterAbstract) {}

  private keys(subject: RateLimitSubject): Array<readonly [RateLimiterAbstract, string]> {
    const keys: Array<readonly [RateLimiterAbstract, string]> = [[this.limiter, addressKey(subject.address)]];
    if (subject.userId) keys.push([this.limiter, `user:${subject.userId}`]);
    return keys;
  }

  /** Whether the subject has already used up its wrong entries for this minute (a read: nothing is counted). */
  async check(subject: RateLimitSubject): Promise<RateLimitVerdict> {
    let retry = 0;
    for (const [limiter, key] of this.keys(subject)) {
      const res = await limiter.get(key);
      if (res && res.consumedPoints > WRONG_USER_CODES_PER_MINUTE) retry = Math.max(retry, res.msBeforeNext);
    }
    return retry > 0 ? { limited: true, retryAfterSeconds: Math.ceil(retry / 1000) } : ALLOWED;
  }

  /** Counts one entry as wrong before the code is looked up; `refund` gives the count back. */
  consume(subject: RateLimitSubject): Promise<RateLimitVerdict> {
    return consumeAll(this.keys(subject));
  }

  /** The entry was a code that exists: it does not count. */
  refund(subject: RateLimitSubject): Promise<void> {
    return refundAll(this.keys(subject));
  }
}

/**
 * Device authorization requests per client address: each one stores a device code and takes a
 * user code from the provider's space, so an unauthenticated flood is refused before any of that.
 * Memory with the embedded store: one consume is a Map lookup, cheap at the endpoint's pace.
 */
export class DeviceAuthorizationLimiter {
  private readonly limiter: RateLimiterAbstract;

  constructor(store: StoreAdapter, perMinute: number) {
    this.limiter = createLimiter(store, { keyPrefix: 'tessera_device_authorization', points: perMinute, duration: WINDOW_SECONDS });
  }

  consume(address: string): Promise<RateLimitVerdict> {
    return this.limiter.consume(addressKey(address), 1).then(() => ALLOWED, verdictOf);
  }
}

/**
 * Events anyone can cause without credentials (a token request naming no known client) are
 * recorded at most this many per address and minute, per process: past it the request is answered
 * as usual but leaves no event, so a flood cannot turn the audit log into free writes. In memory
 * on every store: it bounds this process's own writes, nothing that must agree across processes.
 */
export const UNKNOWN_CLIENT_EVENTS_PER_MINUTE = 60;

export class UnknownClientEventLimiter {
  private readonly limiter = memoryLimiter({ keyPrefix: 'tessera_unknown_client_events', points: UNKNOWN_CLIENT_EVENTS_PER_MINUTE, duration: WINDOW_SECONDS });

  allows(address: string): Promise<boolean> {
    return this.limiter.consume(addressKey(address), 1).then(
      () => true,
      (rejection: unknown) => {
        verdictOf(rejection);
        return false;
      },
    );
  }
}

/** The limits the endpoints count against, made once per process over the store's backend. */
export interface RateLimits {
  wrongUserCodes: WrongUserCodeLimiter;
  failedSignIns: FailedSignInLimiter;
  deviceAuthorizations: DeviceAuthorizationLimiter;
}

export function createRateLimits(store: StoreAdapter, limits: { signInPerAddress: number; deviceAuthorizationsPerMinute: number }): RateLimits {
  return {
    wrongUserCodes: createUserCodeLimiter(store),
    failedSignIns: new FailedSignInLimiter(store, limits.signInPerAddress),
    deviceAuthorizations: new DeviceAuthorizationLimiter(store, limits.deviceAuthorizationsPerMinute),
  };
}
