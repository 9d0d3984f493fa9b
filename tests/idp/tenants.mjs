// Several real OpenID Providers (panva/oidc-provider) in one process on loopback, one realm
// per tenant under /realms/<tenant>, as Keycloak serves a realm per customer. Each realm has
// its own signing key; for Tollgate's multi-tenant issuer tests.
//
//   node tenants.mjs --port 0 --tenants acme,globex --alg RS256 [--ttl S]
//
// Prints exactly one line on stdout when it is listening:
//   ready <port> http://127.0.0.1:<port>/realms/{tenant}
// and serves, besides the realms:
//   POST /_rotate/<tenant>  a new signing key (new kid) for that realm only: {"kid": ...}
//   GET  /_stats            requests per realm: {"<tenant>": {"discovery": n, "jwks": n},
//                           "unknown": n (requests for realms that do not exist)}
// An unknown realm answers 404, as Keycloak's does.
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

import { KEYGEN, configuration, newKey } from './realm.mjs';

console.log = console.info = console.error;

const fail = (msg) => {
  console.error(`tenants.mjs: ${msg}`);
  process.exit(2);
};

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    tenants: { type: 'string' },
    alg: { type: 'string', default: 'RS256' },
    ttl: { type: 'string', default: '600' },
  },
});
const port = Number(args.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad --port ${args.port}`);
const ttl = Number(args.ttl);
if (!Number.isInteger(ttl) || ttl < 1) fail(`bad --ttl ${args.ttl}`);
if (!KEYGEN[args.alg]) fail(`--alg must be one of ${Object.keys(KEYGEN).join(', ')}`);
const names = (args.tenants ?? '').split(',').filter(Boolean);
if (names.length === 0) fail('--tenants a,b,... is required');

const realms = new Map(); // tenant -> { callback, kid, rotations }
const stats = { unknown: 0 };
let base = null;

function realm(tenant, rotations) {
  const kid = `${tenant}-k${rotations + 1}`;
  const provider = new Provider(`${base}/realms/${tenant}`, configuration(newKey(args.alg, kid), ttl));
  provider.on('server_error', (_ctx, err) => console.error(`${tenant} server_error:`, err));
  realms.set(tenant, { callback: provider.callback(), kid, rotations });
  stats[tenant] ??= { discovery: 0, jwks: 0 };
}

const json = (res, status, body) =>
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

const server = http.createServer((req, res) => {
  const url = req.url;
  if (req.method === 'GET' && url === '/_stats') return json(res, 200, stats);
  const rotate = /^\/_rotate\/([^/?]+)$/.exec(url);
  if (req.method === 'POST' && rotate) {
    const current = realms.get(rotate[1]);
    if (!current) return json(res, 404, { error: 'not_found' });
    realm(rotate[1], current.rotations + 1);
    return json(res, 200, { kid: realms.get(rotate[1]).kid });
  }
  // /realms/<tenant>/<rest>: mounted as issuer.mjs mounts its one realm.
  const m = /^\/realms\/([^/?]+)(.*)$/.exec(url);
  const r = m && realms.get(m[1]);
  if (!r || (m[2] !== '' && !/^[/?]/.test(m[2]))) {
    stats.unknown += 1;
    return json(res, 404, { error: 'not_found' });
  }
  const rest = m[2];
  if (rest.startsWith('/.well-known/openid-configuration')) stats[m[1]].discovery += 1;
  if (rest.startsWith('/jwks')) stats[m[1]].jwks += 1;
  req.originalUrl = url;
  req.url = rest.startsWith('/') ? rest : `/${rest}`;
  r.callback(req, res);
});

server.listen(port, '127.0.0.1', () => {
  const actualPort = server.address().port;
  base = `http://127.0.0.1:${actualPort}`;
  for (const t of names) realm(t, 0);
  process.stdout.write(`ready ${actualPort} ${base}/realms/{tenant}\n`);
});
server.on('error', (err) => fail(err.message));

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
