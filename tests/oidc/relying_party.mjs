// A relying party nobody here wrote: openid-client, in OpenID Connect mode, against
// authgate as the OpenID Provider. It discovers the provider, signs a person in by the
// code flow with PKCE, state and nonce (posting authgate's sign-in form as a browser
// would), lets openid-client validate the ID token, reads userinfo, refreshes, and
// checks the ID token once more with jose, an independent JOSE library, against the
// JWKS. It prints one JSON line of what it found, or {"error": ...}.
//
// node relying_party.mjs <config.json>
//   {"issuer", "client_id", "client_secret", "redirect_uri", "username", "password", "scope",
//    "post_logout_redirect_uri" (optional: then it signs out by RP-initiated logout at the end)}
import { load, readConfig } from './lib.mjs';

const client = await load('openid-client');
const jose = await load('jose');
const cfg = readConfig();

// The sign-in form's hidden fields, and the cookies the page set.
function hiddenInputs(html) {
  const fields = {};
  for (const [, name, value] of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)) {
    fields[name] = value.replaceAll('&amp;', '&').replaceAll('&quot;', '"').replaceAll('&#x2f;', '/').replaceAll('&#x27;', "'").replaceAll('&lt;', '<').replaceAll('&gt;', '>');
  }
  return fields;
}

// Signs in at authgate's page for `url`, as a browser; answers where it sends the browser.
async function signIn(url) {
  const page = await fetch(url, { redirect: 'manual', headers: { accept: 'text/html' } });
  if (page.status !== 200) throw new Error(`the sign-in page answered ${page.status}: ${await page.text()}`);
  const cookies = page.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  const form = new URLSearchParams({ ...hiddenInputs(await page.text()), username: cfg.username, password: cfg.password });
  const posted = await fetch(new URL('/management/authorize', url), {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: cookies, 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
    body: form,
  });
  const location = posted.headers.get('location');
  if (!location) throw new Error(`the sign-in answered ${posted.status} with no Location: ${await posted.text()}`);
  return new URL(location, url);
}

try {
  const options = { execute: [client.allowInsecureRequests] };
  const config = await client.discovery(new URL(cfg.issuer), cfg.client_id, cfg.client_secret, undefined, options);
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: cfg.redirect_uri,
    scope: cfg.scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
  });
  const callback = await signIn(url);
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  // The same ID token, checked by jose alone against the published keys.
  const metadata = config.serverMetadata();
  const jwks = jose.createRemoteJWKSet(new URL(metadata.jwks_uri));
  const independent = await jose.jwtVerify(tokens.id_token, jwks, { issuer: metadata.issuer, audience: cfg.client_id });
  // RP-initiated logout, with the ID token as the hint, if asked for.
  let ended = null;
  if (cfg.post_logout_redirect_uri) {
    const endUrl = client.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token,
      post_logout_redirect_uri: cfg.post_logout_redirect_uri,
      state: 'bye-state',
    });
    const answer = await fetch(endUrl, { redirect: 'manual', headers: { accept: 'text/html' } });
    let refreshAfter;
    try {
      await client.refreshTokenGrant(config, refreshed.refresh_token ?? tokens.refresh_token);
      refreshAfter = 'accepted';
    } catch (err) {
      refreshAfter = err.error ?? String(err);
    }
    let userinfoAfter;
    try {
      await client.fetchUserInfo(config, refreshed.access_token, claims.sub);
      userinfoAfter = 'accepted';
    } catch (err) {
      userinfoAfter = err.status ?? String(err);
    }
    ended = { status: answer.status, location: answer.headers.get('location'), refreshAfter, userinfoAfter };
  }
  process.stdout.write(JSON.stringify({
    ended,
    claims,
    header: independent.protectedHeader,
    userinfo,
    refreshed_claims: refreshed.claims() ?? null,
    refreshed_access_token: Boolean(refreshed.access_token),
    metadata,
  }) + '\n');
} catch (err) {
  process.stdout.write(JSON.stringify({ error: String(err), code: err.code ?? null, cause: String(err.cause ?? '') }) + '\n');
}
