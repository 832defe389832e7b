/**
 * GET /: what this server is, for a person who opened it in a browser: its providers' discovery
 * documents, where the admin API and its explorer are, health and metrics. Only what the discovery
 * documents publish anyway; no secrets, no version. Other clients get the same as JSON.
 */
import { randomBytes } from 'node:crypto';
import type { Middleware } from 'koa';
import type { Services } from '../domain/services.js';
import type { Provider } from '../domain/model.js';
import { Html, PAGE_HEAD, html } from './html.js';
import { pageHeaders } from './page-headers.js';

/** Enough for a page a person reads; the admin API lists the rest. */
const MAX_LISTED = 100;

const STYLE = new Html(`:root { color-scheme: light dark; --fg:#1b1f24; --muted:#57606a; --bg:#f6f8fa; --card:#fff; --line:#6e7781; --accent:#0b5cad; }
@media (prefers-color-scheme: dark) { :root { --fg:#e6edf3; --muted:#9da7b3; --bg:#0d1117; --card:#161b22; --line:#8b949e; --accent:#4c9be8; } }
body { margin:0; font: 1rem/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
main { max-width: 46rem; margin: 0 auto; padding: 2rem 1rem 3rem; }
h1 { font-size:1.75rem; margin:0 0 .25rem; } h2 { font-size:1.15rem; margin:2rem 0 .5rem; }
.muted { color:var(--muted); } a { color:var(--accent); }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:.9em; }
table { width:100%; border-collapse:collapse; background:var(--card); }
th, td { text-align:left; padding:.4rem .6rem; border-bottom:1px solid var(--line); vertical-align:top; }
td a { word-break:break-all; }`);

interface ProviderLinks {
  name: string;
  slug: string;
  issuer: string;
  discovery: string;
  jwks: string;
}

function linksOf(services: Services, provider: Provider): ProviderLinks {
  const issuer = services.providers.issuer(provider);
  return {
    name: provider.displayName ?? provider.name, slug: provider.slug, issuer,
    discovery: `${issuer}.well-known/openid-configuration`, jwks: `${issuer}jwks/`,
  };
}

function page(nonce: string, publicUrl: string, providers: ProviderLinks[], total: number): string {
  return html`${PAGE_HEAD}
<title>Tessera</title>
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
<main>
<h1>Tessera</h1>
<p class="muted">An OAuth 2.0 and OpenID Connect identity server for devices and machines: the device flow
(RFC 8628), client credentials, federation of workload identities, administered through GraphQL.</p>

<h2>Providers</h2>
${providers.length === 0
    ? html`<p>No provider yet. Create one through the admin API (below), for example with <code>createProvider</code>.</p>`
    : html`<table>
<thead><tr><th scope="col">Provider</th><th scope="col">Discovery</th><th scope="col">Keys</th></tr></thead>
<tbody>${providers.map((p) => html`<tr><td>${p.name}<br><code class="muted">${p.slug}</code></td><td><a href="${p.discovery}">${p.discovery}</a></td><td><a href="${p.jwks}">JWKS</a></td></tr>`)}</tbody>
</table>${total > providers.length ? html`<p class="muted">${total - providers.length} more: see <code>providers</code> in the admin API.</p>` : ''}`}

<h2>Admin API</h2>
<p>GraphQL at <code>${publicUrl}/graphql</code> (POST, <code>Authorization: Bearer &lt;admin token&gt;</code>).
<a href="/graphql">Open the explorer</a>: it asks for the admin token and keeps it in that tab only.</p>

<h2>Operations</h2>
<p><a href="/healthz">/healthz</a> (alive), <a href="/readyz">/readyz</a> (store reachable), <a href="/metrics">/metrics</a> (Prometheus).</p>
</main>
</body>
</html>
`.value;
}

export function landingPage(services: Services): Middleware {
  return async (ctx) => {
    const all = await services.providers.list();
    const listed = [...all].sort((a, b) => a.slug.localeCompare(b.slug)).slice(0, MAX_LISTED).map((p) => linksOf(services, p));
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Vary', 'Accept');
    if (ctx.accepts('text/html', 'application/json') !== 'text/html') {
      ctx.body = { name: 'tessera', providers: listed, admin: { graphql: `${services.config.publicUrl}/graphql` } };
      return;
    }
    const nonce = randomBytes(16).toString('base64');
    pageHeaders(ctx, `default-src 'none'; style-src 'nonce-${nonce}'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'`);
    ctx.body = page(nonce, services.config.publicUrl, listed, all.length);
  };
}
