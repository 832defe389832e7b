/**
 * Audiences (RFC 8707 resource indicators, RFC 8693 `audience`): what a client may ask a token to
 * be for, and what a request asked. A token's `aud` is the requested values, or the client_id
 * when none were asked (as in version 1), so a resource server checks that `aud` names it.
 */
import { ValidationError } from './errors.js';

export const MAX_ALLOWED_AUDIENCES = 20;
const MAX_AUDIENCE_LENGTH = 512;
/** A value is printable ASCII without spaces: it is compared exactly, so nothing invisible. */
const AUDIENCE = /^[\x21-\x7E]+$/;
const URI_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;

function isAbsoluteUri(value: string): boolean {
  if (!URI_SCHEME.test(value)) return false;
  try {
    new URL(value);
    return true;
  } catch {
    return false;
  }
}

/** The admin's list: absolute URIs or plain strings, at most 20, no duplicates kept. */
export function validateAllowedAudiences(field: string, values: readonly string[]): string[] {
  const unique = [...new Set(values)];
  if (unique.length > MAX_ALLOWED_AUDIENCES) throw new ValidationError(field, `at most ${MAX_ALLOWED_AUDIENCES} audiences`);
  for (const value of unique) {
    if (value.length > MAX_AUDIENCE_LENGTH || !AUDIENCE.test(value)) {
      throw new ValidationError(field, `'${value.slice(0, 64)}' is not an audience: 1–${MAX_AUDIENCE_LENGTH} printable ASCII characters without spaces`);
    }
    // Something that starts like a URI must be one: a typo must not become a plain string no request will match.
    if (URI_SCHEME.test(value) && !isAbsoluteUri(value)) throw new ValidationError(field, `'${value.slice(0, 64)}' is not a valid absolute URI`);
  }
  return unique;
}

/** Why a request's audience was refused (`invalid_target`), with the value for the event log. */
export class AudienceRefused extends Error {
  constructor(readonly description: string, readonly detail: string) {
    super(detail);
    this.name = 'AudienceRefused';
  }
}

/**
 * The audience a request asks for: each `resource` an absolute URI without a fragment (RFC 8707
 * §2), each `audience` any string, every one of them in the client's allowedAudiences.
 */
export function requestedAudience(resources: readonly string[], audiences: readonly string[], allowed: readonly string[]): string[] {
  for (const resource of resources) {
    if (!isAbsoluteUri(resource) || resource.includes('#')) {
      throw new AudienceRefused('each resource must be an absolute URI without a fragment (RFC 8707)', `malformed resource ${JSON.stringify(resource.slice(0, 128))}`);
    }
  }
  const values = [...new Set([...resources, ...audiences])];
  if (values.length > MAX_ALLOWED_AUDIENCES) throw new AudienceRefused(`at most ${MAX_ALLOWED_AUDIENCES} audiences per request`, `${values.length} audiences asked`);
  const refused = values.filter((v) => !allowed.includes(v));
  if (refused.length > 0) {
    throw new AudienceRefused('this client may not ask for that resource or audience', `not in the client's allowedAudiences: ${refused.map((v) => JSON.stringify(v.slice(0, 128))).join(', ')}`);
  }
  return values;
}

/** A later request on the same grant (refresh, device code): narrower or the same, never wider; none asked keeps what was granted. */
export function narrowedAudience(requested: readonly string[], granted: readonly string[], allowed: readonly string[]): string[] {
  if (requested.length === 0) return granted.filter((v) => allowed.includes(v));
  const wider = requested.filter((v) => !granted.includes(v));
  if (wider.length > 0) throw new AudienceRefused('the audience may only narrow', `not granted before: ${wider.map((v) => JSON.stringify(v)).join(', ')}`);
  return [...requested];
}

/** The `aud` claim: one value as a string, several as an array, none as the client_id. */
export function audClaim(audience: readonly string[] | null | undefined, clientId: string): string | string[] {
  if (!audience || audience.length === 0) return clientId;
  return audience.length === 1 ? audience[0]! : [...audience];
}

/** Whether an `aud` claim (string or array) contains the value. */
export function audContains(aud: unknown, value: string): boolean {
  return typeof aud === 'string' ? aud === value : Array.isArray(aud) && aud.includes(value);
}
