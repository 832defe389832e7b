/** Keys for the JWTs that federated-source tests sign, and a host that publishes them. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { unique } from './seed.js';

export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export interface SigningKey { kid: string; privateKey: CryptoKey; publicJwk: JWK; alg: string }

/** ES256 by default: fast to generate (an RSA key takes a while on a busy machine). */
export async function signingKey(alg = 'ES256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = unique('kid');
  return { kid, privateKey, alg, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

/** A local HTTP server on a free loopback port, for stand-in issuers and key hosts. */
export class LoopbackServer {
  url = '';
  private readonly server: http.Server;

  constructor(handler: http.RequestListener) {
    this.server = http.createServer(handler);
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Serves `keys` as a JWKS (on every path) from a local HTTP server. */
export class JwksHost extends LoopbackServer {
  keys: JWK[] = [];

  constructor() {
    super((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: this.keys }));
    });
  }
}
