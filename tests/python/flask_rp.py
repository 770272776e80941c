"""A Flask app that signs people in with authlib's OpenID Connect client,
against authgate as the provider, as any "Sign in with..." app would.

Usage: flask_rp.py ISSUER CLIENT_ID CLIENT_SECRET PORT
Prints "ready http://127.0.0.1:PORT", then serves:
  /          the signed-in person's ID token claims, or a "Sign in" link
  /login     off to authgate (code flow, PKCE, nonce: authlib's defaults)
  /callback  back from authgate: the ID token checked by authlib
  /logout    off to authgate's end_session_endpoint with the id_token_hint
  /bye       where authgate sends the browser back
  /backchannel  OpenID Connect Back-Channel Logout: the logout token is
             checked by authlib against the JWKS and its sid recorded
  /logouts   the sids logged out by back-channel, as JSON
Lives until its stdin closes.
"""

import html
import json
import sys
import threading

from authlib.integrations.flask_client import OAuth
from authlib.jose import JsonWebKey, jwt
from flask import Flask, redirect, request, session, url_for
import requests
from werkzeug.serving import make_server

issuer, client_id, client_secret, port = sys.argv[1:5]
base = f"http://127.0.0.1:{port}"
app = Flask(__name__)
app.secret_key = "flask-rp-test-only"
oauth = OAuth(app)
oauth.register(
    "authgate",
    client_id=client_id,
    client_secret=client_secret,
    server_metadata_url=f"{issuer}/.well-known/openid-configuration",
    client_kwargs={"scope": "openid profile email groups", "code_challenge_method": "S256"},
)
logouts = []


@app.route("/")
def home():
    claims = session.get("claims")
    if not claims:
        return '<p id="anonymous">Not signed in. <a id="login" href="/login">Sign in with authgate</a></p>'
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td id='claim-{html.escape(k)}'>{html.escape(json.dumps(v))}</td></tr>" for k, v in claims.items())
    return f'<table id="claims">{rows}</table><p><a id="logout" href="/logout">Sign out</a></p>'


@app.route("/login")
def login():
    return oauth.authgate.authorize_redirect(f"{base}/callback")


@app.route("/callback")
def callback():
    token = oauth.authgate.authorize_access_token()
    session["claims"] = dict(token["userinfo"])
    session["id_token"] = token["id_token"]
    return redirect("/")


@app.route("/logout")
def logout():
    metadata = oauth.authgate.load_server_metadata()
    hint = session.pop("id_token", "")
    session.clear()
    query = requests.models.RequestEncodingMixin._encode_params(
        {"id_token_hint": hint, "post_logout_redirect_uri": f"{base}/bye", "state": "flask"}
    )
    return redirect(f"{metadata['end_session_endpoint']}?{query}")


@app.route("/bye")
def bye():
    return f'<p id="bye">Signed out ({html.escape(request.args.get("state", ""))}).</p>'


@app.route("/backchannel", methods=["POST"])
def backchannel():
    token = request.form.get("logout_token", "")
    metadata = oauth.authgate.load_server_metadata()
    keys = JsonWebKey.import_key_set(requests.get(metadata["jwks_uri"], timeout=5).json())
    claims = jwt.decode(token, keys, claims_options={"iss": {"essential": True, "value": issuer}, "aud": {"essential": True, "value": client_id}})
    claims.validate()
    if "http://schemas.openid.net/event/backchannel-logout" not in claims.get("events", {}):
        return "not a logout token", 400
    logouts.append({"sid": claims.get("sid"), "sub": claims.get("sub")})
    return "", 200


@app.route("/logouts")
def show_logouts():
    return json.dumps(logouts)


server = make_server("127.0.0.1", int(port), app, threaded=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(f"ready {base}", flush=True)
sys.stdin.read()
