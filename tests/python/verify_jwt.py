"""Verifies a JWT the gateway signed, with PyJWT against its JWKS: an
independent JOSE library, not the code that made it.

Usage: verify_jwt.py JWKS_URL TOKEN AUDIENCE ISSUER TYP
Prints the claims as JSON, or exits 1 saying why not.
"""

import json
import sys

import jwt

jwks_url, token, audience, issuer, typ = sys.argv[1:6]
header = jwt.get_unverified_header(token)
if header.get("typ") != typ:
    sys.exit(f"typ is {header.get('typ')!r}, not {typ!r}")
key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(token)
claims = jwt.decode(
    token,
    key,
    algorithms=["RS256", "ES256", "EdDSA"],
    audience=audience,
    issuer=issuer,
    # A logout token or a JWT access token has a jti; an ID token a sub.
    options={"require": ["iat", "aud", "iss", "jti" if typ != "JWT" else "sub"], "verify_exp": True},
)
print(json.dumps(claims))
