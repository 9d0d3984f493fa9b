"""bench/mint.py: the keys, JWKS and tokens of the `jwt` and `full` scenarios of bench/run.sh.

Usage:

    mint.py JWKS_OUT TOKEN_OUT
    mint.py --full --alg ALG --kid KID [--guest GUEST_OUT] [--tokens TOKENS_OUT --count N]
            JWKS_OUT TOKEN_OUT

Makes a fresh key for ALG (default RS256: RSA-2048; ES256: EC P-256; EdDSA: Ed25519), kept in
memory only, never written, and writes its public half as a JWKS with one key (kid KID, default
"bench-1", alg ALG) to JWKS_OUT, and one token signed with it to TOKEN_OUT (no newline): iss
https://issuer.bench.test, aud https://api.bench.test, sub bench-user, a roles claim, iat now,
exp now + 1 day.

With --full (the `full` scenario), the token's roles are ["user"] and it also carries
plan "pro" and email bench-user@bench.test; --guest writes a token that is the same but for
sub bench-guest and roles ["guest"] (a token without the role `user`) to GUEST_OUT; --tokens
writes N such tokens for the role `user` (default 10000), one a line, each with its own sub
(bench-user-00000, bench-user-00001, ...) and email, to TOKENS_OUT.

Needs PyJWT with its crypto extra (`pyjwt[crypto]`), which run.sh installs into bench/.venv.
"""

import argparse
import json
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

ISSUER = "https://issuer.bench.test"
AUDIENCE = "https://api.bench.test"

# The private key of each algorithm the scenarios use.
NEW_KEY = {
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
}


def public_jwk(alg: str, kid: str, key) -> dict:
    """The public half of `key` as a JWK (kty and the key's numbers), with use, alg and kid."""
    jwk = json.loads(get_default_algorithms()[alg].to_jwk(key.public_key()))
    jwk.pop("key_ops", None)   # PyJWT adds ["verify"] to RSA keys; "use" says it
    jwk.update({"use": "sig", "alg": alg, "kid": kid})
    return jwk


def main() -> None:
    parser = argparse.ArgumentParser(description="Keys, JWKS and tokens for bench/run.sh.")
    parser.add_argument("jwks_out", metavar="JWKS_OUT")
    parser.add_argument("token_out", metavar="TOKEN_OUT")
    parser.add_argument("--alg", choices=sorted(NEW_KEY), default="RS256")
    parser.add_argument("--kid", default="bench-1")
    parser.add_argument("--full", action="store_true",
                        help="the full scenario's claims: roles [user], plan pro, email")
    parser.add_argument("--guest", metavar="GUEST_OUT",
                        help="also a token with roles [guest] (needs --full)")
    parser.add_argument("--tokens", metavar="TOKENS_OUT",
                        help="also --count distinct tokens, one a line (needs --full)")
    parser.add_argument("--count", type=int, default=10000)
    args = parser.parse_args()
    if (args.guest or args.tokens) and not args.full:
        parser.error("--guest and --tokens need --full")
    if args.count < 1:
        parser.error("--count must be at least 1")

    key = NEW_KEY[args.alg]()
    jwk = public_jwk(args.alg, args.kid, key)
    now = int(time.time())

    def mint(sub: str, roles: list) -> str:
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": sub,
            "roles": roles,
            "iat": now,
            "exp": now + 86400,
        }
        if args.full:
            claims.update({"plan": "pro", "email": f"{sub}@bench.test"})
        return jwt.encode(claims, key, algorithm=args.alg, headers={"kid": args.kid})

    token = mint("bench-user", ["user"] if args.full else ["bench", "reader"])
    guest = mint("bench-guest", ["guest"]) if args.guest else None

    # Check our own work before a proxy does.
    public = jwt.PyJWK(jwk).key
    for t in filter(None, [token, guest]):
        jwt.decode(t, public, algorithms=[args.alg], audience=AUDIENCE, issuer=ISSUER)

    with open(args.jwks_out, "w", encoding="ascii") as f:
        json.dump({"keys": [jwk]}, f)
    with open(args.token_out, "w", encoding="ascii") as f:
        f.write(token)
    if guest:
        with open(args.guest, "w", encoding="ascii") as f:
            f.write(guest)
    if args.tokens:
        with open(args.tokens, "w", encoding="ascii") as f:
            for i in range(args.count):
                f.write(mint(f"bench-user-{i:05d}", ["user"]) + "\n")


if __name__ == "__main__":
    main()
