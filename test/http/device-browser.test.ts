/**
 * A real browser on /device: headless Chromium (Debian's `chromium`, driven by playwright-core)
 * opens verification_uri_complete, signs in, confirms the code, allows; the device's poll then
 * gets a token. Each page is screenshotted (phone-sized) into TESSERA_SCREENSHOT_DIR or a temp dir.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { seedClient, seedProvider, seedUser, type SeededUser } from '../helpers/seed.js';
import { poll, startDevice } from '../helpers/device.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install chromium); the browser test needs it`;

let server: TestServer;
let browser: Browser;
let clientId: string;
let hedy: SeededUser;
let shots: string;

describe('the verification page in a real browser', { skip }, () => {
  before(async () => {
    server = await startTestServer();
    const provider = await seedProvider(server, { name: 'Home devices', deviceFlow: { pollIntervalSeconds: 1 } });
    clientId = (await seedClient(server, { providerId: provider.id, name: 'Living-room TV', allowedScopes: ['openid', 'profile', 'email'] })).clientId;
    hedy = await seedUser(server, { name: 'Hedy Lamarr' });
    shots = process.env.TESSERA_SCREENSHOT_DIR ?? (await mkdtemp(path.join(os.tmpdir(), 'tessera-screens-')));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function phonePage(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, javaScriptEnabled: false });
    return context.newPage();
  }

  /** The verification URI names TESSERA_PUBLIC_URL (localhost); the test server listens on 127.0.0.1. */
  function local(uri: string): string {
    const url = new URL(uri);
    return `${server.url}${url.pathname}${url.search}`;
  }

  test('sign in, confirm the prefilled code, allow: the device then gets a token', async () => {
    const codes = await startDevice(server, clientId, { scope: 'openid profile email' });
    const page = await phonePage();

    await page.goto(local(codes.verification_uri_complete));
    assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Sign in to connect your device');
    await page.screenshot({ path: path.join(shots, '1-sign-in.png'), fullPage: true });

    await page.getByLabel('Username').fill(hedy.username);
    await page.getByLabel('Password').fill(hedy.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/device\?code=/);

    assert.match((await page.getByRole('heading', { level: 1 }).textContent()) ?? '', /Allow Living-room TV/);
    assert.equal(await page.locator('.usercode').textContent(), codes.user_code, 'the code is shown to compare with the device');
    await page.screenshot({ path: path.join(shots, '2-consent.png'), fullPage: true });

    await page.getByRole('button', { name: 'Allow' }).click();
    await page.getByRole('heading', { name: 'Your device is connected' }).waitFor();
    await page.screenshot({ path: path.join(shots, '3-done.png'), fullPage: true });

    const token = await poll(server, clientId, codes.device_code);
    assert.equal(token.status, 200, JSON.stringify(token.body));
    assert.equal(typeof token.body.access_token, 'string');
    await page.context().close();
  });

  test('typing the code by hand (lower case, no dash) and an unknown code', async () => {
    const codes = await startDevice(server, clientId);
    const page = await phonePage();
    await page.goto(`${server.url}/device`);
    await page.getByLabel('Username').fill(hedy.username);
    await page.getByLabel('Password').fill(hedy.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Enter the code shown on your device' }).waitFor();
    await page.screenshot({ path: path.join(shots, '4-enter-code.png'), fullPage: true });

    await page.getByLabel('Code').fill('zzzz-zzzz');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('alert').waitFor();
    assert.match((await page.getByRole('alert').textContent()) ?? '', /don't recognise that code/);
    await page.screenshot({ path: path.join(shots, '5-unknown-code.png'), fullPage: true });

    await page.getByLabel('Code').fill(codes.user_code.replace('-', '').toLowerCase());
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('button', { name: 'Deny' }).click();
    await page.getByRole('heading', { name: 'Request denied' }).waitFor();
    await page.screenshot({ path: path.join(shots, '6-denied.png'), fullPage: true });
    assert.equal((await poll(server, clientId, codes.device_code)).body.error, 'access_denied');
    await page.context().close();
  });
});
