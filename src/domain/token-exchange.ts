/**
 * Token exchange (RFC 8693), the part that decides: which subject, which actor, which `act`.
 * The subject token goes through rule 4 (identity-rules.ts jwtRule, the one verifier of incoming
 * JWTs) with the provider's own access tokens accepted too; the actor token through the same
 * verifier. Writes nothing: the grant (oauth/grants/token-exchange.ts) and the admin's dry run
 * (admin/token-exchange-test.ts) both start here.
 */
import type { Client, Provider } from './model.js';
import { jwtRule, type Identity, type RuleServices } from './identity-rules.js';
import { audContains } from './audiences.js';

export const TOKEN_TYPE = {
  accessToken: 'urn:ietf:params:oauth:token-type:access_token',
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
  idToken: 'urn:ietf:params:oauth:token-type:id_token',
} as const;
const INPUT_TOKEN_TYPES: readonly string[] = Object.values(TOKEN_TYPE);
/** RFC 8693 §4.1 lets chains grow without bound; a longer one than this is refused. */
export const MAX_ACT_DEPTH = 5;
export const MAX_INPUT_TOKEN_LENGTH = 16_384;

export interface ExchangeInput {
  provider: Provider;
  client: Client;
  subjectToken: string | undefined;
  subjectTokenType: string | undefined;
  actorToken: string | undefined;
  actorTokenType: string | undefined;
  requestId: string;
}

export interface ExchangeRefusal {
  kind: 'refused';
  error: 'invalid_request' | 'invalid_grant';
  stage: 'request' | 'subject_token' | 'actor_token' | 'delegation';
  description: string;
  /** For the event log and the admin's dry run, never for the client. */
  detail: string;
  username: string | null;
  context: Record<string, unknown>;
}

export interface VerifiedExchange {
  kind: 'verified';
  /** Who the token is for (a generated account comes back prospective, saved after the policies). */
  identity: Identity;
  subjectClaims: Record<string, unknown>;
  actorClaims: Record<string, unknown> | null;
  /** The new token's `act`: the actor with the subject's chain inside, or the subject's chain as it was. */
  act: Record<string, unknown> | null;
  /** How the actor was allowed: the subject's may_act, or (to be checked) a policy bound to the client. */
  delegation: 'may_act' | 'policy' | null;
  notAfter: Date | null;
  context: Record<string, unknown>;
}

function refuse(stage: ExchangeRefusal['stage'], error: ExchangeRefusal['error'], description: string, detail: string, extra: Partial<ExchangeRefusal> = {}): ExchangeRefusal {
  return { kind: 'refused', stage, error, description, detail, username: null, context: {}, ...extra };
}

/** The token and its type: both present, a known type, at most 16 KB. */
function checkInputToken(name: 'subject_token' | 'actor_token', token: string | undefined, type: string | undefined): ExchangeRefusal | null {
  const stage = name === 'subject_token' ? 'subject_token' : 'actor_token';
  if (!token) return refuse(stage, 'invalid_request', `${name} is required`, `no ${name}`);
  if (token.length > MAX_INPUT_TOKEN_LENGTH) return refuse(stage, 'invalid_request', `${name} is longer than ${MAX_INPUT_TOKEN_LENGTH} characters`, `${name} of ${token.length} characters`);
  if (!type) return refuse(stage, 'invalid_request', `${name}_type is required`, `no ${name}_type`);
  if (!INPUT_TOKEN_TYPES.includes(type)) {
    return refuse(stage, 'invalid_request', `${name}_type must be one of ${INPUT_TOKEN_TYPES.join(', ')}`, `${name}_type ${JSON.stringify(type.slice(0, 128))}`);
  }
  return null;
}

/** The type said must be the kind of token it is: an access token of this server, or a federated source's JWT. */
function typeMismatch(name: string, type: string, isOurs: boolean): string | null {
  if (type === TOKEN_TYPE.accessToken && !isOurs) return `${name}_type is access_token, but the token is a federated source's JWT (send ${TOKEN_TYPE.jwt})`;
  if (type !== TOKEN_TYPE.accessToken && isOurs) return `${name}_type is ${type}, but the token is an access token of this server (send ${TOKEN_TYPE.accessToken})`;
  return null;
}

/** How deep an `act` chain is (0 for none); null when it is not a chain of objects with a string sub. */
export function actDepth(act: unknown): number | null {
  let depth = 0;
  for (let current = act; current !== undefined; current = (current as Record<string, unknown>).act) {
    if (typeof current !== 'object' || current === null || Array.isArray(current)) return null;
    if (typeof (current as Record<string, unknown>).sub !== 'string') return null;
    depth += 1;
    if (depth > MAX_ACT_DEPTH + 1) return depth;
  }
  return depth;
}

/** RFC 8693 §4.4: may_act names the party that may act, by sub (and iss when given). */
function mayActMatches(mayAct: unknown, actor: Record<string, unknown>): boolean {
  if (typeof mayAct !== 'object' || mayAct === null || Array.isArray(mayAct)) return false;
  const { sub, iss } = mayAct as Record<string, unknown>;
  if (typeof sub !== 'string' || sub !== actor.sub) return false;
  return iss === undefined || iss === actor.iss;
}

export async function verifyExchange(services: RuleServices, input: ExchangeInput): Promise<VerifiedExchange | ExchangeRefusal> {
  const { provider, client, subjectTokenType, actorTokenType } = input;
  const subjectProblem = checkInputToken('subject_token', input.subjectToken, subjectTokenType);
  if (subjectProblem) return subjectProblem;
  const hasActor = input.actorToken !== undefined || actorTokenType !== undefined;
  if (hasActor) {
    const actorProblem = checkInputToken('actor_token', input.actorToken, actorTokenType);
    if (actorProblem) return actorProblem;
  }

  const ours = subjectTokenType === TOKEN_TYPE.accessToken;
  const identity = await jwtRule(services, provider, input.subjectToken!, 'subject_token', input.requestId, { acceptOwnAccessTokens: ours });
  const context: Record<string, unknown> = { ...identity.context, subjectTokenType, identityRule: identity.rule };
  if (identity.kind === 'refused') {
    return refuse('subject_token', 'invalid_grant', 'the subject_token is not accepted', identity.detail, { context, username: identity.username });
  }
  const subjectClaims = identity.jwtClaims ?? {};
  const mismatch = typeMismatch('subject_token', subjectTokenType!, identity.rule === 'federated_provider');
  if (mismatch) return refuse('subject_token', 'invalid_grant', 'the subject_token is not of the type given', mismatch, { context });
  if (ours && subjectClaims.client_id !== client.clientId && !audContains(subjectClaims.aud, client.clientId)) {
    return refuse('subject_token', 'invalid_grant', 'the subject_token was not issued to this client', `the access token is client ${JSON.stringify(subjectClaims.client_id)}'s and its aud ${JSON.stringify(subjectClaims.aud)} does not name ${client.clientId}`, { context });
  }

  const chain = subjectClaims.act;
  const depth = chain === undefined ? 0 : actDepth(chain);
  if (depth === null) return refuse('subject_token', 'invalid_grant', 'the subject_token is not accepted', 'its act claim is not a chain of objects with a sub', { context });
  if (depth + (hasActor ? 1 : 0) > MAX_ACT_DEPTH) {
    return refuse('delegation', 'invalid_grant', 'the delegation chain is too long', `the act chain would be ${depth + (hasActor ? 1 : 0)} deep; at most ${MAX_ACT_DEPTH}`, { context });
  }
  // Without an actor the subject's chain is kept as it is: an exchange does not launder a delegation.
  const subject: VerifiedExchange = {
    kind: 'verified', identity, subjectClaims, actorClaims: null, act: (chain as Record<string, unknown> | undefined) ?? null,
    delegation: null, notAfter: identity.notAfter, context,
  };
  return hasActor ? withActor(services, input, subject, chain) : subject;
}

/** The actor token through the same verifier; allowed by the subject's may_act, or left to a client policy; act with the chain inside. */
async function withActor(
  services: RuleServices, input: ExchangeInput, subject: VerifiedExchange, chain: unknown,
): Promise<VerifiedExchange | ExchangeRefusal> {
  const { provider, actorTokenType } = input;
  const { identity, subjectClaims, context } = subject;
  const actorOurs = actorTokenType === TOKEN_TYPE.accessToken;
  const actor = await services.jwtVerifier.verifyIncomingJwt(provider, input.actorToken!, { acceptOwnAccessTokens: actorOurs });
  if (actor.kind === 'refused') {
    return refuse('actor_token', 'invalid_grant', 'the actor_token is not accepted', actor.detail, { context: { ...context, actorRejection: actor.reason } });
  }
  const actorMismatch = typeMismatch('actor_token', actorTokenType!, actor.kind === 'federated_provider');
  if (actorMismatch) return refuse('actor_token', 'invalid_grant', 'the actor_token is not of the type given', actorMismatch, { context });
  const actorClaims: Record<string, unknown> = actor.claims;
  const actorIdentity = { sub: actorClaims.sub, ...(typeof actorClaims.iss === 'string' ? { iss: actorClaims.iss } : {}) };
  Object.assign(context, { actorSub: actorIdentity.sub, actorIss: actorIdentity.iss ?? null });
  let delegation: 'may_act' | 'policy';
  if (subjectClaims.may_act !== undefined) {
    if (!mayActMatches(subjectClaims.may_act, actorClaims)) {
      return refuse('delegation', 'invalid_grant', 'the actor may not act for the subject',
        `the subject token's may_act ${JSON.stringify(subjectClaims.may_act)} does not name the actor ${JSON.stringify(actorIdentity)}`, { context });
    }
    delegation = 'may_act';
  } else delegation = 'policy';
  const act = { ...actorIdentity, ...(chain !== undefined ? { act: chain } : {}) };
  const actorExp = typeof actorClaims.exp === 'number' ? new Date(actorClaims.exp * 1000) : null;
  const notAfter = actorExp && (!identity.notAfter || actorExp < identity.notAfter) ? actorExp : identity.notAfter;
  return { kind: 'verified', identity, subjectClaims, actorClaims, act, delegation, notAfter, context: { ...context, delegation } };
}
