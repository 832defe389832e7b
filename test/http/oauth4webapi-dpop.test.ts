/**
 * The README's CLI recipe, run as written (but for allowInsecureRequests on the test's plain-HTTP
 * server): oauth4webapi's DPoP handle signs the proofs of a device flow bound by dpop_jkt, follows
 * use_dpop_nonce on a provider that asks for nonces, refreshes the bound refresh token and calls
 * userinfo with the bound access token.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as oauth from 'oauth4webapi';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { seedClient, seedProvider, seedUser } from '../helpers/seed.js';
import { decide, jwtPayload } from '../helpers/device.js';

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server.stop();
});

const insecure = { [oauth.allowInsecureRequests]: true };

/** The recipe: sign a CLI in with the device flow, every token bound to a key it holds in memory. */
async function cliSignIn(issuer: URL, clientId: string, show: (userCode: string) => void) {
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
  const client: oauth.Client = { client_id: clientId };
  const auth = oauth.None();
  const keyPair = await oauth.generateKeyPair('ES256');
  const DPoP = oauth.DPoP(client, keyPair);
  const dpop_jkt = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey));
  const started = await oauth.processDeviceAuthorizationResponse(as, client,
    await oauth.deviceAuthorizationRequest(as, client, auth, { scope: 'openid profile', dpop_jkt }, insecure));
  show(started.user_code);
  let interval = started.interval ?? 5;
  let tokens: oauth.TokenEndpointResponse | undefined;
  while (!tokens) {
    await new Promise((resolve) => setTimeout(resolve, interval * 1000));
    try {
      tokens = await oauth.processDeviceCodeResponse(as, client,
        await oauth.deviceCodeGrantRequest(as, client, auth, started.device_code, { DPoP, ...insecure }));
    } catch (error) {
      if (oauth.isDPoPNonceError(error)) continue; // the handle keeps the server's new nonce: ask again
      if (error instanceof oauth.ResponseBodyError && error.error === 'authorization_pending') continue;
      if (error instanceof oauth.ResponseBodyError && error.error === 'slow_down') interval += 5;
      else throw error;
    }
  }
  const userinfo = () => oauth.protectedResourceRequest(tokens.access_token, 'GET', new URL(as.userinfo_endpoint!), undefined, undefined, { DPoP, ...insecure });
  const refresh = async () => {
    try {
      return await oauth.processRefreshTokenResponse(as, client, await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token!, { DPoP, ...insecure }));
    } catch (error) {
      if (!oauth.isDPoPNonceError(error)) throw error;
      return oauth.processRefreshTokenResponse(as, client, await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token!, { DPoP, ...insecure }));
    }
  };
  return { tokens, dpop_jkt, userinfo, refresh };
}

for (const dpopNonce of [false, true]) {
  test(`a CLI with oauth4webapi's DPoP: device flow bound by dpop_jkt, userinfo, refresh${dpopNonce ? ' (provider with dpopNonce)' : ''}`, { timeout: 30_000 }, async () => {
    const provider = await seedProvider(server, { deviceFlow: { pollIntervalSeconds: 1 } });
    if (dpopNonce) await server.gql(`mutation($id: ID!) { updateProvider(id: $id, input: { dpopNonce: true }) { id } }`, { id: provider.id });
    const { clientId } = await seedClient(server, { providerId: provider.id, grantTypes: ['DEVICE_CODE', 'REFRESH_TOKEN'], allowedScopes: ['openid', 'profile'] });
    const person = await seedUser(server);
    const cli = await cliSignIn(new URL(provider.issuer), clientId, (userCode) => {
      void decide(server, person.username, person.appPassword, userCode, 'allow');
    });
    assert.equal(cli.tokens.token_type, 'dpop');
    assert.deepEqual(jwtPayload(cli.tokens.access_token).cnf, { jkt: cli.dpop_jkt });
    const answer = await cli.userinfo();
    assert.equal(answer.status, 200, await answer.clone().text());
    assert.equal(((await answer.json()) as { sub: string }).sub, person.user.id);
    const refreshed = await cli.refresh();
    assert.deepEqual(jwtPayload(refreshed.access_token).cnf, { jkt: cli.dpop_jkt });
  });
}
