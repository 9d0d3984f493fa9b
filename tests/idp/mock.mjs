// A second, differently shaped real issuer (oauth2-mock-server) on loopback,
// for Tollgate's integration tests: issuer URL with no path, RS256 tokens of
// type "JWT", and Auth0-style namespaced role claims instead of Keycloak's
// realm_access. Any client id is accepted at its token endpoint.
//
//   node mock.mjs --port 0 [--kid KID]
//
// Prints exactly one line on stdout when it is listening:
//   ready <port> <issuer-url>
import { parseArgs } from 'node:util';

import { Events, OAuth2Server } from 'oauth2-mock-server';

// stdout is reserved for the single "ready" line a test reads.
console.log = console.info = console.error;

const fail = (msg) => {
  console.error(`mock.mjs: ${msg}`);
  process.exit(2);
};

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    kid: { type: 'string' }, // default: a random kid chosen by the library
  },
});
const port = Number(args.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad --port ${args.port}`);

const AUDIENCE = 'https://api.example.test';
const ROLES_CLAIM = 'https://example.com/roles';

const server = new OAuth2Server();
// One fresh RS256 key per run; its public half is served at /jwks.
await server.issuer.keys.generate('RS256', args.kid ? { kid: args.kid } : undefined);

// The client id of a token request: HTTP Basic user name, else the client_id form field.
function clientIdOf(req) {
  const [scheme, value] = (req.headers.authorization ?? '').split(' ');
  if (scheme?.toLowerCase() === 'basic' && value) {
    return decodeURIComponent(Buffer.from(value, 'base64').toString('utf8').split(':')[0]);
  }
  return req.body?.client_id;
}

// Shape every token like an Auth0 API access token.
server.service.on(Events.BeforeTokenSigning, (token, req) => {
  const p = token.payload;
  p[ROLES_CLAIM] = ['admin'];
  // The library copies a requested `aud` form field into client_credentials
  // tokens (and sets aud = client id on id_tokens); default it otherwise.
  p.aud ??= AUDIENCE;
  // client_credentials tokens carry no sub; Auth0 uses "<client_id>@clients".
  const clientId = clientIdOf(req);
  if (p.sub === undefined && clientId) p.sub = `${clientId}@clients`;
});

try {
  await server.start(port, '127.0.0.1');
} catch (err) {
  fail(err.message);
}
const actualPort = server.address().port;
// The library names loopback binds "localhost" in its issuer URL; use the
// address we really bound, so iss / discovery / jwks_uri all say 127.0.0.1.
server.issuer.url = `http://127.0.0.1:${actualPort}`;
process.stdout.write(`ready ${actualPort} ${server.issuer.url}\n`);

// Exit promptly on SIGTERM / SIGINT.
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.stop().finally(() => process.exit(0));
  });
}
