// A relying party nobody here wrote: openid-client, in OpenID Connect mode, against
// authgate as the OpenID Provider. It discovers the provider, signs a person in by the
// code flow with PKCE, state and nonce (posting authgate's sign-in form as a browser
// would), lets openid-client validate the ID token, reads userinfo, refreshes, and
// checks the ID token once more with jose, an independent JOSE library, against the
// JWKS. It prints one JSON line of what it found, or {"error": ...}.
//
// node relying_party.mjs <config.json>
//   {"issuer", "client_id", "client_secret", "redirect_uri", "username", "password", "scope",
//    "post_logout_redirect_uri" (optional: then it signs out by RP-initiated logout at the end),
//    "acr_values" (optional: asked for), "totp_secret" (optional: the base32 secret of the
//    person's authenticator app, whose code it gives when authgate asks for one)}
import { createHmac } from 'node:crypto';
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

// RFC 6238 (HMAC-SHA-1, 6 digits, 30 s) for a base32 secret, `offset` seconds from now.
function totp(secret, offset) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret.replace(/=+$/, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor((Date.now() / 1000 + offset) / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const at = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(at) & 0x7fffffff) % 1000000).padStart(6, '0');
}

// The cookies a response set, added to `jar`.
function keep(jar, response) {
  for (const c of response.headers.getSetCookie()) {
    const [pair] = c.split(';');
    jar.set(pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1));
  }
  return [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
}

// Posts `fields` (with the page's hidden ones) as a browser's form.
async function submit(url, html, fields, cookies) {
  return fetch(url, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: cookies, 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
    body: new URLSearchParams({ ...hiddenInputs(html), ...fields }),
  });
}

// Signs in at authgate's page for `url`, as a browser (giving the authenticator's code
// when asked for it); answers where it sends the browser.
async function signIn(url) {
  const jar = new Map();
  const page = await fetch(url, { redirect: 'manual', headers: { accept: 'text/html' } });
  if (page.status !== 200) throw new Error(`the sign-in page answered ${page.status}: ${await page.text()}`);
  let cookies = keep(jar, page);
  let posted = await submit(new URL('/management/authorize', url), await page.text(),
    { username: cfg.username, password: cfg.password }, cookies);
  let location = posted.headers.get('location');
  if (location === '/management/second-factor' && cfg.totp_secret) {
    cookies = keep(jar, posted);
    const asked = new URL(location, url);
    const second = await fetch(asked, { redirect: 'manual', headers: { cookie: cookies, accept: 'text/html' } });
    cookies = keep(jar, second);
    // The next step's code: the enrolment used the current one.
    posted = await submit(asked, await second.text(), { code: totp(cfg.totp_secret, 30) }, cookies);
    location = posted.headers.get('location');
  }
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
    ...(cfg.acr_values && { acr_values: cfg.acr_values }),
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
