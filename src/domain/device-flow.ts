/**
 * The device authorization grant (RFC 8628), storage-agnostic: user codes, device codes, and the
 * life of one authorization (pending → approved/denied → exchanged). Everything that must hold
 * across processes (the poll clock, slow_down, exchanged-once, decided-once) is one conditional
 * update in DeviceAuthorizationRepository; nothing here keeps state in memory.
 */
import { randomInt } from 'node:crypto';
import { timeOrderedUuid } from './time-ordered-id.js';
import type { Client, DeviceAuthorization, Provider } from './model.js';
import { alphabetIsCaseInsensitive, answeredPollInterval, userCodeAlphabet } from './providers.js';
import { generateSecret, randomBelow, sha256Hex } from './secrets.js';
import type { Collections } from '../store/ports.js';
import type { DeviceAuthorizationRepository } from '../store/repositories.js';
import { ConflictError } from '../store/errors.js';

/** Longer entries cannot be a code of any provider (length ≤ 32, plus separators); refused before any lookup. */
export const MAX_USER_CODE_ENTRY = 80;
const MAX_INSERT_ATTEMPTS = 10;

/**
 * A user code of `length` characters of `alphabet`, each drawn uniformly by rejection sampling
 * (randomBelow for alphabets up to 256 characters, crypto.randomInt beyond), so no modulo bias.
 */
export function generateUserCode(alphabet: string, length: number): string {
  if (alphabet.length < 2) throw new Error('a user-code alphabet needs at least 2 characters');
  const n = alphabet.length;
  let code = '';
  for (let i = 0; i < length; i++) code += alphabet[n <= 256 ? randomBelow(n) : randomInt(n)];
  return code;
}

/** How a code is shown: with a dash in the middle once it is long enough to be worth splitting. */
export function formatUserCode(code: string): string {
  if (code.length < 6) return code;
  const half = Math.ceil(code.length / 2);
  return `${code.slice(0, half)}-${code.slice(half)}`;
}

/** A stored code as its device shows it: in the alphabet's own case, with the dash. */
export function displayUserCode(stored: string, alphabet: string): string {
  const lowerOnly = alphabetIsCaseInsensitive(alphabet) && alphabet === alphabet.toLowerCase() && alphabet !== alphabet.toUpperCase();
  return formatUserCode(lowerOnly ? stored.toLowerCase() : stored);
}

/** The stored form of a code: no spaces or dashes, upper-cased when the alphabet has no case. */
export function normalizeUserCode(entered: string, alphabet: string): string {
  const stripped = stripSeparators(entered);
  return alphabetIsCaseInsensitive(alphabet) ? stripped.toUpperCase() : stripped;
}

/** Spaces (of any kind) and dashes are decoration on entry (RFC 8628 §6.1). */
export function stripSeparators(entered: string): string {
  return entered.replace(/[\s\-\u2010-\u2015\u2212]/gu, '');
}

/** Every attempt drew a user code that is already taken: the provider's code space is too crowded. */
export class UserCodeSpaceExhaustedError extends Error {
  constructor(readonly attempts: number) {
    super(`no free user code after ${attempts} attempts`);
    this.name = 'UserCodeSpaceExhaustedError';
  }
}

export interface StartInput {
  provider: Provider;
  client: Pick<Client, 'clientId'>;
  scopes: readonly string[];
  codeChallenge: string | null;
  codeChallengeMethod: 'S256' | 'plain' | null;
  /** RFC 8707 resources, applied when the code is exchanged. */
  audience?: readonly string[];
  /** RFC 9449 dpop_jkt: the exchanging poll must carry a proof by this key. */
  dpopJkt?: string | null;
}

export interface StartedAuthorization {
  /** The secret the device polls with; only its hash is stored. */
  deviceCode: string;
  /** As shown to the user (may carry a dash). */
  userCode: string;
  authorization: DeviceAuthorization;
}

export type PollResult =
  | { kind: 'expired' }
  | { kind: 'slow_down'; intervalSeconds: number }
  | { kind: 'denied' }
  | { kind: 'pending' }
  | { kind: 'invalid'; detail: string }
  | { kind: 'approved'; authorization: DeviceAuthorization };

export type UserCodeLookup =
  | { kind: 'unknown' }
  | { kind: 'expired'; authorization: DeviceAuthorization }
  /** Already approved, denied or exchanged. */
  | { kind: 'decided'; authorization: DeviceAuthorization }
  | { kind: 'pending'; authorization: DeviceAuthorization };

export type DecideResult =
  | { kind: 'decided'; authorization: DeviceAuthorization }
  | { kind: 'expired' }
  | { kind: 'already_decided' };

export interface DeviceFlowStore extends Pick<Collections, 'deviceAuthorizations' | 'providers'> {
  deviceAuthorizationRepository: DeviceAuthorizationRepository;
}

export class DeviceFlowService {
  constructor(private readonly store: DeviceFlowStore) {}

  /** Creates a pending authorization with a fresh device code and a user code unique among stored codes. */
  async start(input: StartInput, now = new Date()): Promise<StartedAuthorization> {
    const settings = input.provider.deviceFlow;
    const alphabet = userCodeAlphabet(settings);
    for (let attempt = 1; ; attempt++) {
      const deviceCode = generateSecret();
      const userCode = generateUserCode(alphabet, settings.userCodeLength);
      const authorization: DeviceAuthorization = {
        // Time-ordered: the id index grows at its end (time-ordered-id.ts); the code hashes are random anyway.
        id: timeOrderedUuid(),
        deviceCodeHash: sha256Hex(deviceCode),
        userCode: normalizeUserCode(userCode, alphabet),
        clientId: input.client.clientId,
        providerId: input.provider.id,
        scopes: [...input.scopes],
        codeChallenge: input.codeChallenge,
        codeChallengeMethod: input.codeChallenge ? input.codeChallengeMethod ?? 'plain' : null,
        ...(input.audience && input.audience.length > 0 ? { audience: [...input.audience] } : {}),
        ...(input.dpopJkt ? { dpopJkt: input.dpopJkt } : {}),
        status: 'pending',
        intervalSeconds: answeredPollInterval(settings),
        nextPollAt: null,
        userId: null,
        decidedAt: null,
        expiresAt: new Date(now.getTime() + settings.codeLifetimeSeconds * 1000),
        createdAt: now,
      };
      try {
        // The unique index on userCode decides uniqueness, also between processes.
        await this.store.deviceAuthorizations.insert(authorization);
        return { deviceCode, userCode: formatUserCode(userCode), authorization };
      } catch (error) {
        if (!(error instanceof ConflictError)) throw error;
        if (attempt >= MAX_INSERT_ATTEMPTS) throw new UserCodeSpaceExhaustedError(attempt);
      }
    }
  }

  /** The authorization a device code belongs to, or null. */
  findByDeviceCode(deviceCode: string): Promise<DeviceAuthorization | null> {
    if (deviceCode.length === 0 || deviceCode.length > 512) return Promise.resolve(null);
    return this.store.deviceAuthorizations.findOne({ deviceCodeHash: sha256Hex(deviceCode) });
  }

  /**
   * One poll of the token endpoint, after the caller has checked the client and PKCE. In RFC 8628
   * §3.5 order: expired_token, slow_down, access_denied, authorization_pending, then 'approved',
   * after which the caller runs its last checks and calls exchange(), which only one poll can win.
   */
  async poll(authorization: DeviceAuthorization, now = Date.now()): Promise<PollResult> {
    if (authorization.status === 'exchanged') return { kind: 'invalid', detail: 'the device code was already exchanged' };
    if (authorization.expiresAt.getTime() <= now) return { kind: 'expired' };
    const outcome = await this.store.deviceAuthorizationRepository.recordPoll(authorization, now);
    if (outcome.kind === 'unknown') return { kind: 'invalid', detail: 'the device authorization disappeared' };
    if (outcome.kind === 'too_soon') return { kind: 'slow_down', intervalSeconds: outcome.authorization.intervalSeconds };
    const current = outcome.authorization;
    switch (current.status) {
      case 'denied':
        return { kind: 'denied' };
      case 'pending':
        return { kind: 'pending' };
      case 'exchanged':
        return { kind: 'invalid', detail: 'the device code was already exchanged' };
      case 'approved':
        return { kind: 'approved', authorization: current };
    }
  }

  /**
   * approved → exchanged: the one step that lets tokens out. Only one caller ever gets the
   * authorization back, however many polls race on however many processes.
   */
  exchange(authorization: DeviceAuthorization): Promise<DeviceAuthorization | null> {
    return this.store.deviceAuthorizationRepository.markExchanged(authorization.id);
  }

  /**
   * Finds what a person typed. Codes are stored normalised for their provider's alphabet; the
   * entry is tried as typed (without separators) and upper-cased, and an upper-cased match only
   * counts where that provider's alphabet has no case.
   */
  async findByUserCode(entered: string, now = Date.now()): Promise<UserCodeLookup> {
    if (entered.length === 0 || entered.length > MAX_USER_CODE_ENTRY) return { kind: 'unknown' };
    const stripped = stripSeparators(entered);
    if (stripped.length === 0) return { kind: 'unknown' };
    const candidates = [...new Set([stripped, stripped.toUpperCase()])];
    const found = await this.store.deviceAuthorizations.find({ userCode: { $in: candidates } });
    let match: DeviceAuthorization | null = found.find((a) => a.userCode === stripped) ?? null;
    if (!match) {
      for (const candidate of found) {
        const provider = await this.store.providers.findOne({ id: candidate.providerId });
        if (provider && normalizeUserCode(stripped, userCodeAlphabet(provider.deviceFlow)) === candidate.userCode) {
          match = candidate;
          break;
        }
      }
    }
    if (!match) return { kind: 'unknown' };
    if (match.status !== 'pending') return { kind: 'decided', authorization: match };
    if (match.expiresAt.getTime() <= now) return { kind: 'expired', authorization: match };
    return { kind: 'pending', authorization: match };
  }

  /** The user's decision, once, and only before expiry. */
  async decide(authorization: DeviceAuthorization, decision: 'allow' | 'deny', userId: string, now = new Date()): Promise<DecideResult> {
    const decided = await this.store.deviceAuthorizationRepository.decide(authorization.id, decision === 'allow' ? 'approved' : 'denied', userId, now);
    if (decided) return { kind: 'decided', authorization: decided };
    const fresh = await this.store.deviceAuthorizations.findOne({ id: authorization.id });
    // Still pending after a failed conditional update means the condition that failed was expiry.
    return fresh && fresh.status === 'pending' ? { kind: 'expired' } : { kind: 'already_decided' };
  }
}
