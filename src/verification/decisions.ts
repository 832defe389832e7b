/**
 * What the page and the JSON form share: finding an entered code under the brute-force limit,
 * recording the user's decision once, and the events it leaves.
 */
import type { Services } from '../domain/services.js';
import type { DeviceAuthorization, User } from '../domain/model.js';
import { type DecideResult, type UserCodeLookup } from '../domain/device-flow.js';
import { deviceFlowOutcomes } from '../telemetry/metrics.js';
import type { RateLimitSubject, WrongUserCodeLimiter } from '../domain/rate-limits.js';

/** What this module uses of the services. */
type ServicesUsed = Pick<Services, 'deviceFlow' | 'events'>;

export type LimitedLookup = UserCodeLookup | { kind: 'limited'; retryAfterSeconds: number };

/**
 * Looks the code up unless the subject is over its limit. Each entry counts as wrong before the
 * lookup (so parallel guesses cannot all pass one check) and is given back when the code exists.
 */
export async function lookupUserCode(
  services: ServicesUsed, limiter: WrongUserCodeLimiter, entered: string, subject: RateLimitSubject,
): Promise<LimitedLookup> {
  const verdict = await limiter.consume(subject);
  if (verdict.limited) return { kind: 'limited', retryAfterSeconds: verdict.retryAfterSeconds };
  const found = await services.deviceFlow.findByUserCode(entered);
  if (found.kind !== 'unknown') await limiter.refund(subject);
  return found;
}

export async function recordDecision(
  services: ServicesUsed,
  input: { authorization: DeviceAuthorization; user: User; decision: 'allow' | 'deny'; requestId: string; via: 'page' | 'json' },
): Promise<DecideResult> {
  const result = await services.deviceFlow.decide(input.authorization, input.decision, input.user.id);
  if (result.kind === 'decided') {
    deviceFlowOutcomes.inc({ outcome: input.decision === 'allow' ? 'approved' : 'denied' });
    services.events.record({
      action: input.decision === 'allow' ? 'DEVICE_AUTHORIZED' : 'DEVICE_DENIED',
      requestId: input.requestId,
      clientId: result.authorization.clientId,
      username: input.user.username,
      context: {
        deviceAuthorizationId: result.authorization.id, providerId: result.authorization.providerId,
        scope: result.authorization.scopes.join(' '), via: input.via,
      },
    });
  }
  return result;
}
