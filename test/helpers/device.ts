/** Small steps of the device flow over HTTP, shared by the device-flow test files. */
import { postForm, type TestServer } from './server.js';
import type { DeviceAuthorizationResponse } from '../../src/oauth/device-authorization.js';

export const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

export interface FormAnswer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

/** The device authorization response, as the endpoint declares it. */
export type DeviceCodes = DeviceAuthorizationResponse;

export function deviceAuthorization(test: TestServer, form: Record<string, string>, headers: Record<string, string> = {}, query = ''): Promise<FormAnswer> {
  return postForm(`${test.url}/application/o/device/${query}`, form, headers);
}

export async function startDevice(test: TestServer, clientId: string, form: Record<string, string> = {}): Promise<DeviceCodes> {
  const answer = await deviceAuthorization(test, { client_id: clientId, ...form });
  if (answer.status !== 200) throw new Error(`device authorization failed: ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body as unknown as DeviceCodes;
}

export function poll(test: TestServer, clientId: string, deviceCode: string, extra: Record<string, string> = {}, headers: Record<string, string> = {}): Promise<FormAnswer> {
  return postForm(`${test.url}/application/o/token/`, { grant_type: DEVICE_GRANT, client_id: clientId, device_code: deviceCode, ...extra }, headers);
}

/** HTTP Basic as RFC 7617 has it (no URL encoding), the way people's credentials are sent. */
export function userBasic(username: string, secret: string): string {
  return `Basic ${Buffer.from(`${username}:${secret}`, 'utf8').toString('base64')}`;
}

/** The JSON form of POST /device. */
export function decide(test: TestServer, username: string, secret: string, userCode: string, decision: 'allow' | 'deny' | string): Promise<FormAnswer> {
  return postForm(`${test.url}/device`, { user_code: userCode, decision }, { accept: 'application/json', authorization: userBasic(username, secret) });
}

export function tokenRequest(test: TestServer, form: Record<string, string>, headers: Record<string, string> = {}): Promise<FormAnswer> {
  return postForm(`${test.url}/application/o/token/`, form, headers);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The payload of a JWT, unverified (tests verify signatures where that is the point). */
export function jwtPayload(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

export function jwtHeader(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}
