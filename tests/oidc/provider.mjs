// A real OpenID Connect provider (panva's oidc-provider) for authgate's integration tests.
// Usage: node tests/oidc/provider.mjs <config.json>   (see README.md for the config keys)
import crypto from 'node:crypto';
import http from 'node:http';
import {
  announce, escapeHtml, handle, listen, load, page, readBody, readConfig, readJson, sendHtml, sendJson,
} from './lib.mjs';

const config = readConfig();
const { default: Provider } = await load('oidc-provider');
// Internal module, but oidc-provider has no "exports" map and the version is pinned.
const { createMemoryAdapter } = await load('oidc-provider/lib/adapters/memory_adapter.js');

const users = config.users ?? [];
const refresh = config.refresh !== false;

// The issuer has to be known before the Provider is built, so bind first and build after.
const server = http.createServer();
const port = await listen(server, config.port ?? 0);
const issuer = config.issuer ?? `http://127.0.0.1:${port}`;

// The stock in-memory adapter, wrapped only to remember which Session ids exist, so
// POST /test/backchannel-logout can find every session of an account.
const memory = createMemoryAdapter();
const sessionIds = new Set();
function adapter(model) {
  const inner = memory(model);
  if (model !== 'Session') return inner;
  return Object.assign(Object.create(inner), {
    upsert: (id, ...rest) => { sessionIds.add(id); return inner.upsert(id, ...rest); },
    destroy: (id) => { sessionIds.delete(id); return inner.destroy(id); },
  });
}

const signingKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

const provider = new Provider(issuer, {
  adapter,
  clients: (config.clients ?? []).map((client) => ({
    grant_types: refresh ? ['authorization_code', 'refresh_token'] : ['authorization_code'],
    response_types: ['code'],
    ...client,
  })),
  jwks: { keys: [{ ...signingKey.export({ format: 'jwk' }), kid: 'op-rs256', alg: 'RS256', use: 'sig' }] },
  // authgate runs on 127.0.0.1 too (another port, same cookie host): keep our cookie names
  // distinct from anything the gateway might call "_session".
  cookies: {
    keys: [crypto.randomBytes(32).toString('base64url')],
    names: { session: 'op_session', interaction: 'op_interaction', resume: 'op_interaction_resume' },
  },
  claims: {
    // How the person signed in (acr, amr), in every ID token.
    openid: ['sub', 'acr', 'amr'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  // Put the scope-requested claims (groups, email, ...) into the ID token, not only userinfo.
  conformIdTokenClaims: false,
  // The default only forces PKCE on public clients; authgate is confidential but always uses it.
  pkce: { required: () => true },
  // The default needs scope=offline_access *and* prompt=consent; always issue one instead.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  async findAccount(ctx, sub) {
    const user = users.find((u) => u.sub === sub);
    if (!user) return undefined;
    const { password, ...claims } = user;
    return { accountId: sub, claims: async () => claims };
  },
  ttl: {
    AccessToken: config.access_token_ttl ?? 3600,
    IdToken: config.id_token_ttl ?? 3600,
    RefreshToken: config.refresh_token_ttl ?? 86400,
    AuthorizationCode: 60,
    Interaction: 3600,
    Session: 86400,
    Grant: 86400,
  },
  features: {
    devInteractions: { enabled: false },
    userinfo: { enabled: true },
    revocation: { enabled: true },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', `<p id="error">${escapeHtml(out.error)}</p>`
      + `<p id="error-description">${escapeHtml(out.error_description)}</p>`);
  },
  // Outgoing requests (back-channel logout) go through an SSRF guard that refuses special-use
  // addresses, 127.0.0.0/8 included; drop that guard, the RP under test lives on loopback.
  fetch: (url, options) => {
    delete options.dispatcher;
    return globalThis.fetch(url, options);
  },
});

provider.on('backchannel.error', (ctx, err, client) => console.error(`backchannel logout to ${client.clientId} failed: ${err.message}`));
provider.on('server_error', (ctx, err) => console.error('server_error:', err));

// end_session asks for confirmation; the buttons submit oidc-provider's own form (id
// "op.logoutForm"). logout=yes ends the whole OP session (back-channel to every client).
async function logoutSource(ctx, form) {
  const auto = config.logout_auto_submit ? '<script>document.getElementById("logout-confirm").click()</script>' : '';
  ctx.body = page('Sign out', `${form}<p>Do you want to sign out of ${escapeHtml(ctx.host)}?</p>`
    + '<button type="submit" form="op.logoutForm" name="logout" value="yes" id="logout-confirm">Yes, sign me out</button>'
    + `<button type="submit" form="op.logoutForm" id="logout-cancel">No, stay signed in</button>${auto}`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.body = page('Signed out', '<p id="signed-out">You are signed out.</p>');
}

function loginForm(res, uid, error, login = '') {
  sendHtml(res, 200, 'Sign in', `${error ? `<p id="error">${escapeHtml(error)}</p>` : ''}`
    + `<form method="post" action="/interaction/${escapeHtml(uid)}/login">`
    + `<input name="login" id="login" value="${escapeHtml(login)}" autofocus>`
    + '<input type="password" name="password" id="password">'
    + '<button type="submit" id="submit">Sign in</button></form>');
}

// Our own interaction pages (devInteractions is off): a login form, and consent is granted
// automatically for everything the client asked for, so no consent page is ever shown.
async function interaction(req, res, uid, action) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    // e.g. SessionNotFound: the op_interaction cookie is missing or the interaction expired.
    return sendHtml(res, 400, 'Error', `<p id="error">${escapeHtml(err.error_description ?? err.message)}</p>`);
  }
  if (details.uid !== uid) return sendHtml(res, 400, 'Error', '<p id="error">interaction mismatch</p>');

  const { prompt, params, session } = details;
  if (prompt.name === 'login') {
    if (req.method !== 'POST' || action !== 'login') return loginForm(res, uid);
    const form = new URLSearchParams(await readBody(req));
    const login = form.get('login') ?? '';
    const user = users.find((u) => [u.sub, u.preferred_username, u.email].includes(login));
    if (!user || user.password !== form.get('password')) return loginForm(res, uid, 'Invalid credentials', login);
    // A person may say how they signed in here (amr, acr), as a provider
    // with its own second factor does in its ID tokens.
    const result = { accountId: user.sub, ...(user.amr && { amr: user.amr }), ...(user.acr && { acr: user.acr }) };
    return provider.interactionFinished(req, res, { login: result }, { mergeWithLastSubmission: false });
  }

  if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    const consent = details.grantId ? {} : { grantId };
    return provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
  }

  return sendHtml(res, 400, 'Error', `<p id="error">unsupported prompt ${escapeHtml(prompt.name)}</p>`);
}

// Test control: the OP "logs the account out" on its own (as an admin would), sending
// oidc-provider's real back-channel logout_token to every client of every session of `sub`.
// The sessions and their grants are then ended too, unless keep_session is true.
async function backchannelLogout({ sub, keep_session: keepSession = false }) {
  let sent = 0;
  const failed = [];
  for (const id of [...sessionIds]) {
    const session = await provider.Session.find(id);
    if (!session || session.accountId !== sub) continue;
    for (const [clientId, { sid, grantId }] of Object.entries(session.authorizations ?? {})) {
      const client = await provider.Client.find(clientId);
      if (client?.backchannelLogoutUri) {
        try {
          await client.backchannelLogout(sub, sid);
          sent += 1;
        } catch (err) {
          failed.push({ client_id: clientId, error: err.message });
        }
      }
      if (!keepSession && grantId) {
        await Promise.all([provider.AccessToken, provider.RefreshToken, provider.AuthorizationCode]
          .map((model) => model.revokeByGrantId(grantId)));
        await provider.Grant.adapter.destroy(grantId);
      }
    }
    if (!keepSession) await session.destroy();
  }
  return { sent, failed };
}

const callback = provider.callback();
server.on('request', handle('provider', async (req, res) => {
  const url = new URL(req.url, issuer);
  const m = url.pathname.match(/^\/interaction\/([^/]+)(?:\/(login))?$/);
  if (m) return interaction(req, res, m[1], m[2]);
  if (url.pathname === '/test/health') return sendJson(res, 200, { ok: true });
  if (url.pathname === '/test/backchannel-logout' && req.method === 'POST') {
    const body = await readJson(req);
    if (typeof body.sub !== 'string') return sendJson(res, 400, { error: 'sub (string) required' });
    return sendJson(res, 200, await backchannelLogout(body));
  }
  return callback(req, res);
}));

announce(issuer);
