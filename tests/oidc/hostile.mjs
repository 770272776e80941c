// A hostile OpenID provider: speaks just enough OIDC (code flow + PKCE) to get through a
// login, but in most modes hands out ID tokens or responses an RP must reject.
// Usage: node tests/oidc/hostile.mjs <config.json>   ({"port":0,"client_id":"authgate","mode":"valid"})
// The mode can be switched at runtime with POST /mode {"mode": "..."}; README.md lists them.
import crypto from 'node:crypto';
import http from 'node:http';
import {
  announce, handle, listen, load, readBody, readConfig, readJson, sendJson,
} from './lib.mjs';

const config = readConfig();
const jose = await load('jose');

const MODES = ['valid', 'jwks-without-key', 'mix-up', 'error', 'wrong-aud', 'wrong-nonce', 'wrong-iss',
  'expired', 'alg-none', 'hmac-key-confusion', 'unknown-kid', 'azp-mismatch'];
let mode = config.mode ?? 'valid';
if (!MODES.includes(mode)) throw new Error(`unknown mode ${mode}`);
const clientId = config.client_id ?? 'authgate';
const EVIL = 'http://evil.example';

const server = http.createServer();
const port = await listen(server, config.port ?? 0);
const issuer = config.issuer ?? `http://127.0.0.1:${port}`;

// k1 is the advertised key; k2 signs "unknown-kid" tokens and is never published;
// "other" is what the JWKS holds instead of k1 in jwks-without-key mode.
const keys = {};
for (const kid of ['k1', 'k2', 'other']) {
  const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { extractable: true });
  keys[kid] = { privateKey, publicKey, jwk: { ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
}
const k1Pem = await jose.exportSPKI(keys.k1.publicKey);

const stats = { discovery: 0, jwks: 0, authorize: 0, token: 0, userinfo: 0 };
const codes = new Map(); // code -> { nonce, challenge, clientId, used }
const accessTokens = new Set();
const claims = {
  sub: 'h-mallory', email: 'mallory@example.com', email_verified: true, preferred_username: 'mallory', groups: ['staff'],
};
const random = () => crypto.randomBytes(24).toString('base64url');
const b64json = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

async function idToken(nonce) {
  const now = Math.floor(Date.now() / 1000);
  const payload = { iss: issuer, aud: clientId, iat: now, exp: now + 300, ...claims };
  if (nonce !== undefined) payload.nonce = nonce;
  switch (mode) {
    case 'wrong-aud': payload.aud = 'someone-else'; break;
    case 'wrong-nonce': payload.nonce = 'not-yours'; break;
    case 'wrong-iss': payload.iss = EVIL; break;
    case 'expired': Object.assign(payload, { exp: now - 3600, iat: now - 7200 }); break;
    case 'azp-mismatch': Object.assign(payload, { aud: [clientId, 'other'], azp: 'other' }); break;
    case 'alg-none': return `${b64json({ alg: 'none' })}.${b64json(payload)}.`;
    default: break;
  }
  if (mode === 'hmac-key-confusion') {
    // The classic confusion attack: HS256 keyed with the public key's PEM text.
    return new jose.SignJWT(payload).setProtectedHeader({ alg: 'HS256', kid: 'k1' })
      .sign(new TextEncoder().encode(k1Pem));
  }
  const kid = mode === 'unknown-kid' ? 'k2' : 'k1';
  return new jose.SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).sign(keys[kid].privateKey);
}

async function tokenResponse(res, nonce) {
  const accessToken = random();
  accessTokens.add(accessToken);
  sendJson(res, 200, {
    access_token: accessToken, token_type: 'Bearer', expires_in: 3600, id_token: await idToken(nonce), refresh_token: random(),
  });
}

function clientOf(req, form) {
  const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
  if (basic) return decodeURIComponent(Buffer.from(basic[1], 'base64').toString().split(':')[0]);
  return form.get('client_id');
}

const routes = {
  'GET /.well-known/openid-configuration': (req, res) => {
    stats.discovery += 1;
    sendJson(res, 200, {
      issuer,
      authorization_endpoint: `${issuer}/authorize`,
      token_endpoint: `${issuer}/token`,
      jwks_uri: `${issuer}/jwks`,
      userinfo_endpoint: `${issuer}/userinfo`,
      response_types_supported: ['code'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      scopes_supported: ['openid', 'email', 'profile', 'groups', 'offline_access'],
      authorization_response_iss_parameter_supported: true,
    });
  },
  'GET /jwks': (req, res) => {
    stats.jwks += 1;
    sendJson(res, 200, { keys: [mode === 'jwks-without-key' ? keys.other.jwk : keys.k1.jwk] });
  },
  // No login page: every authorization request is approved (or refused) at once.
  'GET /authorize': (req, res, url) => {
    stats.authorize += 1;
    const q = url.searchParams;
    const target = new URL(q.get('redirect_uri'));
    if (mode === 'error') {
      target.searchParams.set('error', 'access_denied');
      target.searchParams.set('error_description', 'The user said no');
    } else {
      const code = random();
      codes.set(code, { nonce: q.get('nonce') ?? undefined, challenge: q.get('code_challenge'), clientId: q.get('client_id') });
      target.searchParams.set('code', code);
    }
    if (q.has('state')) target.searchParams.set('state', q.get('state'));
    target.searchParams.set('iss', mode === 'mix-up' ? EVIL : issuer);
    res.writeHead(302, { location: target.href });
    res.end();
  },
  'POST /token': async (req, res) => {
    stats.token += 1;
    const form = new URLSearchParams(await readBody(req));
    const grantType = form.get('grant_type');
    if (grantType === 'refresh_token') return tokenResponse(res, undefined);
    if (grantType !== 'authorization_code') return sendJson(res, 400, { error: 'unsupported_grant_type' });
    const entry = codes.get(form.get('code'));
    if (!entry || entry.used) return sendJson(res, 400, { error: 'invalid_grant', error_description: 'unknown or reused code' });
    entry.used = true; // single use, even when the rest of the request is wrong
    const verifier = form.get('code_verifier') ?? '';
    const expected = crypto.createHash('sha256').update(verifier).digest('base64url');
    if (!entry.challenge || expected !== entry.challenge) {
      return sendJson(res, 400, { error: 'invalid_grant', error_description: 'PKCE verification failed' });
    }
    if (clientOf(req, form) !== entry.clientId) return sendJson(res, 401, { error: 'invalid_client' });
    return tokenResponse(res, entry.nonce);
  },
  'GET /userinfo': (req, res) => {
    stats.userinfo += 1;
    const token = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!accessTokens.has(token)) return sendJson(res, 401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' });
    return sendJson(res, 200, claims);
  },
  'POST /mode': async (req, res) => {
    const body = await readJson(req);
    if (!MODES.includes(body.mode)) return sendJson(res, 400, { error: `unknown mode ${body.mode}`, modes: MODES });
    mode = body.mode;
    return sendJson(res, 200, { mode });
  },
  'GET /stats': (req, res) => sendJson(res, 200, { ...stats, mode }),
};
routes['POST /userinfo'] = routes['GET /userinfo'];

server.on('request', handle('hostile', (req, res) => {
  const url = new URL(req.url, issuer);
  const route = routes[`${req.method} ${url.pathname}`];
  if (!route) return sendJson(res, 404, { error: 'not_found' });
  return route(req, res, url);
}));

announce(issuer);
