/**
 * DPoP proofs for the benchmark's DPoP scenario: one ES256 key per target (as one CLI or device
 * holds one), proofs signed with jose ahead of each run, since each request needs a fresh jti and
 * a proof is accepted only within 60 s of its iat. Signing ahead keeps the load generator's cost
 * per request the same for both targets (a header taken from a list).
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import type { ProofPool } from './lib.js';

/** At least this many proofs per run; more when the last run used more. */
const MIN_PROOFS = 20_000;

export async function dpopProofPool(htu: string): Promise<ProofPool> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk: JWK = await exportJWK(publicKey);
  let proofs: string[] = [];
  let next = 0;
  const sign = (key: CryptoKey, iat: number) =>
    new SignJWT({ htm: 'POST', htu, iat, jti: randomUUID() }).setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk }).sign(key);
  return {
    async refill(seconds: number) {
      // Enough for the last run's pace with room to spare; never reused (a reused proof is a replay).
      const wanted = Math.max(MIN_PROOFS, Math.ceil((next / Math.max(seconds, 1)) * seconds * 1.5));
      const iat = Math.floor(Date.now() / 1000);
      const fresh: string[] = [];
      for (let i = 0; i < wanted; i += 1_000) {
        fresh.push(...(await Promise.all(Array.from({ length: Math.min(1_000, wanted - i) }, () => sign(privateKey, iat)))));
      }
      proofs = fresh;
      next = 0;
    },
    next() {
      if (next >= proofs.length) throw new Error(`the DPoP proof pool ran out after ${proofs.length} proofs`);
      return proofs[next++]!;
    },
  };
}
