//! The authorization code flow of a browser already signed in, as a
//! load: wrk asks the authorization endpoint with the browser's session
//! cookie, takes the code from the redirect, and redeems it at the token
//! endpoint, which answers an ID token; what is counted is ID tokens
//! issued. Both servers go through the same two requests, so the rows
//! compare what issuing an ID token costs each in a real sign-in to an
//! application (single sign-on), not only its signature.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the redirects of both servers' clients go (nothing listens: wrk
/// reads the code from the `Location` header).
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";

/// One server's code flow: its authorization request (with the session
/// cookie) and token endpoint, and its client's HTTP Basic credentials.
pub struct CodeFlow {
    /// The authorization request, in full.
    pub authorize: String,
    pub token: String,
    pub cookie: String,
    /// The `Authorization` header's value.
    pub basic: String,
}

impl CodeFlow {
    /// The authorization request of `client` for `scope=openid` at
    /// `authorize_url`.
    pub fn new(authorize_url: &str, token: &str, client: &str, cookie: &str, basic: &str) -> Self {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", client),
                ("redirect_uri", REDIRECT_URI),
                ("scope", "openid"),
                ("state", "bench"),
                ("nonce", "bench"),
            ])
            .finish();
        Self {
            authorize: format!("{authorize_url}?{query}"),
            token: token.to_owned(),
            cookie: cookie.to_owned(),
            basic: basic.to_owned(),
        }
    }

    /// The flow once with curl: the token endpoint's status and JSON body,
    /// or why there was no code.
    pub fn once(&self) -> Result<(String, serde_json::Value), String> {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{redirect_url}",
                "-H",
            ])
            .arg(format!("Cookie: {}", self.cookie))
            .arg(&self.authorize)
            .output()
            .map_err(|e| e.to_string())?;
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        let code = said
            .split_once(' ')
            .and_then(|(_, location)| url::Url::parse(location).ok())
            .and_then(|url| {
                url.query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
            })
            .ok_or_else(|| {
                format!("not measured: the authorization request answered {said}, without a code")
            })?;
        let form = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
            ])
            .finish();
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "-H"])
            .arg(format!("Authorization: {}", self.basic))
            .args(["-d", &form, &self.token])
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        Ok((
            status.to_owned(),
            serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        ))
    }

    /// wrk's Lua script for the flow, written to `dir/name`: a connection
    /// redeems a code the thread holds, else asks for one; `done` prints
    /// `ID tokens: N`, the token answers that carried one.
    pub fn script(&self, dir: &Path, name: &str) -> PathBuf {
        let path = |url: &str| {
            let url = url::Url::parse(url).expect("a URL");
            match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_owned(),
            }
        };
        let lua = format!(
            "local codes = {{}}\nissued = 0\nlocal threads = {{}}\n\
             setup = function(thread) threads[#threads + 1] = thread end\n\
             request = function()\n\
               local code = table.remove(codes)\n\
               if code then\n\
                 return wrk.format(\"POST\", \"{token}\", {{[\"Content-Type\"] = \"application/x-www-form-urlencoded\", \
             [\"Authorization\"] = \"{basic}\"}}, \"grant_type=authorization_code&redirect_uri={redirect}&code=\" .. code)\n\
               end\n\
               return wrk.format(\"GET\", \"{authorize}\", {{[\"Cookie\"] = \"{cookie}\"}})\n\
             end\n\
             response = function(status, headers, body)\n\
               local location = headers[\"Location\"] or headers[\"location\"]\n\
               local code = location and location:match(\"[?&]code=([^&#]+)\")\n\
               if code then codes[#codes + 1] = code\n\
               elseif status == 200 and body:find('\"id_token\"', 1, true) then issued = issued + 1 end\n\
             end\n\
             done = function()\n\
               local total = 0\n\
               for _, t in ipairs(threads) do total = total + t:get(\"issued\") end\n\
               print(\"ID tokens: \" .. total)\n\
             end\n",
            token = path(&self.token),
            authorize = path(&self.authorize),
            basic = self.basic,
            cookie = self.cookie.replace('"', "\\\""),
            redirect = form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>(),
        );
        let file = dir.join(name);
        std::fs::write(&file, lua).unwrap();
        file
    }
}

/// ID tokens a second from what the script of [`CodeFlow::script`]
/// printed after a run of `seconds`.
pub fn id_tokens_a_second(text: &str, seconds: u32) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix("ID tokens: "))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .map(|n| n / f64::from(seconds))
}

/// A browser session at authgate (`base`, e.g. `http://127.0.0.1:9110`):
/// its sign-in page opened and its form posted for `username`, as a
/// browser does; the `Cookie` header that carries it.
pub fn authgate_session(base: &str, username: &str, password: &str) -> Result<String, String> {
    let browser = crate::support::browser::CurlBrowser::new();
    browser
        .sign_in(base, username, password)
        .map_err(|why| format!("not measured: {why}"))?;
    let session = browser.cookie("authgate_session").expect("signed in");
    Ok(format!("authgate_session={session}"))
}
