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
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

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

// node:crypto key generation parameters for each JWS alg we support.
const KEYGEN = {
  RS256: ['rsa', { modulusLength: 2048 }],
  ES256: ['ec', { namedCurve: 'P-256' }],
  EdDSA: ['ed25519', {}],
};
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
  const [type, opts] = KEYGEN[args.alg];
  const { privateKey } = crypto.generateKeyPairSync(type, opts);
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: args.kid, alg: args.alg, use: 'sig' };
  if (file) fs.writeFileSync(file, `${JSON.stringify(jwk)}\n`, { mode: 0o600 });
  return jwk;
}
const jwk = signingKey();

// Claims added to every access token, per client (Keycloak-style roles plus
// custom claims the gateway can map into headers / policies).
const EXTRA_CLAIMS = {
  'svc-admin': { realm_access: { roles: ['admin', 'user'] }, plan: 'pro', email: 'admin@example.test' },
  'svc-user': { realm_access: { roles: ['user'] }, plan: 'free' },
};
const AUDIENCE = 'https://api.example.test';
const client = (client_id, client_secret) => ({
  client_id,
  client_secret,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_basic',
  scope: 'api:read api:write',
});

const configuration = {
  clients: [client('svc-admin', 'svc-admin-secret'), client('svc-user', 'svc-user-secret')],
  jwks: { keys: [jwk] },
  // Scopes the server knows; clients may only be granted scopes listed here.
  scopes: ['api:read', 'api:write'],
  // ID tokens are never issued (no browser flows), but the client default must
  // name an alg the keystore can sign with, or client validation fails.
  clientDefaults: { id_token_signed_response_alg: args.alg },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // Resource indicators are what make oidc-provider issue JWT (not opaque)
    // access tokens: the token's aud, scope set and format come from here.
    resourceIndicators: {
      enabled: true,
      defaultResource: () => AUDIENCE,
      // The one API this issuer knows; any other resource= is invalid_target.
      getResourceServerInfo: (_ctx, resource) => {
        if (resource !== AUDIENCE) throw new errors.InvalidTarget();
        return {
          scope: 'api:read api:write',
          audience: AUDIENCE,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: args.alg } },
        };
      },
    },
  },
  extraTokenClaims: (_ctx, token) => EXTRA_CLAIMS[token.clientId],
  ttl: { ClientCredentials: ttl },
};

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
