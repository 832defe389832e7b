/**
 * The audience of a request (RFC 8707 `resource`, RFC 8693 `audience`) as the OAuth endpoints
 * answer it: the domain's checks (domain/audiences.ts), a refusal as invalid_target.
 */
import { AudienceRefused, narrowedAudience, requestedAudience } from '../domain/audiences.js';
import type { Client } from '../domain/model.js';
import { allValues, type FormParams } from '../http/body.js';
import { OAuthError } from './errors.js';

function answered<T>(decide: () => T): T {
  try {
    return decide();
  } catch (error) {
    if (error instanceof AudienceRefused) throw new OAuthError('invalid_target', error.description, error.detail);
    throw error;
  }
}

/** `resource` (any request), and `audience` where `audienceAllowed` (token exchange only; elsewhere invalid_request). */
export function audienceOf(params: FormParams, client: Client, audienceAllowed: boolean): string[] {
  const audiences = allValues(params, 'audience');
  if (audiences.length > 0 && !audienceAllowed) {
    throw new OAuthError('invalid_request', "'audience' is a token-exchange parameter; use 'resource' (RFC 8707)");
  }
  return answered(() => requestedAudience(allValues(params, 'resource'), audiences, client.allowedAudiences ?? []));
}

/** A later request on a grant (refresh, device code): what was granted, or narrower. */
export function narrowed(requested: readonly string[], granted: readonly string[], client: Client): string[] {
  return answered(() => narrowedAudience(requested, granted, client.allowedAudiences ?? []));
}
