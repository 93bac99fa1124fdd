// A local OpenID provider for Quorum's browser sign-in test, built on the certified
// `oidc-provider` package. Usage: node provider.js <config.json>
//
// The config file holds {port, client: {client_id, client_secret, redirect_uri,
// post_logout_redirect_uri}, accounts: {<account id>: {email, name}}}. The provider prints
// "ready <issuer>" on stdout once it listens on 127.0.0.1:<port>.
//
// Signing in is a one-field form: type an account id, press "Sign in". No password: the test
// is about Quorum's side of the exchange, not about authenticating people.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';

import Provider, { interactionPolicy } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;
const accounts = config.accounts;

// Streamlit's st.login always asks for `prompt=select_account` (an OpenID Connect standard
// value). oidc-provider refuses prompt values no policy entry declares, so declare one; the
// login form below resolves it, since typing an account id is selecting the account.
const policy = interactionPolicy.base();
policy.add(new interactionPolicy.Prompt({ name: 'select_account', requestable: true }), 0);

const provider = new Provider(issuer, {
  clients: [{
    client_id: config.client.client_id,
    client_secret: config.client.client_secret,
    // Plain http redirect URIs are accepted for a web client in the code flow (only the
    // implicit flow demands https), so Quorum can run on http://127.0.0.1 here.
    redirect_uris: [config.client.redirect_uri],
    // Streamlit's st.logout sends the person back to its /oauth2callback after the
    // provider's sign-out page, so that address must be registered for logout too.
    post_logout_redirect_uris: [config.client.post_logout_redirect_uri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  async findAccount(_ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: account.email, email_verified: true, name: account.name };
      },
    };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  // Authlib (inside Streamlit) reads the person from the ID token and never calls the
  // userinfo endpoint; by default oidc-provider keeps scope claims out of the ID token
  // whenever an access token is issued too, so Quorum would see no e-mail.
  conformIdTokenClaims: false,
  // Streamlit (Authlib) sends a PKCE challenge only when [auth] client_kwargs asks for one
  // (code_challenge_method = "S256"); by default it does not, and Quorum uses the default.
  // PKCE stays optional here, explicitly, rather than relying on the package's default rule
  // (which requires it of public clients and FAPI profiles and has changed across majors).
  pkce: { required: () => false },
  interactions: {
    policy,
    url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  features: {
    // Replaced by the minimal form below (the dev form cannot resolve select_account).
    devInteractions: { enabled: false },
    // The end_session_endpoint st.logout sends the browser to (on by default; explicit).
    rpInitiatedLogout: { enabled: true },
  },
  // One first-party client: no consent screen. The grant covers what the client asked for.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
  // Signs the provider's own cookies; a fresh key each run is enough for a test.
  cookies: { keys: [randomBytes(32).toString('hex')] },
  // Signing keys for ID tokens are generated at start-up when none are given (it warns).
});

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(uid, message = '') {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Test provider sign-in</title></head>
<body><h1>Test provider</h1>
${message ? `<p role="alert">${escape(message)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<label for="login">Account</label> <input id="login" name="login" autofocus>
<button type="submit">Continue</button></form>
<form method="post" action="/interaction/${escape(uid)}/abort"><button type="submit">Cancel</button></form>
</body></html>`;
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(loginPage(details.uid));
    return;
  }
  if (req.url.endsWith('/abort')) {
    // The person declines: the client gets the standard `access_denied` error back.
    await provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'The person cancelled the sign-in',
    }, { mergeWithLastSubmission: false });
    return;
  }
  const accountId = (await readForm(req)).get('login') || '';
  if (!accounts[accountId]) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(loginPage(details.uid, `No account called "${accountId}"`));
    return;
  }
  await provider.interactionFinished(req, res, {
    login: { accountId },
    select_account: {},
  }, { mergeWithLastSubmission: false });
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((error) => {
      console.error(error);
      if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(`interaction failed: ${error.message}`);
    });
    return;
  }
  callback(req, res);
});

provider.on('server_error', (_ctx, error) => console.error('server_error', error));

server.listen(config.port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
