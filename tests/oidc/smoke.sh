#!/usr/bin/env bash
# Manual smoke test of tests/oidc/{provider,hostile}.mjs without a browser and without cargo:
# curl plays the browser and the RP, a tiny python server plays the back-channel logout endpoint.
# Run from anywhere: bash tests/oidc/smoke.sh   (not run by CI)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
tmp=$(mktemp -d)
# Providers need no killing: they exit when fd 3 (their stdin fifo, below) closes with us.
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

# Same install the Rust tests do.
mkdir -p target/test-node
cp tests/oidc/package.json tests/oidc/package-lock.json target/test-node/
npm ci --prefix target/test-node --no-audit --no-fund --loglevel=error
export AUTHGATE_NODE_MODULES=$root/target/test-node/node_modules

# The providers exit when their stdin closes. A fifo held open on fd 3 by this shell keeps
# them alive exactly as long as the script runs.
mkfifo "$tmp/stdin"
exec 3<>"$tmp/stdin"

fail() { echo "FAIL: $*" >&2; exit 1; }
# start NAME SCRIPT CONFIG: run a provider, wait for its "ready <issuer>" line, echo the issuer.
start() {
  node "tests/oidc/$2" "$3" <"$tmp/stdin" >"$tmp/$1.out" 2>"$tmp/$1.err" 3>&- &
  for _ in $(seq 100); do
    if read -r word issuer <"$tmp/$1.out" && [ "$word" = ready ]; then echo "$issuer"; return; fi
    sleep 0.1
  done
  cat "$tmp/$1.err" >&2; fail "$1 did not start"
}
jwt_payload() { python3 -c 'import sys,json,base64; p=sys.argv[1].split(".")[1]; print(json.dumps(json.loads(base64.urlsafe_b64decode(p+"="*(-len(p)%4))), sort_keys=True))' "$1"; }
jwt_header() { python3 -c 'import sys,json,base64; p=sys.argv[1].split(".")[0]; print(json.dumps(json.loads(base64.urlsafe_b64decode(p+"="*(-len(p)%4)))))' "$1"; }
json_get() { python3 -c 'import sys,json; v=json.load(sys.stdin).get(sys.argv[1]); print(v if isinstance(v,str) else json.dumps(v))' "$1"; }
location() { grep -i '^location:' | tr -d '\r' | sed 's/^[Ll]ocation: *//'; }

# --- a stand-in RP endpoint that records back-channel logout POSTs --------------------------
cat >"$tmp/catcher.py" <<'EOF'
import http.server, sys, urllib.parse
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
        token = urllib.parse.parse_qs(body).get("logout_token", [""])[0]
        with open(sys.argv[1], "a") as f: f.write(token + "\n")
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
EOF
python3 "$tmp/catcher.py" "$tmp/logout_tokens" >"$tmp/catcher.port" 3>&- &
catcher=$!
for _ in $(seq 50); do [ -s "$tmp/catcher.port" ] && break; sleep 0.1; done
rp="http://127.0.0.1:$(cat "$tmp/catcher.port")"
redirect_uri="$rp/management/callback/corp"

cat >"$tmp/op.json" <<EOF
{ "port": 0,
  "clients": [{ "client_id": "authgate", "client_secret": "s3cret",
    "redirect_uris": ["$redirect_uri"],
    "post_logout_redirect_uris": ["$rp/management/signed-out"],
    "backchannel_logout_uri": "$rp/management/backchannel-logout/corp",
    "backchannel_logout_session_required": true,
    "token_endpoint_auth_method": "client_secret_basic" }],
  "users": [{ "sub": "u-alice", "password": "alice-pw", "email": "alice@example.com", "email_verified": true,
    "preferred_username": "alice", "name": "Alice Liddell", "groups": ["staff", "admins"] }],
  "access_token_ttl": 3600, "id_token_ttl": 3600, "refresh": true }
EOF

op=$(start provider provider.mjs "$tmp/op.json")
echo "== provider at $op"
curl -sf "$op/test/health" >/dev/null || fail health
curl -sf "$op/.well-known/openid-configuration" >"$tmp/discovery.json"
python3 - "$tmp/discovery.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for k in ["issuer", "authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "end_session_endpoint",
          "backchannel_logout_supported", "backchannel_logout_session_supported", "code_challenge_methods_supported"]:
    print(f"   {k}: {d.get(k)}")
EOF

verifier=$(openssl rand -base64 48 | tr '+/' '-_' | tr -d '=\n')
challenge=$(printf %s "$verifier" | openssl dgst -sha256 -binary | openssl base64 | tr '+/' '-_' | tr -d '=\n')
jar="$tmp/cookies"

# login PASSWORD: authorization code flow as a browser would do it; echoes the code.
login() {
  rm -f "$jar"
  local url="$op/auth?client_id=authgate&response_type=code&scope=openid%20email%20profile%20groups&state=st-1&nonce=n-1"
  url+="&redirect_uri=$(python3 -c 'import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1], safe=""))' "$redirect_uri")"
  url+="&code_challenge=$challenge&code_challenge_method=S256"
  local hops=0 loc
  while :; do
    loc=$(curl -s -b "$jar" -c "$jar" -o "$tmp/page.html" -D - "$url" | location)
    if [ -z "$loc" ] && grep -q 'id="password"' "$tmp/page.html"; then
      # The login form. A wrong password first: the form must come back, status 200, with the error.
      curl -s -b "$jar" -c "$jar" -o "$tmp/bad.html" -w '%{http_code}' -d login=alice -d password=nope "$url/login" | grep -q 200 \
        && grep -q 'Invalid credentials' "$tmp/bad.html" || fail "bad password not rejected"
      loc=$(curl -s -b "$jar" -c "$jar" -o /dev/null -D - -d login=alice -d "password=$1" "$url/login" | location)
    fi
    [ -n "$loc" ] || fail "no redirect from $url: $(cat "$tmp/page.html")"
    case $loc in /*) loc="$op$loc";; esac
    case $loc in "$redirect_uri"*) break;; esac   # arrived at the RP: don't connect, keep the URL
    url=$loc; hops=$((hops + 1)); [ $hops -lt 12 ] || fail "redirect loop"
  done
  echo "   callback: $loc" >&2
  python3 -c 'import sys,urllib.parse as u; q=dict(u.parse_qsl(u.urlsplit(sys.argv[1]).query)); assert q["state"]=="st-1" and q["iss"]==sys.argv[2], q; print(q["code"])' "$loc" "$op"
}

echo "== authorization code + PKCE flow"
code=$(login alice-pw)
curl -s -u authgate:s3cret -d grant_type=authorization_code -d "code=$code" -d "redirect_uri=$redirect_uri" \
  -d "code_verifier=$verifier" "$op/token" >"$tmp/tokens.json"
id_token=$(json_get id_token <"$tmp/tokens.json")
access_token=$(json_get access_token <"$tmp/tokens.json")
refresh_token=$(json_get refresh_token <"$tmp/tokens.json")
[ "$refresh_token" != null ] || fail "no refresh_token: $(cat "$tmp/tokens.json")"
echo "   id_token header:  $(jwt_header "$id_token")"
echo "   id_token payload: $(jwt_payload "$id_token")"
jwt_payload "$id_token" | python3 -c 'import json,sys; p=json.load(sys.stdin); assert p["groups"]==["staff","admins"] and p["preferred_username"]=="alice" and p["nonce"]=="n-1" and "sid" in p, p'
echo "   userinfo: $(curl -sf -H "authorization: Bearer $access_token" "$op/me")"
echo "   refresh:  $(curl -sf -u authgate:s3cret -d grant_type=refresh_token -d "refresh_token=$refresh_token" "$op/token" | python3 -c 'import json,sys; print(sorted(json.load(sys.stdin)))')"
echo "   code reuse: $(curl -s -u authgate:s3cret -d grant_type=authorization_code -d "code=$code" -d "redirect_uri=$redirect_uri" -d "code_verifier=$verifier" "$op/token")"

check_logout_token() {
  for _ in $(seq 30); do [ "$(wc -l <"$tmp/logout_tokens" 2>/dev/null || echo 0)" -ge "$1" ] && break; sleep 0.1; done
  local token; token=$(sed -n "${1}p" "$tmp/logout_tokens"); [ -n "$token" ] || fail "no logout_token #$1"
  echo "   logout_token header:  $(jwt_header "$token")"
  echo "   logout_token payload: $(jwt_payload "$token")"
  jwt_payload "$token" | python3 -c 'import json,sys; p=json.load(sys.stdin); assert {"iss","aud","iat","exp","jti","sub","sid"} <= set(p) and p["events"]=={"http://schemas.openid.net/event/backchannel-logout":{}} and "nonce" not in p, p'
}

echo "== POST /test/backchannel-logout"
answer=$(curl -sf -H 'content-type: application/json' -d '{"sub":"u-alice"}' "$op/test/backchannel-logout")
echo "   answer: $answer"; [ "$(json_get sent <<<"$answer")" = 1 ] || fail "expected sent=1"
check_logout_token 1
echo "   refresh after OP logout: $(curl -s -u authgate:s3cret -d grant_type=refresh_token -d "refresh_token=$refresh_token" "$op/token")"

echo "== RP-initiated logout (end_session) triggers back-channel logout natively"
code=$(login alice-pw)
id_token=$(curl -s -u authgate:s3cret -d grant_type=authorization_code -d "code=$code" -d "redirect_uri=$redirect_uri" \
  -d "code_verifier=$verifier" "$op/token" | json_get id_token)
curl -s -b "$jar" -c "$jar" -o "$tmp/logout.html" -G "$op/session/end" --data-urlencode "id_token_hint=$id_token" \
  --data-urlencode "post_logout_redirect_uri=$rp/management/signed-out" --data-urlencode state=bye
grep -q 'id="logout-confirm"' "$tmp/logout.html" || fail "no logout confirmation page: $(cat "$tmp/logout.html")"
xsrf=$(sed -n 's/.*name="xsrf" value="\([^"]*\)".*/\1/p' "$tmp/logout.html")
action=$(sed -n 's/.*id="op.logoutForm" method="post" action="\([^"]*\)".*/\1/p' "$tmp/logout.html")
echo "   after clicking #logout-confirm: $(curl -s -b "$jar" -c "$jar" -D - -o /dev/null -d "xsrf=$xsrf" -d logout=yes "$action" | location)"
check_logout_token 2

echo "== POST /test/backchannel-logout while the RP is down"
code=$(login alice-pw)
kill "$catcher"; wait "$catcher" 2>/dev/null || true
answer=$(curl -sf -H 'content-type: application/json' -d '{"sub":"u-alice"}' "$op/test/backchannel-logout")
echo "   answer: $answer"; [ "$(json_get sent <<<"$answer")" = 0 ] || fail "expected sent=0"

# --- the hostile provider --------------------------------------------------------------------
echo '{"port":0,"client_id":"authgate","mode":"valid"}' >"$tmp/hostile.json"
evil=$(start hostile hostile.mjs "$tmp/hostile.json")
echo "== hostile provider at $evil"
curl -sf "$evil/.well-known/openid-configuration" | python3 -c 'import json,sys; print("   discovery keys:", sorted(json.load(sys.stdin)))'
for mode in valid jwks-without-key mix-up error wrong-aud wrong-nonce wrong-iss expired alg-none hmac-key-confusion unknown-kid azp-mismatch; do
  curl -sf -d "{\"mode\":\"$mode\"}" "$evil/mode" >/dev/null
  loc=$(curl -s -D - -o /dev/null -G "$evil/authorize" -d client_id=authgate -d response_type=code -d state=s1 -d nonce=n1 \
    --data-urlencode "redirect_uri=$redirect_uri" -d "code_challenge=$challenge" -d code_challenge_method=S256 | location)
  echo "-- mode $mode"
  echo "   authorize -> ${loc#"$redirect_uri"}"
  code=$(python3 -c 'import sys,urllib.parse as u; print(dict(u.parse_qsl(u.urlsplit(sys.argv[1]).query)).get("code",""))' "$loc")
  [ -n "$code" ] || continue
  resp=$(curl -s -u authgate:s3cret -d grant_type=authorization_code -d "code=$code" -d "code_verifier=$verifier" "$evil/token")
  tok=$(json_get id_token <<<"$resp")
  echo "   token keys: $(python3 -c 'import json,sys; print(sorted(json.loads(sys.argv[1])))' "$resp")"
  echo "   id_token header:  $(jwt_header "$tok")"
  echo "   id_token payload: $(jwt_payload "$tok")"
  echo "   jwks kids: $(curl -s "$evil/jwks" | python3 -c 'import json,sys; print([k["kid"] for k in json.load(sys.stdin)["keys"]])')"
done
curl -sf -d '{"mode":"valid"}' "$evil/mode" >/dev/null
loc=$(curl -s -D - -o /dev/null -G "$evil/authorize" -d client_id=authgate -d state=s1 --data-urlencode "redirect_uri=$redirect_uri" -d "code_challenge=$challenge" | location)
code=$(python3 -c 'import sys,urllib.parse as u; print(dict(u.parse_qsl(u.urlsplit(sys.argv[1]).query))["code"])' "$loc")
echo "-- bad PKCE verifier: $(curl -s -u authgate:s3cret -d grant_type=authorization_code -d "code=$code" -d code_verifier=wrong-wrong-wrong-wrong-wrong-wrong-wrong-wrong "$evil/token")"
echo "-- same code again:   $(curl -s -u authgate:s3cret -d grant_type=authorization_code -d "code=$code" -d "code_verifier=$verifier" "$evil/token")"
echo "-- stats: $(curl -s "$evil/stats")"

echo "== provider log (stderr)"; sed 's/^/   /' "$tmp/provider.err"
echo "smoke: all checks passed"
