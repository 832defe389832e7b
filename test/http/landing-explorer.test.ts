/**
 * The first hour in a browser: the landing page at / (providers' discovery links, where the admin
 * API is; escaped; no secrets; a strict CSP) and the admin API's explorer, GraphiQL served by
 * Tessera itself from npm (no CDN), which asks for the admin token and keeps it in the tab only.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchChromium, skipWithoutChromium } from '../helpers/browser.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { unique } from '../helpers/seed.js';

let server: TestServer;
let slug: string;
const evilName = 'Home <script>alert(1)</script> & "devices"';

before(async () => {
  server = await startTestServer();
  slug = unique('home');
  await server.gql(`mutation($input: CreateProviderInput!) { createProvider(input: $input) { id } }`, { input: { name: evilName, slug } });
});
after(async () => {
  await server.stop();
});

describe('the landing page', () => {
  test('a browser gets HTML naming the providers\' discovery documents and the admin API, escaped, under a strict CSP', async () => {
    const response = await fetch(`${server.url}/`, { headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type')!, /^text\/html/);
    const csp = response.headers.get('content-security-policy')!;
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /style-src 'nonce-[A-Za-z0-9+/=]+'/);
    assert.doesNotMatch(csp, /script-src/, 'no scripts at all');
    assert.equal(response.headers.get('x-frame-options'), 'DENY');
    const body = await response.text();
    const issuer = `${server.server.services.config.publicUrl}/application/o/${slug}/`;
    assert.ok(body.includes(`href="${issuer}.well-known/openid-configuration"`), 'the discovery link');
    assert.ok(body.includes(`href="${issuer}jwks/"`), 'the JWKS link');
    assert.ok(body.includes('Home &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;devices&quot;'), 'the name, escaped');
    assert.ok(!body.includes('<script'), 'no markup from a name');
    assert.ok(body.includes('href="/graphql"'), 'the explorer');
    assert.ok(!body.includes(server.adminToken), 'no admin token');
    assert.ok(!/secret/i.test(body), 'nothing about secrets');
  });

  test('an API client gets the same as JSON', async () => {
    const response = await fetch(`${server.url}/`, { headers: { accept: 'application/json' } });
    const body = await response.json() as { name: string; providers: { slug: string; discovery: string }[]; admin: { graphql: string } };
    assert.equal(body.name, 'tessera');
    assert.ok(body.providers.some((p) => p.slug === slug && p.discovery.endsWith(`/application/o/${slug}/.well-known/openid-configuration`)));
    assert.equal(body.admin.graphql, `${server.server.services.config.publicUrl}/graphql`);
  });
});

describe('the explorer', () => {
  test('GET /graphql from a browser is the explorer page; API clients still get the API', async () => {
    const page = await fetch(`${server.url}/graphql`, { headers: { accept: 'text/html' } });
    assert.equal(page.status, 200);
    const csp = page.headers.get('content-security-policy')!;
    assert.match(csp, /script-src 'self'[;]/, 'scripts from this server only: no CDN, no inline script');
    assert.match(csp, /connect-src 'self'/);
    const html = await page.text();
    for (const src of [...html.matchAll(/<script src="([^"]+)"/g)].map((m) => m[1]!)) {
      assert.ok(src.startsWith('/graphiql/assets/'), src);
      const asset = await fetch(`${server.url}${src}`);
      assert.equal(asset.status, 200, src);
      assert.match(asset.headers.get('content-type')!, /^application\/javascript/);
      assert.ok((await asset.arrayBuffer()).byteLength > 1000 || src.endsWith('explorer.js'));
    }
    assert.doesNotMatch(html, /https?:\/\//, 'nothing loaded from elsewhere');
    const api = await fetch(`${server.url}/graphql`, { headers: { accept: 'application/json' } });
    assert.equal(api.status, 401, 'the API itself is unchanged');
    assert.equal((await fetch(`${server.url}/graphiql`, { headers: { accept: 'text/html' } })).status, 200);
  });

  test('asset names are a fixed list, never a path', async () => {
    for (const name of ['..%2Fpackage.json', '%2e%2e%2f%2e%2e%2fpackage.json', 'package.json', 'constructor', '__proto__']) {
      assert.equal((await fetch(`${server.url}/graphiql/assets/${name}`)).status, 404, name);
    }
  });
});

const skip = skipWithoutChromium;

describe('the explorer in a browser', { skip }, () => {
  let browser: Browser;
  before(async () => {
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
  });

  test('asks for the token, runs a query with it, and keeps it out of localStorage; nothing blocked by the CSP, nothing fetched elsewhere', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const problems: string[] = [];
    const foreign: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('response', (r) => { if (r.status() === 404) problems.push(`404 ${r.url()}`); });
    page.on('request', (r) => { if (!r.url().startsWith(server.url) && !r.url().startsWith('data:')) foreign.push(r.url()); });
    await page.goto(`${server.url}/graphql`);
    await page.locator('.graphiql-container').waitFor({ timeout: 30_000 });
    assert.equal(await page.evaluate<string | null>('document.activeElement && document.activeElement.id'), 'token', 'the token field is focused');
    await page.getByLabel('Admin token').fill(server.adminToken);
    await page.getByLabel('Admin token').press('Enter');
    // The schema, fetched again with the token, fills the documentation explorer.
    await page.locator('button[aria-label="Show Documentation Explorer"]').click();
    await page.locator('.graphiql-doc-explorer').getByText('Mutation', { exact: true }).waitFor({ timeout: 20_000 });
    await page.locator('.graphiql-execute-button').click();
    await page.waitForFunction(`document.querySelector('.result-window') && document.querySelector('.result-window').textContent.includes('${slug}')`, undefined, { timeout: 20_000 });
    const local = await page.evaluate<string>('JSON.stringify(Object.entries(localStorage))');
    assert.ok(!local.includes(server.adminToken), 'the token is not in localStorage');
    const session = await page.evaluate<string | null>(`sessionStorage.getItem('tessera.adminToken')`);
    assert.equal(session, server.adminToken, 'kept in this tab (sessionStorage)');
    // A new tab of the same browser profile does not have it.
    const other = await context.newPage();
    await other.goto(`${server.url}/graphql`);
    assert.equal(await other.getByLabel('Admin token').inputValue(), '');
    await page.getByRole('button', { name: 'Forget' }).click();
    assert.equal(await page.evaluate<string | null>(`sessionStorage.getItem('tessera.adminToken')`), null);
    assert.deepEqual(problems, [], 'no script error, no CSP violation, no refused request');
    assert.deepEqual(foreign, [], 'no request leaves the server');
    await context.close();
  });
});
