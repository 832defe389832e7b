/**
 * The admin API's explorer: GraphiQL (from npm, served by Tessera itself: the server may be
 * offline, so no CDN) at GET /graphql for browsers (Accept: text/html) and at /graphiql. The admin
 * token is asked for in the page and kept in the tab only (memory and sessionStorage); GraphiQL's
 * own storage (tabs, headers) is pointed at sessionStorage too, so nothing reaches localStorage.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Middleware } from 'koa';
import { PAGE_HEAD, html } from './html.js';
import { pageHeaders } from './page-headers.js';

const require = createRequire(import.meta.url);
const packageDir = (name: string) => path.dirname(require.resolve(`${name}/package.json`));

/** URL name → where the file is and its type. React 18 and GraphiQL 3 ship browser (UMD) builds. */
const ASSETS: Record<string, { file: () => string; type: string }> = {
  'react.production.min.js': { file: () => path.join(packageDir('react'), 'umd/react.production.min.js'), type: 'application/javascript; charset=utf-8' },
  'react-dom.production.min.js': { file: () => path.join(packageDir('react-dom'), 'umd/react-dom.production.min.js'), type: 'application/javascript; charset=utf-8' },
  'graphiql.min.js': { file: () => path.join(packageDir('graphiql'), 'graphiql.min.js'), type: 'application/javascript; charset=utf-8' },
  'graphiql.min.css': { file: () => path.join(packageDir('graphiql'), 'graphiql.min.css'), type: 'text/css; charset=utf-8' },
};

export const ASSET_PREFIX = '/graphiql/assets/';

// GraphiQL sets styles from script (CSSOM, which style-src does not govern) and ships its fonts and
// icons as data: URLs; nothing else is allowed, no inline script or style element.
const EXPLORER_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; font-src 'self' data:; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/** The page's own script: the token prompt and GraphiQL wired to POST /graphql with it. */
const EXPLORER_JS = `'use strict';
(function () {
  var KEY = 'tessera.adminToken';
  var token = sessionStorage.getItem(KEY) || '';
  var input = document.getElementById('token');
  var forget = document.getElementById('forget');
  input.value = token;
  input.addEventListener('input', function () {
    token = input.value.trim();
    if (token) sessionStorage.setItem(KEY, token); else sessionStorage.removeItem(KEY);
  });
  forget.addEventListener('click', function () {
    token = ''; input.value = ''; sessionStorage.removeItem(KEY); input.focus();
  });
  if (!token) input.focus();
  function fetcher(params) {
    // Without a token the API can only refuse: say what to do instead of asking it.
    if (!token) return Promise.resolve({ errors: [{ message: 'Paste the admin token into the field above first.' }] });
    var headers = { 'content-type': 'application/json', accept: 'application/json', authorization: 'Bearer ' + token };
    return fetch('/graphql', { method: 'POST', headers: headers, body: JSON.stringify(params), credentials: 'omit' })
      .then(function (response) { return response.json(); });
  }
  // GraphiQL keeps tabs and editors in the storage it is given: this tab's sessionStorage, never localStorage.
  var storage = {
    getItem: function (k) { return sessionStorage.getItem(k); },
    setItem: function (k, v) { sessionStorage.setItem(k, v); },
    removeItem: function (k) { sessionStorage.removeItem(k); },
    clear: function () { sessionStorage.clear(); },
    get length() { return sessionStorage.length; }
  };
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  var generation = 0;
  function render() {
    // A new key remounts GraphiQL, which then fetches the schema again with the current token
    // (its first try, before a token was pasted, was refused). Editors come back from storage.
    root.render(React.createElement(GraphiQL, {
      key: 'g' + generation, fetcher: fetcher, storage: storage, shouldPersistHeaders: false, isHeadersEditorEnabled: false,
      defaultQuery: '# The admin API. Paste the admin token above, then run (Ctrl-Enter).\\n{\\n  providers {\\n    name slug issuer\\n  }\\n}\\n'
    }));
  }
  input.addEventListener('change', function () { generation += 1; render(); });
  render();
})();
`;

const PAGE_CSS = `html, body { height: 100%; margin: 0; }
body { display: flex; flex-direction: column; font: 14px system-ui, sans-serif; }
.bar { display: flex; gap: .5rem; align-items: center; padding: .4rem .75rem; border-bottom: 1px solid #6e7781; }
.bar label { font-weight: 600; }
.bar input { flex: 0 1 28rem; font: inherit; padding: .3rem .4rem; border: 1px solid #6e7781; border-radius: 4px; }
.bar a { margin-left: auto; }
#graphiql { flex: 1; min-height: 0; }`;

function page(): string {
  return html`${PAGE_HEAD}
<title>Admin API explorer · Tessera</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${ASSET_PREFIX}graphiql.min.css">
<link rel="stylesheet" href="${ASSET_PREFIX}explorer.css">
</head>
<body>
<div class="bar">
<label for="token">Admin token</label>
<input id="token" type="password" autocomplete="off" spellcheck="false" placeholder="kept in this tab only">
<button id="forget" type="button">Forget</button>
<a href="/">Tessera</a>
</div>
<div id="graphiql">Loading the explorer…</div>
<script src="${ASSET_PREFIX}react.production.min.js"></script>
<script src="${ASSET_PREFIX}react-dom.production.min.js"></script>
<script src="${ASSET_PREFIX}graphiql.min.js"></script>
<script src="${ASSET_PREFIX}explorer.js"></script>
</body>
</html>
`.value;
}

/** A browser asking for a page (not a GraphQL GET, which names a query). */
function wantsPage(ctx: Parameters<Middleware>[0]): boolean {
  return ctx.query.query === undefined && (ctx.accepts('application/json', 'text/html') === 'text/html');
}

/** GET /graphql: the explorer for browsers, the API for everyone else. */
export const explorerOnGraphql: Middleware = async (ctx, next) => {
  if (!wantsPage(ctx)) return next();
  pageHeaders(ctx, EXPLORER_CSP);
  ctx.set('Vary', 'Accept');
  ctx.body = page();
};

export const explorerPage: Middleware = async (ctx) => {
  pageHeaders(ctx, EXPLORER_CSP);
  ctx.body = page();
};

const cache = new Map<string, Promise<Buffer>>();

export const explorerAsset: Middleware = async (ctx, next) => {
  const name = String(ctx.params?.name ?? '');
  let body: Promise<Buffer> | undefined;
  let type: string;
  if (name === 'explorer.js') [body, type] = [Promise.resolve(Buffer.from(EXPLORER_JS)), 'application/javascript; charset=utf-8'];
  else if (name === 'explorer.css') [body, type] = [Promise.resolve(Buffer.from(PAGE_CSS)), 'text/css; charset=utf-8'];
  else {
    // Only the names above: never a path from the request.
    const asset = Object.hasOwn(ASSETS, name) ? ASSETS[name]! : undefined;
    if (!asset) return next();
    body = cache.get(name);
    if (!body) {
      body = readFile(asset.file());
      cache.set(name, body);
      body.catch(() => cache.delete(name));
    }
    type = asset.type;
  }
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('Cache-Control', 'public, max-age=3600');
  ctx.type = type;
  ctx.body = await body;
};
