/**
 * The pages of /device. Plain HTML forms that work without JavaScript, one column that reads on a
 * phone, labelled fields, errors announced to screen readers (role="alert"), and styles under a
 * CSP nonce (no inline style attributes, no scripts at all).
 */
import { Html, PAGE_HEAD, html } from '../http/html.js';

export interface PageFrame {
  title: string;
  /** CSP nonce for the one <style> element. */
  nonce: string;
  /** Signed-in username, shown with a sign-out button. */
  username?: string | null;
  csrf?: string;
  /** The provider's name and logo, once the page is about one provider's device (consent, done). */
  brand?: Brand | null;
}

export interface Brand {
  name: string;
  logoUrl: string | null;
}

/**
 * Control borders (inputs, the secondary button) use --control, at least 3:1 against the card and
 * the page in both schemes (WCAG 1.4.11; test/http/verification-page-design.test.ts computes it).
 */
export const STYLE = `
:root { color-scheme: light dark; --fg:#1b1f24; --muted:#57606a; --bg:#f6f8fa; --card:#fff; --line:#d0d7de; --control:#6e7781;
  --accent:#0b5cad; --accent-fg:#fff; --danger:#b42318; --ok:#1a7f37; --code-bg:#eef2f6; }
@media (prefers-color-scheme: dark) { :root { --fg:#e6edf3; --muted:#9da7b3; --bg:#0d1117; --card:#161b22;
  --line:#30363d; --control:#8b949e; --accent:#4c9be8; --accent-fg:#0d1117; --danger:#f97066; --ok:#3fb950; --code-bg:#1f2630; } }
* { box-sizing: border-box; }
body { margin:0; font: 1.0625rem/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
main { max-width: 28rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
.card { background:var(--card); border:1px solid var(--line); border-radius:12px; padding:1.5rem 1.25rem; }
.brand { font-weight:600; color:var(--muted); margin:0 0 1rem; letter-spacing:.02em; }
h1 { font-size:1.5rem; line-height:1.25; margin:0 0 .75rem; }
p { margin:.5rem 0 1rem; }
.muted { color:var(--muted); font-size:.95rem; }
label { display:block; font-weight:600; margin:1rem 0 .35rem; }
input[type=text], input[type=password] { width:100%; font-size:1.125rem; padding:.7rem .8rem; border:1px solid var(--control);
  border-radius:8px; background:var(--card); color:var(--fg); }
input.code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:1.5rem; letter-spacing:.15em; text-transform:uppercase; text-align:center; }
input:focus, button:focus { outline:3px solid var(--accent); outline-offset:2px; }
button { display:block; width:100%; min-height:48px; margin-top:1.25rem; font-size:1.0625rem; font-weight:600; border-radius:8px;
  border:1px solid var(--accent); background:var(--accent); color:var(--accent-fg); cursor:pointer; }
button.secondary { background:transparent; color:var(--fg); border-color:var(--control); margin-top:.75rem; }
button.link { display:inline; width:auto; min-height:0; margin:0; padding:0; border:0; background:none; color:var(--accent);
  font-weight:400; font-size:inherit; text-decoration:underline; }
.alert { border-left:4px solid var(--danger); background:var(--code-bg); padding:.75rem 1rem; border-radius:6px; margin:0 0 1rem; }
.success { border-left-color: var(--ok); }
.usercode { display:block; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:clamp(1.1rem, 6.5vw, 1.75rem); font-weight:700;
  letter-spacing:.1em; text-align:center; padding:.75rem .25rem; margin:.5rem 0 1rem; background:var(--code-bg); border-radius:8px; white-space:nowrap; overflow-x:auto; }
.nowrap { white-space:nowrap; }
.brand img { height:2rem; width:auto; max-width:8rem; vertical-align:middle; margin-right:.5rem; }
ul.scopes { padding-left:1.25rem; margin:.25rem 0 1rem; }
ul.scopes li { margin:.35rem 0; }
.scope-name { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:.9rem; color:var(--muted); }
.who { display:flex; flex-wrap:wrap; gap:.25rem .5rem; align-items:baseline; justify-content:space-between; margin-top:1.25rem;
  padding-top:1rem; border-top:1px solid var(--line); font-size:.95rem; color:var(--muted); }
.who form { margin:0; }
`;

// The stylesheet is ours and holds no markup: inserted as is.
const STYLE_HTML = new Html(STYLE);

const SCOPE_DESCRIPTIONS: Record<string, string> = {
  openid: 'Confirm who you are (your account id)',
  profile: 'Your name and username',
  email: 'Your email address',
  offline_access: 'Stay signed in when you are not using it',
};

function frame(page: PageFrame, body: Html): string {
  return html`${PAGE_HEAD}
<title>${page.title} · Tessera</title>
<style nonce="${page.nonce}">${STYLE_HTML}</style>
</head>
<body>
<main>
<p class="brand">${page.brand?.logoUrl ? html`<img src="${page.brand.logoUrl}" alt="">` : ''}${page.brand ? page.brand.name : 'Tessera'} · Device sign-in</p>
<div class="card">
${body}
${page.username && page.csrf ? html`<div class="who"><span>Signed in as <strong>${page.username}</strong></span>
<form method="post" action="/device"><input type="hidden" name="csrf" value="${page.csrf}"><input type="hidden" name="action" value="signout"><button class="link" type="submit">Sign out</button></form></div>` : ''}
</div>
</main>
</body>
</html>
`.value;
}


/** The error of a form, announced at once and tied to the field it is about (aria-describedby). */
function alert(message: string | null | undefined): Html | '' {
  return message ? html`<div class="alert" role="alert" id="form-error">${message}</div>` : '';
}

export function signInPage(p: PageFrame & { csrf: string; code: string | null; username?: string | null; error?: string | null; formUsername?: string }): string {
  return frame({ ...p, username: null }, html`
<h1>Sign in to connect your device</h1>
${alert(p.error)}
${p.code ? html`<p>Then you will confirm the code <strong class="nowrap">${p.code}</strong> shown on your device.</p>` : html`<p>Sign in, then enter the code shown on your device.</p>`}
<form method="post" action="/device">
<input type="hidden" name="csrf" value="${p.csrf}">
<input type="hidden" name="action" value="signin">
${p.code ? html`<input type="hidden" name="user_code" value="${p.code}">` : ''}
<label for="username">Username</label>
<input type="text" id="username" name="username" autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus value="${p.formUsername ?? ''}">
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required${p.error ? html` aria-describedby="form-error"` : ''}>
<button type="submit">Sign in</button>
</form>`);
}

export function enterCodePage(p: PageFrame & { csrf: string; code: string | null; error?: string | null }): string {
  return frame(p, html`
<h1>Enter the code shown on your device</h1>
${alert(p.error)}
<form method="post" action="/device">
<input type="hidden" name="csrf" value="${p.csrf}">
<input type="hidden" name="action" value="enter">
<label for="user_code">Code</label>
<input class="code" type="text" id="user_code" name="user_code" autocomplete="one-time-code" autocapitalize="characters" autocorrect="off" spellcheck="false" required autofocus maxlength="80" aria-describedby="${p.error ? 'form-error code-help' : 'code-help'}"${p.error ? html` aria-invalid="true"` : ''} value="${p.code ?? ''}">
<p class="muted" id="code-help">Dashes and spaces are optional.</p>
<button type="submit">Continue</button>
</form>`);
}

export interface ConsentDetails {
  clientName: string;
  providerName: string;
  scopes: readonly string[];
  /** The code as it should be shown, to compare with the device (RFC 8628 §3.3.1). */
  displayCode: string;
  /** The code the form posts back. */
  userCode: string;
}

export function consentPage(p: PageFrame & { csrf: string } & ConsentDetails): string {
  return frame(p, html`
<h1>Allow <span>${p.clientName}</span> to use your account?</h1>
<p>Check that your device shows this code:</p>
<strong class="usercode" aria-label="Code ${p.displayCode.split('').join(' ')}">${p.displayCode}</strong>
<p>If it does not, choose <strong>Deny</strong>: someone may be trying to get into your account.</p>
${p.scopes.length > 0 ? html`<p><strong>${p.clientName}</strong> (${p.providerName}) asks for:</p>
<ul class="scopes">${p.scopes.map((s) => html`<li>${SCOPE_DESCRIPTIONS[s] ?? 'Access named'} <span class="scope-name">${s}</span></li>`)}</ul>`
    : html`<p><strong>${p.clientName}</strong> (${p.providerName}) asks for basic access to your account.</p>`}
<form method="post" action="/device">
<input type="hidden" name="csrf" value="${p.csrf}">
<input type="hidden" name="action" value="decide">
<input type="hidden" name="user_code" value="${p.userCode}">
<button type="submit" name="decision" value="allow">Allow</button>
<button class="secondary" type="submit" name="decision" value="deny">Deny</button>
</form>`);
}

export function donePage(p: PageFrame & { approved: boolean; clientName: string }): string {
  return frame(p, p.approved
    ? html`
<h1>Your device is connected</h1>
<div class="alert success" role="status">You allowed <strong>${p.clientName}</strong>.</div>
<p>You can close this page and go back to your device; it will continue on its own.</p>`
    : html`
<h1>Request denied</h1>
<div class="alert" role="status">You denied <strong>${p.clientName}</strong>. It got no access to your account.</div>
<p>You can close this page.</p>`);
}

export function messagePage(p: PageFrame & { heading: string; message: string; linkToStart?: boolean }): string {
  return frame(p, html`
<h1>${p.heading}</h1>
<div class="alert" role="alert">${p.message}</div>
${p.linkToStart ? html`<p><a href="/device">Start again</a></p>` : ''}`);
}
