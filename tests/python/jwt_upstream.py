"""An upstream that trusts only X-Authgate-Jwt, verified offline with PyJWT
against the gateway's JWKS (fetched again, by PyJWKClient, for a key id it
has not seen: a rotation).

Usage: jwt_upstream.py JWKS_URL ISSUER AUDIENCE CACHE_SECONDS
CACHE_SECONDS is how long the JWKS is kept (PyJWKClient's lifespan: 300 by
default, as the gateway's Cache-Control says; a test that stands in for
five minutes passing keeps it a second). Prints "ready http://127.0.0.1:PORT", then answers every request with JSON:
200 {"claims", "kid", "authorization", "cookie"} for a JWT that verifies,
401 {"error"} otherwise. Lives until its stdin closes.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

jwks_url, issuer, audience, cache_seconds = sys.argv[1:5]
keys = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=float(cache_seconds))


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        token = self.headers.get("x-authgate-jwt")
        if not token:
            return self.answer(401, {"error": "no X-Authgate-Jwt"})
        try:
            key = keys.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256", "ES256", "EdDSA"],
                audience=audience,
                issuer=issuer,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except Exception as error:  # every refusal, said
            return self.answer(401, {"error": f"{type(error).__name__}: {error}"})
        self.answer(
            200,
            {
                "claims": claims,
                "kid": jwt.get_unverified_header(token).get("kid"),
                "authorization": self.headers.get("authorization"),
                "cookie": self.headers.get("cookie"),
                "jwt_fields": len(self.headers.get_all("x-authgate-jwt") or []),
            },
        )

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(f"ready http://127.0.0.1:{server.server_address[1]}", flush=True)
sys.stdin.read()
