/**
 * PKCE (RFC 7636) for the device flow: the challenge is checked when the device asks for codes,
 * the verifier when it polls. A verifier never matches by accident: S256 compares SHA-256 digests,
 * plain compares the strings, both in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { OAuthError } from './errors.js';

export type CodeChallengeMethod = 'S256' | 'plain';

/** RFC 7636 §4.1/§4.2: 43–128 characters of [A-Z a-z 0-9 - . _ ~]. */
const CODE_VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;
/** A S256 challenge is the base64url of a SHA-256 digest: exactly 43 characters. */
const S256_CHALLENGE = /^[A-Za-z0-9\-_]{43}$/;

export interface PkceChallenge {
  codeChallenge: string;
  codeChallengeMethod: CodeChallengeMethod;
}

/** Validates the challenge a device sends; null when it sent none. Throws invalid_request on bad input. */
export function parseCodeChallenge(challenge: string | undefined, method: string | undefined): PkceChallenge | null {
  if (challenge === undefined || challenge === '') {
    if (method !== undefined && method !== '') throw new OAuthError('invalid_request', 'code_challenge_method was sent without a code_challenge');
    return null;
  }
  const codeChallengeMethod = method === undefined || method === '' ? 'plain' : method;
  if (codeChallengeMethod !== 'S256' && codeChallengeMethod !== 'plain') {
    throw new OAuthError('invalid_request', "code_challenge_method must be 'S256' or 'plain'");
  }
  const valid = codeChallengeMethod === 'S256' ? S256_CHALLENGE.test(challenge) : CODE_VERIFIER.test(challenge);
  if (!valid) {
    throw new OAuthError(
      'invalid_request',
      codeChallengeMethod === 'S256'
        ? 'code_challenge must be the base64url SHA-256 of the verifier (43 characters)'
        : 'a plain code_challenge must be 43–128 characters of A-Z a-z 0-9 - . _ ~',
    );
  }
  return { codeChallenge: challenge, codeChallengeMethod };
}

export function s256(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

/** Whether `verifier` answers the stored challenge. */
export function verifierMatches(verifier: string, challenge: PkceChallenge): boolean {
  if (!CODE_VERIFIER.test(verifier)) return false;
  const expected = Buffer.from(challenge.codeChallenge, 'ascii');
  const actual = Buffer.from(challenge.codeChallengeMethod === 'S256' ? s256(verifier) : verifier, 'ascii');
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
