/**
 * DPoP proofs (RFC 9449): the one place a proof is checked, for the token endpoint and for the
 * resources (userinfo, the admin API). jose verifies the signature with the proof's embedded
 * public key; the rest is §4.3's list: typ, an asymmetric alg, a public jwk, htm and htu, iat
 * within the window, ath for a presented access token, a server nonce where asked, and a jti used
 * once. "Once" must hold across server processes, so it is decided by a unique key in the store
 * (dpopProofs.jtiHash, kept until the proof could no longer be accepted anyway), never in memory.
 *
 * Server nonces (§8) are not stored: a nonce is the HMAC of a time window under a key derived
 * from TESSERA_SECRET_KEY, so every process computes the same one; the current and the previous
 * window's nonces are accepted.
 */
import { createHash, createHmac, createPublicKey, randomUUID, timingSafeEqual, type JsonWebKey, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, decodeProtectedHeader, errors, jwtVerify, type JWK } from 'jose';
import type { DpopProofRecord } from './model.js';
import type { Collections } from '../store/ports.js';
import { ConflictError } from '../store/errors.js';
import { Memo } from './cache.js';

/** Asymmetric JWS algorithms only (§4.2): never `none`, never an HMAC, whose key would be shared. */
export const DPOP_SIGNING_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const;
/** Seconds a proof's iat may be from the server's clock, either way (contract: 60 s). */
export const PROOF_WINDOW_SECONDS = 60;
/** A proof is a header of a few hundred bytes; anything longer is refused before it is parsed. */
export const MAX_PROOF_LENGTH = 8_192;
/** Nonces rotate this often; one from the previous window is still accepted. */
const NONCE_WINDOW_SECONDS = 300;
/** JWK members that only a private or symmetric key has (RFC 7518 §6). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

export type DpopErrorCode = 'invalid_dpop_proof' | 'use_dpop_nonce';

export class DpopError extends Error {
  constructor(readonly code: DpopErrorCode, readonly description: string, readonly nonce?: string) {
    super(`${code}: ${description}`);
    this.name = 'DpopError';
  }
}

export interface DpopExpectations {
  /** The request's method (htm). */
  method: string;
  /** The request's URL as the client sees it (htu): built from TESSERA_PUBLIC_URL, so it holds behind a proxy. */
  url: string;
  /** The access token presented with the proof: the proof must carry its hash (ath). */
  accessToken?: string;
  /** The provider asks for server nonces. */
  nonceRequired?: boolean;
}

export interface VerifiedProof {
  /** RFC 7638 SHA-256 thumbprint of the proof's key: what a bound token's cnf.jkt names. */
  jkt: string;
  jwk: JWK;
  jti: string;
  iat: number;
}

const invalid = (description: string) => new DpopError('invalid_dpop_proof', description);

/** A proof's protected header, read and its key imported once: a client signs every proof with the same header. */
interface ProofHeader {
  alg: string;
  jwk: JWK;
  key: KeyObject;
  /** Worked out on the first proof that verifies. */
  jkt?: string;
}

/** base64url(SHA-256(token)): the ath claim (§4.2). */
export function accessTokenHash(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/**
 * §4.3 point 9: the htu matches the request's URI ignoring query and fragment, after the
 * normalisation RFC 3986 §6.2.2–6.2.3 describes (WHATWG URL lower-cases the scheme and host,
 * drops a default port and normalises percent-encoding case).
 */
export function sameHtu(htu: string, expected: string): boolean {
  let a: URL;
  let b: URL;
  try {
    a = new URL(htu);
    b = new URL(expected);
  } catch {
    return false;
  }
  return a.protocol === b.protocol && a.host === b.host && a.pathname === b.pathname && a.username === '' && a.password === '';
}

function sameString(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class DpopVerifier {
  private readonly nonceKey: Buffer;
  private nonceMemo: { window: number; current: string; previous: string } | null = null;
  /** By the header's base64url text, which fixes alg and jwk; only headers that passed the checks. */
  private readonly headers = new Memo<ProofHeader>(10_000);

  constructor(private readonly collections: Pick<Collections, 'dpopProofs'>, secretKey: string) {
    // A key of its own, derived from the server secret, so a nonce says nothing about other uses of it.
    this.nonceKey = createHmac('sha256', secretKey).update('tessera dpop nonce key').digest();
  }

  /** The nonce to hand out now (DPoP-Nonce). */
  currentNonce(now = Date.now()): string {
    return this.nonces(now).current;
  }

  private nonces(now: number): { current: string; previous: string } {
    const window = Math.floor(now / 1000 / NONCE_WINDOW_SECONDS);
    if (this.nonceMemo?.window !== window) {
      const of = (w: number) => createHmac('sha256', this.nonceKey).update(String(w)).digest('base64url');
      this.nonceMemo = { window, current: of(window), previous: of(window - 1) };
    }
    return this.nonceMemo;
  }

  /** Checks a proof; throws DpopError with the code to answer. A good proof's jti is spent. */
  async verify(proof: string, expected: DpopExpectations): Promise<VerifiedProof> {
    if (proof.length > MAX_PROOF_LENGTH) throw invalid(`the DPoP proof is longer than ${MAX_PROOF_LENGTH} bytes`);
    if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(proof)) throw invalid('the DPoP proof is not a compact JWS');
    const header = this.headers.get(proof.slice(0, proof.indexOf('.')), () => readHeader(proof));
    let payload: Record<string, unknown>;
    try {
      // jose checks the signature, typ, and that the key is one for alg (type, curve, RSA size).
      ({ payload } = await jwtVerify(proof, header.key, { typ: 'dpop+jwt', algorithms: [header.alg], requiredClaims: ['jti', 'htm', 'htu', 'iat'] }));
    } catch (error) {
      const reason = error instanceof errors.JOSEError ? error.code : 'unreadable';
      throw invalid(`the DPoP proof does not verify (${reason})`);
    }
    const { jti, htm, htu, iat } = payload;
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) throw invalid('the DPoP proof needs a jti');
    if (htm !== expected.method) throw invalid('the DPoP proof is for another HTTP method (htm)');
    if (typeof htu !== 'string' || !sameHtu(htu, expected.url)) throw invalid('the DPoP proof is for another URL (htu)');
    if (typeof iat !== 'number' || !Number.isFinite(iat)) throw invalid('the DPoP proof needs a numeric iat');
    const now = Date.now();
    if (Math.abs(now / 1000 - iat) > PROOF_WINDOW_SECONDS) throw invalid(`the DPoP proof's iat is not within ${PROOF_WINDOW_SECONDS} s of the server's clock`);
    if (expected.accessToken !== undefined) {
      if (typeof payload.ath !== 'string') throw invalid('the DPoP proof must carry ath, the hash of the access token');
      if (!sameString(payload.ath, accessTokenHash(expected.accessToken))) throw invalid('the DPoP proof is for another access token (ath)');
    }
    if (expected.nonceRequired) {
      const { current, previous } = this.nonces(now);
      const nonce = payload.nonce;
      if (typeof nonce !== 'string' || !(sameString(nonce, current) || sameString(nonce, previous))) {
        throw new DpopError('use_dpop_nonce', 'the DPoP proof must carry the server nonce given in DPoP-Nonce', current);
      }
    }
    const jkt = (header.jkt ??= await calculateJwkThumbprint(header.jwk, 'sha256'));
    await this.spend(jkt, jti, iat);
    return { jkt, jwk: header.jwk, jti, iat };
  }

  /** The jti's one use, decided by the store's unique key (so it holds across processes). */
  private async spend(jkt: string, jti: string, iat: number): Promise<void> {
    const record: DpopProofRecord = {
      id: randomUUID(),
      jtiHash: createHash('sha256').update(`${jkt}.${jti}`).digest('hex'),
      // Past iat + window the proof is refused by its iat; a margin covers clock differences between processes.
      expiresAt: new Date((iat + PROOF_WINDOW_SECONDS + 5) * 1000),
      createdAt: new Date(),
    };
    try {
      await this.collections.dpopProofs.insert(record);
    } catch (error) {
      if (error instanceof ConflictError) throw invalid('the DPoP proof was used before (jti)');
      throw error;
    }
  }
}

/** typ, alg and jwk, checked before the key is imported: a private or symmetric key is refused as such. */
function readHeader(proof: string): ProofHeader {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(proof);
  } catch {
    throw invalid('the DPoP proof header is not JSON');
  }
  if (header.typ !== 'dpop+jwt') throw invalid('the DPoP proof must have typ dpop+jwt');
  if (typeof header.alg !== 'string' || !(DPOP_SIGNING_ALGORITHMS as readonly string[]).includes(header.alg)) {
    throw invalid(`the DPoP proof's alg must be one of ${DPOP_SIGNING_ALGORITHMS.join(', ')}`);
  }
  const jwk = header.jwk;
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw invalid('the DPoP proof must carry its public key in jwk');
  if (jwk.kty === 'oct' || PRIVATE_MEMBERS.some((member) => member in jwk)) throw invalid("the DPoP proof's jwk must be a public key");
  // RFC 7517 §4.2, §4.4: a key that says what it is for must say signing, with this algorithm.
  if ((jwk.use !== undefined && jwk.use !== 'sig') || (jwk.alg !== undefined && jwk.alg !== header.alg)) throw invalid("the DPoP proof's jwk is not for signing with its alg");
  let key: KeyObject;
  try {
    key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
  } catch {
    throw invalid("the DPoP proof's jwk is not a valid public key");
  }
  return { alg: header.alg, jwk, key };
}
