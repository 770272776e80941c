//! A stand-in for GitHub (which cannot run here): its OAuth endpoints and
//! the four REST calls the gateway makes, answering with the documented
//! responses in `tests/fixtures/github/`, on a free port, under the
//! GitHub Enterprise layout (`/login/oauth/…` and `/api/v3/…`).
//!
//! It checks what GitHub checks: the client's id and secret, the
//! redirect URI, the code (single use, ten minutes), the PKCE verifier,
//! and the bearer token of the REST calls. Who "approves" at the
//! authorize step is the person the test names with [`GithubStandIn::next_person`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use sha2::Digest;

pub const CLIENT_ID: &str = "Iv1.8a61f9b3a7aba766";
pub const CLIENT_SECRET: &str = "1a0e4f0b9c7d2e3f4a5b6c7d8e9f0a1b2c3d4e5f";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/github/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Someone with a GitHub account: the fixtures' octocat, or another.
#[derive(Clone)]
pub struct Person {
    pub user: Value,
    pub emails: Value,
    pub orgs: Value,
    pub teams: Value,
}

impl Person {
    /// The documentation's octocat: in the org `github` and its team
    /// `justice-league`.
    pub fn octocat() -> Self {
        Self {
            user: fixture("user.json"),
            emails: fixture("emails.json"),
            orgs: fixture("orgs.json"),
            teams: fixture("teams.json"),
        }
    }

    /// Another account, `login`, in no organisation.
    pub fn loner(login: &str, id: u64) -> Self {
        let mut user = fixture("user.json");
        user["login"] = json!(login);
        user["id"] = json!(id);
        user["name"] = Value::Null;
        Self {
            user,
            emails: json!([]),
            orgs: json!([]),
            teams: json!([]),
        }
    }
}

#[derive(Default)]
struct State {
    next: Option<Person>,
    /// code → (person, redirect_uri, code_challenge)
    codes: HashMap<String, (Person, String, String)>,
    /// token → person
    tokens: HashMap<String, Person>,
    serial: u64,
}

pub struct GithubStandIn {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl GithubStandIn {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| answer(state.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, state }
    }

    /// `api_url` for the gateway's `[[providers]]` entry.
    pub fn api_url(&self) -> String {
        format!("http://{}/api/v3", self.addr)
    }

    /// Who approves the next authorization.
    pub fn next_person(&self, person: Person) {
        self.state.lock().unwrap().next = Some(person);
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", "application/json; charset=utf-8".parse().unwrap());
    response
}

async fn answer(
    state: Arc<Mutex<State>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut state = state.lock().unwrap();
    let response = match path.as_str() {
        "/login/oauth/authorize" => {
            let person = state.next.clone().unwrap_or_else(Person::octocat);
            if query.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
                return Ok(json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"message": "Not Found"}),
                ));
            }
            state.serial += 1;
            let code = format!("code-{}", state.serial);
            let redirect = query["redirect_uri"].clone();
            let challenge = query.get("code_challenge").cloned().unwrap_or_default();
            state
                .codes
                .insert(code.clone(), (person, redirect.clone(), challenge));
            let location = format!("{redirect}?code={code}&state={}", query["state"]);
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::FOUND;
            response
                .headers_mut()
                .insert("location", location.parse().unwrap());
            response
        }
        "/login/oauth/access_token" => {
            // client_secret_basic, or the id and secret in the form.
            let (id, secret) = match auth.as_deref().and_then(|a| a.strip_prefix("Basic ")) {
                Some(basic) => {
                    let text =
                        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(basic).unwrap())
                            .unwrap();
                    let (id, secret) = text.split_once(':').unwrap();
                    (id.to_owned(), secret.to_owned())
                }
                None => (
                    form.get("client_id").cloned().unwrap_or_default(),
                    form.get("client_secret").cloned().unwrap_or_default(),
                ),
            };
            let found = form.get("code").and_then(|code| state.codes.remove(code));
            let error = fixture("token-error.json");
            match found {
                _ if id != CLIENT_ID || secret != CLIENT_SECRET => json_response(
                    StatusCode::OK,
                    &json!({"error": "incorrect_client_credentials", "error_description": "The client_id and/or client_secret passed are incorrect."}),
                ),
                Some((person, redirect, challenge)) => {
                    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(sha2::Sha256::digest(verifier.as_bytes()));
                    // Optional at the exchange; when sent, it must match.
                    if form.get("redirect_uri").is_some_and(|sent| *sent != redirect) {
                        json_response(
                            StatusCode::OK,
                            &json!({"error": "redirect_uri_mismatch", "error_description": "The redirect_uri MUST match the registered callback URL for this application."}),
                        )
                    } else if challenge.is_empty() || computed != challenge {
                        json_response(StatusCode::OK, &error)
                    } else {
                        let mut token = fixture("token.json");
                        state.serial += 1;
                        let access = format!("gho_{}", state.serial);
                        token["access_token"] = json!(access);
                        state.tokens.insert(access, person);
                        json_response(StatusCode::OK, &token)
                    }
                }
                None => json_response(StatusCode::OK, &error),
            }
        }
        api if api.starts_with("/api/v3/") => {
            let person = auth
                .as_deref()
                .and_then(|a| a.strip_prefix("Bearer ").or_else(|| a.strip_prefix("token ")))
                .and_then(|token| state.tokens.get(token));
            match (person, &api["/api/v3/".len()..]) {
                (None, _) => json_response(
                    StatusCode::UNAUTHORIZED,
                    &json!({"message": "Requires authentication", "documentation_url": "https://docs.github.com/rest"}),
                ),
                (Some(p), "user") => json_response(StatusCode::OK, &p.user),
                (Some(p), "user/emails") => json_response(StatusCode::OK, &p.emails),
                (Some(p), "user/orgs") => json_response(StatusCode::OK, &p.orgs),
                (Some(p), "user/teams") => json_response(StatusCode::OK, &p.teams),
                _ => json_response(StatusCode::NOT_FOUND, &json!({"message": "Not Found"})),
            }
        }
        _ => json_response(StatusCode::NOT_FOUND, &json!({"message": "Not Found"})),
    };
    Ok(response)
}
