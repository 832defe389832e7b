/**
 * Hand-made DPoP proofs (RFC 9449 §4.2) for the refusal tests: a good proof by default, and every
 * part overridable (header, claims, the signing key), so each test breaks exactly one rule.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTHeaderParameters } from 'jose';
import { accessTokenHash } from '../../src/domain/dpop.js';

export interface ProofKey {
  alg: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export async function proofKey(alg = 'ES256'): Promise<ProofKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { alg, privateKey, publicJwk: await exportJWK(publicKey) };
}

export interface ProofOptions {
  htm?: string;
  htu: string;
  /** The access token whose hash goes into ath. */
  accessToken?: string;
  nonce?: string;
  /** Seconds from now. */
  iatOffset?: number;
  jti?: string;
  /** Replaces claims (undefined removes one). */
  claims?: Record<string, unknown>;
  /** Merged into the protected header (jwk, typ, alg...). */
  header?: Partial<JWTHeaderParameters> & Record<string, unknown>;
  /** Signs with this key instead (the header still shows `key`'s jwk unless overridden). */
  signWith?: CryptoKey;
}

export async function makeProof(key: ProofKey, options: ProofOptions): Promise<string> {
  const claims: Record<string, unknown> = {
    htm: options.htm ?? 'POST',
    htu: options.htu,
    iat: Math.floor(Date.now() / 1000) + (options.iatOffset ?? 0),
    jti: options.jti ?? randomUUID(),
    ...(options.accessToken !== undefined ? { ath: accessTokenHash(options.accessToken) } : {}),
    ...(options.nonce !== undefined ? { nonce: options.nonce } : {}),
  };
  for (const [name, value] of Object.entries(options.claims ?? {})) {
    if (value === undefined) delete claims[name];
    else claims[name] = value;
  }
  const header = { alg: key.alg, typ: 'dpop+jwt', jwk: key.publicJwk, ...options.header } as JWTHeaderParameters;
  return new SignJWT(claims).setProtectedHeader(header).sign(options.signWith ?? key.privateKey);
}

/** A compact JWS with any header and payload, unsigned (for alg none and other shapes jose will not sign). */
export function rawJws(header: Record<string, unknown>, payload: Record<string, unknown>, signature = ''): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part(header)}.${part(payload)}.${signature}`;
}
