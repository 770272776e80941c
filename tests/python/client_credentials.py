"""Asks for a client_credentials token with two of the most used Python
OAuth clients, each authenticating with HTTP Basic as it does by default.

Usage: client_credentials.py TOKEN_URL CLIENT_ID CLIENT_SECRET
Prints {"authlib": token, "requests_oauthlib": token} as JSON; a library
that fails prints its error and the script exits 1.
"""

import json
import os
import sys

# requests-oauthlib refuses plain http unless told: the gateway under test
# listens on loopback.
os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"

from authlib.integrations.requests_client import OAuth2Session  # noqa: E402
from oauthlib.oauth2 import BackendApplicationClient  # noqa: E402
from requests_oauthlib import OAuth2Session as RequestsOAuth2Session  # noqa: E402

token_url, client_id, client_secret = sys.argv[1:4]
tokens = {}
failed = False

try:
    session = OAuth2Session(client_id, client_secret, token_endpoint_auth_method="client_secret_basic")
    tokens["authlib"] = session.fetch_token(token_url, grant_type="client_credentials")
except Exception as error:  # report which library failed, and how
    print(f"authlib: {error!r}", file=sys.stderr)
    failed = True

try:
    session = RequestsOAuth2Session(client=BackendApplicationClient(client_id=client_id))
    tokens["requests_oauthlib"] = session.fetch_token(
        token_url=token_url, client_id=client_id, client_secret=client_secret
    )
except Exception as error:
    print(f"requests-oauthlib: {error!r}", file=sys.stderr)
    failed = True

print(json.dumps(tokens))
sys.exit(1 if failed else 0)
