/**
 * Scheduled key rotation (a provider's keyRotationDays). Every process runs the scheduler; which
 * one rotates is decided in the store (SigningKeyService.rotate promotes the NEXT key only where
 * it is still NEXT, and only while the CURRENT key the tick read still signs), so a rotation that
 * is due happens once across processes. A NEXT key signs only after NEXT_KEY_PUBLICATION_MS, so a
 * resource server holding a JWKS fetched a max-age ago already has it.
 */
import type { Logger } from 'pino';
import type { Provider, SigningKey } from './model.js';
import { keyState, NEXT_KEY_PUBLICATION_MS, type Clock, type SigningKeyService } from './keys.js';
import type { Collections } from '../store/ports.js';

const DAY_MS = 86_400_000;
export const KEY_ROTATION_TICK_MS = 60_000;

/** Whether the provider's scheduled rotation is due now: the id of the CURRENT key to rotate away from, or null. */
export function dueRotation(provider: Provider, records: readonly SigningKey[], now: number): string | null {
  if (!provider.keyRotationDays) return null;
  const { currents, next } = keyState(records, now);
  const current = currents[0];
  if (!current || !next) return null;
  const since = (current.activatedAt ?? current.createdAt).getTime();
  if (now < since + provider.keyRotationDays * DAY_MS) return null;
  if (now < next.createdAt.getTime() + NEXT_KEY_PUBLICATION_MS) return null;
  return current.id;
}

export class KeyRotationScheduler {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly collections: Pick<Collections, 'providers' | 'signingKeys'>,
    private readonly keys: SigningKeyService,
    private readonly clock: Clock,
    /** Called for each rotation this process made (the audit event). */
    private readonly onRotated: (provider: Provider) => void,
    private readonly logger?: Logger,
  ) {}

  start(intervalMs = KEY_ROTATION_TICK_MS): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.running = this.tick().catch((error: unknown) => this.logger?.error({ err: error }, 'scheduled key rotation failed'));
    }, intervalMs);
    this.timer.unref();
  }

  /** Stops ticking and waits for a tick under way. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /**
   * One pass: retired PREVIOUS keys are marked, a provider whose keys a failure left unsettled
   * (two CURRENT keys, no NEXT key) is settled, and every provider whose rotation is due rotates.
   * Returns the rotations made here.
   */
  async tick(): Promise<number> {
    await this.keys.sweep();
    const now = this.clock();
    const live = await this.collections.signingKeys.find({ status: { $in: ['NEXT', 'CURRENT'] } });
    const byProvider = new Map<string, SigningKey[]>();
    for (const record of live) byProvider.set(record.providerId, [...(byProvider.get(record.providerId) ?? []), record]);
    let rotated = 0;
    for (const provider of await this.collections.providers.find({})) {
      const records = byProvider.get(provider.id) ?? [];
      const { currents, next } = keyState(records, now);
      if (currents.length > 1 || (currents.length === 1 && (!next || next.algorithm !== currents[0]!.algorithm))) {
        await this.keys.settle(provider.id);
        this.keys.invalidate(provider.id);
        continue;
      }
      const current = dueRotation(provider, records, now);
      if (current && (await this.keys.rotate(provider.id, current))) {
        rotated += 1;
        this.onRotated(provider);
      }
    }
    return rotated;
  }
}
