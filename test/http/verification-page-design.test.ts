/**
 * The verification page as a new user meets it: control borders at 3:1 contrast or more (computed
 * from the stylesheet's own values, both colour schemes), the field to type in focused, the
 * provider's display name and logo (set through GraphQL, escaped, the logo's origin alone allowed
 * by the CSP), and the code kept on one line on a narrow phone (headless Chromium).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, skipWithoutChromium } from '../helpers/browser.js';
import { STYLE } from '../../src/verification/pages.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { seedClient, seedUser, unique, type SeededUser } from '../helpers/seed.js';
import { startDevice } from '../helpers/device.js';

// ---- contrast, from the CSS values (WCAG 2.x relative luminance) ----

function luminance(color: string): number {
  const hex = color.length === 4 ? `#${[...color.slice(1)].map((c) => c + c).join('')}` : color;
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255).map((c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
}
export function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi! + 0.05) / (lo! + 0.05);
}
function schemes(): Record<string, string>[] {
  const blocks = [...STYLE.matchAll(/:root\s*\{([^}]*)\}/g)].map((m) => m[1]!);
  assert.equal(blocks.length, 2, 'a light and a dark :root');
  return blocks.map((block) => Object.fromEntries([...block.matchAll(/--([a-z-]+):\s*(#[0-9a-f]{6}|#[0-9a-f]{3})\b/gi)].map((m) => [m[1]!, m[2]!])));
}

test('control borders are at least 3:1 against the card and the page, in light and dark', () => {
  assert.ok(contrast('#d0d7de', '#ffffff') < 1.5, 'the old border colour, 1.45:1, is what this catches');
  for (const scheme of schemes()) {
    for (const background of ['card', 'bg']) {
      const ratio = contrast(scheme.control!, scheme[background]!);
      assert.ok(ratio >= 3, `--control ${scheme.control} on --${background} ${scheme[background]}: ${ratio.toFixed(2)}:1`);
    }
  }
  // The controls use it.
  assert.match(STYLE, /input\[type=text\], input\[type=password\] \{[^}]*border:1px solid var\(--control\)/);
  assert.match(STYLE, /button\.secondary \{[^}]*border-color:var\(--control\)/);
});

// ---- in a browser ----

const skip = skipWithoutChromium;

describe('the verification page in a browser', { skip }, () => {
  let server: TestServer;
  let browser: Browser;
  let logoHost: http.Server;
  let logoOrigin: string;
  let user: SeededUser;
  let clientId: string;
  const displayName = 'Acme <b>Home</b> & "TV"';

  before(async () => {
    // The logo, served from another origin (a 1×1 PNG).
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
    logoHost = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(png));
    await new Promise<void>((resolve) => logoHost.listen(0, '127.0.0.1', resolve));
    logoOrigin = `http://127.0.0.1:${(logoHost.address() as AddressInfo).port}`;
    server = await startTestServer();
    const created = await server.gql<{ createProvider: { id: string; displayName: string; logoUrl: string } }>(
      `mutation($input: CreateProviderInput!) { createProvider(input: $input) { id displayName logoUrl } }`,
      // A long code (15 characters, shown as two groups): the old page broke it over two lines at 320 px.
      { input: { name: 'internal name', slug: unique('brand'), displayName, logoUrl: `${logoOrigin}/logo.png?size=64&x="1"`, deviceFlow: { userCodeLength: 15 } } },
    );
    assert.equal(created.createProvider.displayName, displayName);
    clientId = (await seedClient(server, { providerId: created.createProvider.id, name: 'Living-room TV' })).clientId;
    user = await seedUser(server);
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    logoHost?.close();
  });

  async function narrowPhone(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 320, height: 640 }, deviceScaleFactor: 1 });
    return context.newPage();
  }
  const local = (uri: string) => `${server.url}${new URL(uri).pathname}${new URL(uri).search}`;
  // Browser-side code as strings (this project compiles without the DOM library).
  /** How many distinct line boxes the element's text takes. */
  const lines = (page: Page, selector: string) => page.evaluate<number>(`(() => {
    const range = document.createRange();
    range.selectNodeContents(document.querySelector(${JSON.stringify(selector)}));
    return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
  })()`);
  const focusedId = (page: Page) => page.evaluate<string | null>('document.activeElement ? document.activeElement.id : null');

  test('sign-in and code pages focus their field; the prefilled code stays on one line; the consent page shows the provider, escaped, with its logo', async () => {
    const codes = await startDevice(server, clientId);
    const page = await narrowPhone();
    const blocked: string[] = [];
    page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) blocked.push(m.text()); });

    await page.goto(local(codes.verification_uri_complete));
    assert.equal(await focusedId(page), 'username', 'the first field is focused');
    assert.equal(await page.locator('strong.nowrap').textContent(), codes.user_code);
    assert.equal(await lines(page, 'strong.nowrap'), 1, 'the code in the sentence is on one line');

    await page.getByLabel('Username').fill(user.username);
    await page.getByLabel('Password').fill(user.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/device\?code=/);

    assert.equal(await page.locator('.usercode').textContent(), codes.user_code);
    assert.ok(codes.user_code.length >= 16, codes.user_code);
    assert.equal(await lines(page, '.usercode'), 1, 'the code to compare is on one line at 320 px');
    const brand = page.locator('.brand');
    assert.equal((await brand.textContent())?.trim(), `${displayName} · Device sign-in`, 'the display name, as text');
    assert.equal(await brand.locator('b').count(), 0, 'markup in the name is not markup');
    assert.match(await page.locator('main').textContent() ?? '', /\(Acme <b>Home<\/b> & "TV"\) asks for basic access/);
    const logo = brand.locator('img');
    assert.equal(await logo.getAttribute('src'), `${logoOrigin}/logo.png?size=64&x=%221%22`);
    await page.waitForFunction(`document.querySelector('.brand img').complete`);
    assert.equal(await page.evaluate<number>(`document.querySelector('.brand img').naturalWidth`), 1, 'the CSP lets the logo load');
    const response = await page.reload();
    const csp = response!.headers()['content-security-policy']!;
    assert.match(csp, new RegExp(`img-src ${logoOrigin.replace(/[.]/g, '\\.')};`));
    assert.match(csp, /default-src 'none'/);
    assert.deepEqual(blocked, []);
    await page.context().close();
  });

  test('the code page focuses the code field', async () => {
    const page = await narrowPhone();
    await page.goto(`${server.url}/device`);
    await page.getByLabel('Username').fill(user.username);
    await page.getByLabel('Password').fill(user.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByLabel('Code').waitFor();
    assert.equal(await focusedId(page), 'user_code');
    await page.context().close();
  });
});

// ---- the admin side ----

describe('displayName and logoUrl through GraphQL', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.stop();
  });

  test('a logo URL must be an absolute http(s) URL; an empty string clears; names are bounded', async () => {
    const create = (input: Record<string, unknown>) => server.gqlRaw(
      `mutation($input: CreateProviderInput!) { createProvider(input: $input) { id displayName logoUrl } }`,
      { input: { name: 'p', slug: unique('p'), ...input } },
    );
    for (const logoUrl of ['javascript:alert(1)', 'data:image/png;base64,AAAA', '/relative/logo.png', 'https://user:pw@example.com/logo.png', `https://example.com/${'a'.repeat(2050)}`]) {
      const { body } = await create({ logoUrl });
      assert.equal(body.errors?.[0]?.extensions?.field, 'logoUrl', `${logoUrl.slice(0, 40)} is refused: ${JSON.stringify(body.errors)}`);
    }
    for (const displayName of ['   ', 'x'.repeat(101), 'evil\u202eroot', 'line\nbreak']) {
      const { body } = await create({ displayName });
      assert.equal(body.errors?.[0]?.extensions?.field, 'displayName', JSON.stringify(displayName));
    }
    const { body } = await create({ displayName: 'Acme', logoUrl: 'https://cdn.example.com/acme.svg' });
    const provider = (body.data!.createProvider as { id: string; displayName: string; logoUrl: string });
    assert.deepEqual({ displayName: provider.displayName, logoUrl: provider.logoUrl }, { displayName: 'Acme', logoUrl: 'https://cdn.example.com/acme.svg' });
    const cleared = await server.gql<{ updateProvider: { displayName: string | null; logoUrl: string | null } }>(
      `mutation($id: ID!) { updateProvider(id: $id, input: { logoUrl: "" }) { displayName logoUrl } }`, { id: provider.id },
    );
    assert.deepEqual(cleared.updateProvider, { displayName: 'Acme', logoUrl: null });
  });
});
