/**
 * A small device (a TV, a CLI) signing its user in with the device flow against a running Tessera.
 *
 *   npm run example:device -- [url] [client_id] [scope]
 *   TESSERA_URL=http://localhost:9000 TESSERA_CLIENT_ID=... TESSERA_SCOPE="openid profile" npm run example:device
 *
 * TESSERA_CLIENT_SECRET is sent with HTTP Basic when the client is confidential. The device uses
 * PKCE (S256), prints the code and a QR code of verification_uri_complete, polls no faster than the
 * server's interval (and 5 s slower after each slow_down, RFC 8628 §3.5), then prints the claims.
 *
 * With TESSERA_DPOP=1 (or --dpop) the device holds an ES256 key pair in memory only and binds
 * everything to it (RFC 9449): the device code (dpop_jkt), the access token (cnf.jkt) and the
 * refresh token. Every token request and the userinfo call carry a proof it signs; a copied token
 * is useless without the key. It follows use_dpop_nonce when the provider asks for nonces.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import qrcode from 'qrcode-terminal';
import { SignJWT, calculateJwkThumbprint, createRemoteJWKSet, decodeJwt, exportJWK, generateKeyPair, jwtVerify, type JWK } from 'jose';

interface DeviceAuthorization {
  device_code: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete?: string;
  expires_in: number;
  interval?: number;
}

interface OAuthAnswer {
  error?: string;
  error_description?: string;
  access_token?: string;
  id_token?: string;
  refresh_token?: string;
  scope?: string;
  expires_in?: number;
  token_type?: string;
}

const dpopFlag = process.argv.includes('--dpop');
const [argUrl, argClient, argScope] = process.argv.slice(2).filter((arg) => arg !== '--dpop');
const baseUrl = (argUrl ?? process.env.TESSERA_URL ?? 'http://localhost:9000').replace(/\/+$/, '');
const clientId = argClient ?? process.env.TESSERA_CLIENT_ID;
const scope = argScope ?? process.env.TESSERA_SCOPE ?? 'openid profile email';
const clientSecret = process.env.TESSERA_CLIENT_SECRET;
const useDpop = dpopFlag || process.env.TESSERA_DPOP === '1';

/** The device's DPoP key: made at start, never written anywhere (the private key is not even extractable). */
const dpopKey = useDpop ? await generateKeyPair('ES256') : null;
const dpopJwk: JWK | null = dpopKey ? await exportJWK(dpopKey.publicKey) : null;
/** The server's latest DPoP-Nonce, when its provider asks for nonces (RFC 9449 §8). */
let dpopNonce: string | undefined;

/** A proof for one request (RFC 9449 §4.2); `accessToken` adds ath, for a resource. */
function dpopProof(method: string, url: string, accessToken?: string): Promise<string> {
  const claims: Record<string, unknown> = { htm: method, htu: url, iat: Math.floor(Date.now() / 1000), jti: randomUUID() };
  if (accessToken) claims.ath = createHash('sha256').update(accessToken).digest('base64url');
  if (dpopNonce) claims.nonce = dpopNonce;
  return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: dpopJwk! }).sign(dpopKey!.privateKey);
}

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

if (!clientId) fail('usage: npm run example:device -- <url> <client_id> [scope]   (or TESSERA_URL, TESSERA_CLIENT_ID, TESSERA_SCOPE)');

/** Client authentication: Basic with the secret when there is one, else client_id in the body. */
function clientAuth(form: URLSearchParams): Record<string, string> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  if (clientSecret) {
    const encode = (v: string) => encodeURIComponent(v);
    headers.authorization = `Basic ${Buffer.from(`${encode(clientId!)}:${encode(clientSecret)}`).toString('base64')}`;
  } else {
    form.set('client_id', clientId!);
  }
  return headers;
}

async function post(
  path: string, form: URLSearchParams, proof = false,
): Promise<{ status: number; body: OAuthAnswer & Partial<DeviceAuthorization> }> {
  const headers = clientAuth(form);
  // The proof names the URL the server is known by (TESSERA_PUBLIC_URL): give that URL to the example.
  if (proof && dpopKey) headers.dpop = await dpopProof('POST', `${baseUrl}${path}`);
  let response: Response;
  try {
    response = await fetch(`${baseUrl}${path}`, { method: 'POST', headers, body: form.toString() });
  } catch (error) {
    fail(`cannot reach Tessera at ${baseUrl}: ${(error as Error).message}`);
  }
  const text = await response.text();
  let body: OAuthAnswer;
  try {
    body = JSON.parse(text) as OAuthAnswer;
  } catch {
    fail(`unexpected answer from ${path} (HTTP ${response.status}): ${text.slice(0, 200)}`);
  }
  const nonce = response.headers.get('dpop-nonce');
  if (nonce) dpopNonce = nonce;
  // The provider asks for a server nonce: sign again with it (once).
  if (proof && body.error === 'use_dpop_nonce' && nonce) return post(path, form, proof);
  return { status: response.status, body };
}

const sleep = (seconds: number) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

async function main(): Promise<void> {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const startForm = new URLSearchParams({ scope, code_challenge: challenge, code_challenge_method: 'S256' });
  // dpop_jkt binds the device code to this device's key: an intercepted code is useless elsewhere.
  if (dpopJwk) startForm.set('dpop_jkt', await calculateJwkThumbprint(dpopJwk, 'sha256'));
  const started = await post('/application/o/device/', startForm);
  if (started.status !== 200) fail(`device authorization refused: ${started.body.error} – ${started.body.error_description ?? ''}`);
  const codes = started.body as DeviceAuthorization;

  console.log('\nTo sign in, visit');
  console.log(`  ${codes.verification_uri}`);
  console.log('and enter the code');
  console.log(`  ${codes.user_code}\n`);
  if (codes.verification_uri_complete) {
    console.log('or scan this QR code (you will still be asked to confirm the code):\n');
    qrcode.generate(codes.verification_uri_complete, { small: true });
  }

  let interval = codes.interval ?? 5;
  const deadline = Date.now() + codes.expires_in * 1000;
  process.stdout.write('Waiting for you to allow this device');
  while (Date.now() < deadline) {
    await sleep(interval);
    const answer = await post('/application/o/token/', new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: codes.device_code, code_verifier: verifier,
    }), true);
    if (answer.status === 200 && answer.body.access_token) {
      process.stdout.write('\n\n');
      await show(answer.body);
      return;
    }
    switch (answer.body.error) {
      case 'authorization_pending':
        process.stdout.write('.');
        continue;
      case 'slow_down':
        interval += 5;
        process.stdout.write(`\n(asked to slow down: polling every ${interval} s)`);
        continue;
      case 'access_denied':
        fail('\nYou denied the request. Nothing was shared.');
      case 'expired_token':
        fail('\nThe code expired before it was used. Run the example again for a new one.');
      default:
        fail(`\nThe token endpoint said ${answer.body.error}: ${answer.body.error_description ?? ''}`);
    }
  }
  fail('\nThe code expired before it was used. Run the example again for a new one.');
}

async function show(tokens: OAuthAnswer): Promise<void> {
  const claims = decodeJwt(tokens.access_token!);
  console.log(`Signed in. ${tokens.token_type} access token (expires in ${tokens.expires_in} s), scope "${tokens.scope}":`);
  console.log(JSON.stringify(claims, null, 2));
  try {
    // The issuer publishes its keys; check the signature the way a resource server would.
    const discovery = (await (await fetch(`${claims.iss}.well-known/openid-configuration`)).json()) as { jwks_uri: string };
    await jwtVerify(tokens.access_token!, createRemoteJWKSet(new URL(discovery.jwks_uri)), { issuer: claims.iss, typ: 'at+jwt' });
    console.log('Signature verified against the issuer\'s JWKS.');
  } catch (error) {
    console.log(`(Could not verify the signature from ${claims.iss}: ${(error as Error).message})`);
  }
  if (tokens.id_token) {
    console.log('\nID token claims:');
    console.log(JSON.stringify(decodeJwt(tokens.id_token), null, 2));
  }
  if (tokens.refresh_token) console.log('\nA refresh token was issued too (not printed).');
  if (dpopKey) await userinfoWithProof(tokens.access_token!);
}

/** A resource call with a DPoP-bound token: `Authorization: DPoP`, and a proof carrying ath. */
async function userinfoWithProof(accessToken: string): Promise<void> {
  const url = `${baseUrl}/application/o/userinfo/`;
  const response = await fetch(url, { headers: { authorization: `DPoP ${accessToken}`, dpop: await dpopProof('GET', url, accessToken) } });
  console.log(`\nuserinfo with a DPoP proof: HTTP ${response.status}`, await response.text());
  const stolen = await fetch(url, { headers: { authorization: `Bearer ${accessToken}` } });
  console.log(`the same token without the key (as Bearer): HTTP ${stolen.status}, ${stolen.headers.get('www-authenticate')}`);
}

await main();
