/**
 * Signing in on the /device page and its JSON form, under the failed-sign-in limits: the attempt
 * is counted before the password is checked (so parallel guesses cannot all pass one check) and
 * given back when it succeeds, or when it was never checked because too many verifications were
 * already running.
 */
import type { User } from '../domain/model.js';
import type { FailedSignInLimiter, SignInAttempt } from '../domain/rate-limits.js';
import { OverloadedError } from '../domain/concurrency.js';

export type SignInOutcome =
  | { kind: 'signed_in'; user: User }
  | { kind: 'failed' }
  /** Over a failed-sign-in limit (this username or this address). */
  | { kind: 'limited'; retryAfterSeconds: number }
  /** Too many password verifications in progress on this server: not checked, not counted. */
  | { kind: 'busy'; retryAfterSeconds: number };

export async function limitedSignIn(
  signIns: FailedSignInLimiter, attempt: SignInAttempt, verify: () => Promise<User | null>,
): Promise<SignInOutcome> {
  const verdict = await signIns.consume(attempt);
  if (verdict.limited) return { kind: 'limited', retryAfterSeconds: verdict.retryAfterSeconds };
  let user: User | null;
  try {
    user = await verify();
  } catch (error) {
    if (!(error instanceof OverloadedError)) throw error;
    await signIns.refund(attempt);
    return { kind: 'busy', retryAfterSeconds: 1 };
  }
  if (!user) return { kind: 'failed' };
  await signIns.refund(attempt);
  return { kind: 'signed_in', user };
}
