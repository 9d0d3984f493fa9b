// What every test realm has in common, for issuer.mjs (one realm) and tenants.mjs (one realm
// per tenant): the clients, the claims their tokens carry, and the oidc-provider
// configuration that makes client_credentials tokens JWTs (resource indicators).
import * as crypto from 'node:crypto';

import { errors } from 'oidc-provider';

// node:crypto key generation parameters for each JWS alg we support.
export const KEYGEN = {
  RS256: ['rsa', { modulusLength: 2048 }],
  ES256: ['ec', { namedCurve: 'P-256' }],
  EdDSA: ['ed25519', {}],
};
// A new private signing JWK.
export function newKey(alg, kid) {
  const [type, opts] = KEYGEN[alg];
  const { privateKey } = crypto.generateKeyPairSync(type, opts);
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

// Claims added to every access token, per client (Keycloak-style roles plus
// custom claims the gateway can map into headers / policies).
export const EXTRA_CLAIMS = {
  'svc-admin': { realm_access: { roles: ['admin', 'user'] }, plan: 'pro', email: 'admin@example.test' },
  'svc-user': { realm_access: { roles: ['user'] }, plan: 'free' },
};
export const AUDIENCE = 'https://api.example.test';
const client = (client_id, client_secret) => ({
  client_id,
  client_secret,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_basic',
  scope: 'api:read api:write',
});

// The oidc-provider configuration of a realm signing with `jwk` (its alg) and tokens living
// `ttl` seconds.
export const configuration = (jwk, ttl) => ({
  clients: [client('svc-admin', 'svc-admin-secret'), client('svc-user', 'svc-user-secret')],
  jwks: { keys: [jwk] },
  // Scopes the server knows; clients may only be granted scopes listed here.
  scopes: ['api:read', 'api:write'],
  // ID tokens are never issued (no browser flows), but the client default must
  // name an alg the keystore can sign with, or client validation fails.
  clientDefaults: { id_token_signed_response_alg: jwk.alg },
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
          jwt: { sign: { alg: jwk.alg } },
        };
      },
    },
  },
  extraTokenClaims: (_ctx, token) => EXTRA_CLAIMS[token.clientId],
  ttl: { ClientCredentials: ttl },
});
