"""bench/mint.py: the key, JWKS and token of the `jwt` scenario of bench/run.sh.

Usage: mint.py JWKS_OUT TOKEN_OUT

Makes a fresh RSA-2048 key (kept in memory only, never written), writes its public half as a
JWKS with one key (kid "bench-1", alg RS256) to JWKS_OUT, and one RS256 token signed with it to
TOKEN_OUT (no newline): iss https://issuer.bench.test, aud https://api.bench.test,
sub bench-user, a roles claim, iat now, exp now + 1 day.

Needs PyJWT with its crypto extra (`pyjwt[crypto]`), which run.sh installs into bench/.venv.
"""

import base64
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://issuer.bench.test"
AUDIENCE = "https://api.bench.test"
KID = "bench-1"


def b64url_uint(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: mint.py JWKS_OUT TOKEN_OUT")
    jwks_out, token_out = sys.argv[1], sys.argv[2]

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_numbers()
    jwks = {
        "keys": [
            {
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "kid": KID,
                "n": b64url_uint(public.n),
                "e": b64url_uint(public.e),
            }
        ]
    }

    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "bench-user",
        "roles": ["bench", "reader"],
        "iat": now,
        "exp": now + 86400,
    }
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})

    # Check our own work before a proxy does.
    jwk = jwt.PyJWK(jwks["keys"][0])
    jwt.decode(token, jwk.key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)

    with open(jwks_out, "w", encoding="ascii") as f:
        json.dump(jwks, f)
    with open(token_out, "w", encoding="ascii") as f:
        f.write(token)


if __name__ == "__main__":
    main()
