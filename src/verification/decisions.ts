/**
 * What the page and the JSON form share: finding an entered code under the brute-force limit,
 * recording the user's decision once, and the events it leaves.
 */
import type { Services } from '../domain/services.js';
import type { DeviceAuthorization, User } from '../domain/model.js';
import { deviceFlowFor, type DecideResult, type UserCodeLookup } from '../domain/device-flow.js';
import { deviceFlowOutcomes } from '../telemetry/metrics.js';
import type { RateLimitSubject, WrongUserCodeLimiter } from '../domain/rate-limits.js';

export type LimitedLookup = UserCodeLookup | { kind: 'limited'; retryAfterSeconds: number };

/** Looks the code up unless the subject is over its limit; an unknown code counts against it. */
export async function lookupUserCode(
  services: Services, limiter: WrongUserCodeLimiter, entered: string, subject: RateLimitSubject,
): Promise<LimitedLookup> {
  const before = await limiter.check(subject);
  if (before.limited) return { kind: 'limited', retryAfterSeconds: before.retryAfterSeconds };
  const found = await deviceFlowFor(services.store).findByUserCode(entered);
  if (found.kind === 'unknown') {
    const after = await limiter.recordWrongCode(subject);
    if (after.limited) return { kind: 'limited', retryAfterSeconds: after.retryAfterSeconds };
  }
  return found;
}

export async function recordDecision(
  services: Services,
  input: { authorization: DeviceAuthorization; user: User; decision: 'allow' | 'deny'; requestId: string; via: 'page' | 'json' },
): Promise<DecideResult> {
  const result = await deviceFlowFor(services.store).decide(input.authorization, input.decision, input.user.id);
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
