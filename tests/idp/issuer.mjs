// A real OpenID Provider (panva/oidc-provider) on loopback, for Tollgate's
// integration tests. It issues JWT access tokens through the
// client_credentials grant, signed with one key whose alg and kid the test
// chooses, so the gateway's JWKS / discovery / validation code runs against a
// genuine issuer rather than hand-made tokens.
//
//   node issuer.mjs --port 0 --issuer-path /realms/main --alg RS256 --kid k1 [--key-file F] [--ttl S]
//
// Prints exactly one line on stdout when it is listening:
//   ready <port> <issuer-url>
// Everything else (oidc-provider notices, errors) goes to stderr.
import * as fs from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

import { KEYGEN, configuration as realmConfiguration, newKey } from './realm.mjs';

// stdout is reserved for the single "ready" line a test reads; oidc-provider
// prints its development notices with console.info, so send those to stderr.
console.log = console.info = console.error;

const fail = (msg) => {
  console.error(`issuer.mjs: ${msg}`);
  process.exit(2);
};

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'issuer-path': { type: 'string', default: '' },
    alg: { type: 'string', default: 'RS256' },
    kid: { type: 'string' },
    'key-file': { type: 'string' },
    ttl: { type: 'string', default: '600' }, // access token lifetime, seconds
  },
});

// The issuer path is normalised to "" or "/seg/seg" (leading slash, no trailing one).
const issuerPath = args['issuer-path'].replace(/\/+$/, '').replace(/^(?=[^/])/, '/');
const port = Number(args.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad --port ${args.port}`);
const ttl = Number(args.ttl);
if (!Number.isInteger(ttl) || ttl < 1) fail(`bad --ttl ${args.ttl}`);

if (!KEYGEN[args.alg]) fail(`--alg must be one of ${Object.keys(KEYGEN).join(', ')}`);

// Load the private signing JWK from --key-file, or make a new one (and save it
// there, so a restart with the same file keeps the same key and kid; a new
// file plus a new kid is a real key rotation).
function signingKey() {
  const file = args['key-file'];
  if (file && fs.existsSync(file)) {
    const jwk = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (jwk.alg !== args.alg) fail(`${file} holds an ${jwk.alg} key, not ${args.alg}`);
    if (args.kid && jwk.kid !== args.kid) fail(`${file} holds kid ${jwk.kid}, not ${args.kid}`);
    return jwk;
  }
  if (!args.kid) fail('--kid is required when no existing --key-file is given');
  const jwk = newKey(args.alg, args.kid);
  if (file) fs.writeFileSync(file, `${JSON.stringify(jwk)}\n`, { mode: 0o600 });
  return jwk;
}
const jwk = signingKey();

const configuration = realmConfiguration(jwk, ttl);

// The issuer needs the real port, so listen first (port 0 = any free port)
// and create the provider once the port is known.
let callback = null;
const server = http.createServer((req, res) => {
  // Mount the provider under the issuer path: strip the prefix from req.url
  // and keep the full path in req.originalUrl, from which oidc-provider works
  // out its mount path when it builds endpoint URLs (discovery, jwks_uri).
  const url = req.url;
  const rest = url.slice(issuerPath.length);
  if (!callback || !url.startsWith(issuerPath) || (rest !== '' && !/^[/?]/.test(rest))) {
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
    return;
  }
  req.originalUrl = url;
  req.url = rest.startsWith('/') ? rest : `/${rest}`;
  callback(req, res);
});

server.listen(port, '127.0.0.1', () => {
  const actualPort = server.address().port;
  const issuer = `http://127.0.0.1:${actualPort}${issuerPath}`;
  const provider = new Provider(issuer, configuration);
  // Plain http on loopback is fine: oidc-provider 9 issues tokens for an
  // http:// issuer whatever NODE_ENV is (https only matters for the cookies
  // of browser flows, which are not used here).
  provider.on('server_error', (_ctx, err) => console.error('server_error:', err));
  provider.on('grant.error', (_ctx, err) => console.error('grant.error:', err.message, err.error_description ?? ''));
  callback = provider.callback();
  process.stdout.write(`ready ${actualPort} ${issuer}\n`);
});
server.on('error', (err) => fail(err.message));

// Exit promptly on SIGTERM / SIGINT, dropping keep-alive connections.
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
