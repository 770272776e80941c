// Plumbing shared by provider.mjs and hostile.mjs: where the npm packages live,
// the config file, the "ready" handshake with the test harness, and tiny HTTP helpers.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// The harness reads exactly one line from stdout ("ready <issuer>"). oidc-provider prints
// notices with console.info, so every console method is pointed at stderr.
console.log = console.info = console.debug = console.error;

// ESM ignores NODE_PATH, and the packages are installed by `npm ci --prefix target/test-node`,
// not next to these scripts, so modules are resolved from AUTHGATE_NODE_MODULES explicitly.
const modules = path.resolve(process.env.AUTHGATE_NODE_MODULES
  ?? fileURLToPath(new URL('../../target/test-node/node_modules', import.meta.url)));
const require = createRequire(path.join(modules, 'resolve-from-here.js'));

export async function load(specifier) {
  let file;
  try {
    file = require.resolve(specifier);
  } catch (cause) {
    throw new Error(`cannot find ${specifier} under ${modules}; run `
      + '`npm ci --prefix target/test-node` with tests/oidc/package*.json copied there', { cause });
  }
  // Refuse to silently pick up some other copy from a parent node_modules.
  if (!file.startsWith(modules + path.sep)) throw new Error(`${specifier} resolved outside ${modules}: ${file}`);
  return import(pathToFileURL(file).href);
}

export function readConfig() {
  const file = process.argv[2];
  if (!file) throw new Error(`usage: node ${path.basename(process.argv[1])} <config.json>`);
  return JSON.parse(readFileSync(file, 'utf8'));
}

export function listen(server, port = 0) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server.address().port));
  });
}

// Print the handshake line, then live exactly as long as the harness holds our stdin open:
// a test that finishes, panics or is killed closes the pipe and we go away with it.
export function announce(issuer) {
  process.stdout.write(`ready ${issuer}\n`);
  const stop = () => process.exit(0);
  process.stdin.on('end', stop).on('close', stop).on('error', stop).resume();
  process.on('SIGTERM', stop).on('SIGINT', stop);
}

// One stderr line per request, written when the response is done, plus a catch-all so a bug
// in a handler answers 500 instead of killing the process under a running test.
export function handle(name, fn) {
  return (req, res) => {
    res.on('finish', () => console.error(`${name}: ${req.method} ${req.url} -> ${res.statusCode}`));
    Promise.resolve(fn(req, res)).catch((err) => {
      console.error(`${name}: ${req.method} ${req.url} failed:`, err);
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(err) });
      else res.end();
    });
  };
}

export async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

export async function readJson(req) {
  const text = await readBody(req);
  return text ? JSON.parse(text) : {};
}

export function sendJson(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

export function sendHtml(res, status, title, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(page(title, body));
}

// Self-contained pages: no external fonts or scripts (the test machines have no network).
export function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>`
    + `<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;
}

export function escapeHtml(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
