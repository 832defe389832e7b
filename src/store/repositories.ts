/**
 * The rules that must hold across server processes, each decided by one conditional update in
 * the store (never by process memory), so two nodes racing on one record cannot both win.
 */
import type { DeviceAuthorization, RefreshToken } from '../domain/model.js';
import type { Collections } from './ports.js';

export type PollOutcome =
  | { kind: 'accepted'; authorization: DeviceAuthorization }
  | { kind: 'too_soon'; authorization: DeviceAuthorization }
  | { kind: 'unknown' };

export class DeviceAuthorizationRepository {
  constructor(private readonly collections: Pick<Collections, 'deviceAuthorizations'>) {}

  /**
   * Records a poll (RFC 8628 §3.5). The first poll is never too early. A poll before `nextPollAt`
   * is answered slow_down: it adds 5 s to the interval and pushes `nextPollAt` by the same, without
   * counting as a poll itself, so the clock keeps running from the last poll that was accepted.
   */
  async recordPoll(current: DeviceAuthorization, now: number): Promise<PollOutcome> {
    const col = this.collections.deviceAuthorizations;
    let { intervalSeconds } = current;
    const { id } = current;
    // Each round either wins or sees the record change under it (a concurrent slow_down, an accepted
    // poll); a handful of rounds is plenty, and the bound keeps a malformed record from looping forever.
    for (let round = 0; round < 5; round++) {
      // The interval is part of the condition: if a concurrent slow_down changed it, read again.
      const accepted = await col.updateOne(
        { id, intervalSeconds, $or: [{ nextPollAt: null }, { nextPollAt: { $lte: now } }] },
        { $set: { nextPollAt: now + intervalSeconds * 1000 } },
      );
      if (accepted) return { kind: 'accepted', authorization: accepted };
      const slowed = await col.updateOne({ id, nextPollAt: { $gt: now } }, { $inc: { intervalSeconds: 5, nextPollAt: 5000 } });
      if (slowed) return { kind: 'too_soon', authorization: slowed };
      const fresh = await col.findOne({ id });
      if (!fresh) return { kind: 'unknown' };
      intervalSeconds = fresh.intervalSeconds;
    }
    throw new Error(`device authorization ${id}: could not record a poll (nextPollAt ${String(current.nextPollAt)})`);
  }

  /** approved → exchanged, exactly once. */
  async markExchanged(id: string): Promise<DeviceAuthorization | null> {
    return this.collections.deviceAuthorizations.updateOne({ id, status: 'approved' }, { $set: { status: 'exchanged' } });
  }

  /** pending → approved/denied, once, and only before expiry. */
  async decide(id: string, decision: 'approved' | 'denied', userId: string, now: Date): Promise<DeviceAuthorization | null> {
    return this.collections.deviceAuthorizations.updateOne(
      { id, status: 'pending', expiresAt: { $gt: now } },
      { $set: { status: decision, userId, decidedAt: now } },
    );
  }
}

export class RefreshTokenRepository {
  constructor(private readonly collections: Pick<Collections, 'refreshTokens'>) {}

  /** Spends a refresh token, exactly once; null when it was already spent, revoked or expired. */
  async spend(tokenHash: string, now: Date): Promise<RefreshToken | null> {
    return this.collections.refreshTokens.updateOne(
      { tokenHash, usedAt: null, revokedAt: null, expiresAt: { $gt: now } },
      { $set: { usedAt: now } },
    );
  }

  async revokeFamily(familyId: string, now: Date): Promise<number> {
    return this.collections.refreshTokens.updateMany({ familyId, revokedAt: null }, { $set: { revokedAt: now } });
  }
}
