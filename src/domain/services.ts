/** Wires the domain services over one store. Built once per process. */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Store } from '../store/index.js';
import { SigningKeyService, systemClock, type Clock } from './keys.js';
import { KeyRotationScheduler } from './key-rotation.js';
import { ProviderService } from './providers.js';
import { ClientService } from './clients.js';
import { UserService } from './users.js';
import { AppPasswordService } from './app-passwords.js';
import { TokenService } from './tokens.js';
import { EventLog } from './events.js';
import { EventQuery } from './events-query.js';
import { FederatedSourceService } from './federation/sources.js';
import { PolicyService } from './policies/service.js';
import { IncomingJwtVerifier } from './federation/incoming-jwt.js';
import { GeneratedAccountService } from './generated-accounts.js';
import { DpopVerifier } from './dpop.js';
import { DeviceFlowService } from './device-flow.js';
import { DeviceSessionStore } from './device-sessions.js';
import { createRateLimits, type RateLimits } from './rate-limits.js';

export interface Services {
  config: Config;
  store: Store;
  logger: Logger;
  keys: SigningKeyService;
  /** Scheduled key rotation; started and stopped by the server. */
  keyRotation: KeyRotationScheduler;
  providers: ProviderService;
  clients: ClientService;
  users: UserService;
  appPasswords: AppPasswordService;
  tokens: TokenService;
  events: EventLog;
  eventQuery: EventQuery;
  federatedSources: FederatedSourceService;
  /** The one verifier of incoming JWTs (assertions); forgets a source when the admin changes it. */
  jwtVerifier: IncomingJwtVerifier;
  generatedAccounts: GeneratedAccountService;
  policies: PolicyService;
  /** DPoP proofs (RFC 9449): the one verifier, its replay record in the store. */
  dpop: DpopVerifier;
  /** The device flow (RFC 8628): start, poll, decide. */
  deviceFlow: DeviceFlowService;
  /** The /device page's signed-in sessions. */
  deviceSessions: DeviceSessionStore;
  /** The counters against guessing and flooding, in the store's backend. */
  rateLimits: RateLimits;
}

export function createServices(config: Config, store: Store, logger: Logger, secretKey: string, clock: Clock = systemClock): Services {
  const keys = new SigningKeyService(store, secretKey, clock);
  const providers = new ProviderService(store, keys, config.publicUrl);
  const events = new EventLog(store, logger);
  const keyRotation = new KeyRotationScheduler(store, keys, clock, (provider) => events.record({
    action: 'CONFIG_CHANGED', username: null, context: { operation: 'rotateSigningKeys', providerId: provider.id, scheduled: true },
  }), logger);
  const users = new UserService(store);
  const clients = new ClientService(store);
  const tokens = new TokenService(store, keys, providers, { clients, users });
  const federatedSources = new FederatedSourceService(store);
  const jwtVerifier = new IncomingJwtVerifier({ collections: store, tokens, providers, tokenEndpoint: `${config.publicUrl}/application/o/token/` });
  federatedSources.onChange((id) => jwtVerifier.invalidateSource(id));
  return {
    config,
    store,
    logger,
    keys,
    keyRotation,
    providers,
    clients,
    users,
    appPasswords: new AppPasswordService(store, users),
    tokens,
    events,
    eventQuery: new EventQuery(store, events),
    federatedSources,
    jwtVerifier,
    generatedAccounts: new GeneratedAccountService(store, users),
    policies: new PolicyService(store, events, logger),
    dpop: new DpopVerifier(store, secretKey),
    deviceFlow: new DeviceFlowService(store),
    deviceSessions: new DeviceSessionStore(store),
    rateLimits: createRateLimits(store, config),
  };
}
