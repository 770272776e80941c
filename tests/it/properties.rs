//! Property tests: arbitrary paths, queries, bodies, cookies,
//! `Authorization` and `Connection` headers, and gateway fields under any
//! spelling, through the whole `AuthService` (own endpoints included). It
//! never panics, never answers `500`, never lets an unauthenticated request
//! reach the inner service outside the public paths, and never lets a
//! forged gateway field through. And every page a browser asks for before
//! signing in is where it lands after, byte for byte.

use crate::common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use authgate::{AuthLayer, Config};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use tower::{Layer, ServiceExt};

#[derive(Debug, Clone)]
struct Input {
    method: &'static str,
    target: String,
    cookie: Option<String>,
    authorization: Option<String>,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    /// A gateway field under some spelling, with a forged value.
    forged: Option<String>,
    /// A `Connection` header naming some of the gateway's fields.
    connection: Option<String>,
}

/// Fields the gateway sets or strips: a client's copy, in any spelling,
/// never reaches the inner service.
const GATEWAY_FIELDS: [&str; 7] = [
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-scope",
    "x-forwarded-groups",
    "x-auth-request-user",
    "x-auth-request-access-token",
    "x-authgate-jwt",
];

/// How a CGI-style server names a field.
fn cgi_name(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                b.to_ascii_uppercase() as char
            } else {
                '_'
            }
        })
        .collect()
}

/// A gateway field with some of its dashes spelled `_`, `.` or `~`, in
/// any case.
fn spelling() -> impl Strategy<Value = String> {
    (
        prop::sample::select(GATEWAY_FIELDS.to_vec()),
        prop::collection::vec(prop_oneof![Just('-'), Just('_'), Just('.'), Just('~')], 4),
        any::<u8>(),
    )
        .prop_map(|(field, separators, case)| {
            let mut dashes = separators.into_iter().cycle();
            field
                .chars()
                .enumerate()
                .map(|(i, c)| match c {
                    '-' => dashes.next().unwrap(),
                    c if case & (1 << (i % 8)) != 0 => c.to_ascii_uppercase(),
                    c => c,
                })
                .collect()
        })
}

fn target() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        Just("/"),
        Just("/public"),
        Just("/public/"),
        Just("/management/authorize"),
        Just("/management/token"),
        Just("/management/me"),
        Just("/management/logout"),
        Just("/management/revoke"),
        Just("/management/introspect"),
        Just("/management/users/alice/revoketokens"),
        Just("/.well-known/oauth-authorization-server"),
        Just("/private"),
    ];
    let tail = "[a-zA-Z0-9%./\\\\_~;:@!$&'()*+,=-]{0,24}";
    let query = proptest::option::of("[a-zA-Z0-9%=&_.+~/-]{0,48}");
    (prefix, tail, query).prop_map(|(prefix, tail, query)| match query {
        Some(q) => format!("{prefix}{tail}?{q}"),
        None => format!("{prefix}{tail}"),
    })
}

fn input() -> impl Strategy<Value = Input> {
    (
        prop_oneof![
            Just("GET"),
            Just("POST"),
            Just("PUT"),
            Just("HEAD"),
            Just("OPTIONS"),
            Just("DELETE")
        ],
        target(),
        proptest::option::of("[ -~]{0,64}"),
        proptest::option::of(prop_oneof![
            "Bearer [ -~]{0,48}",
            "Basic [A-Za-z0-9+/=]{0,32}",
            "[ -~]{0,32}"
        ]),
        proptest::option::of(prop_oneof![
            Just("application/x-www-form-urlencoded"),
            Just("application/json"),
            Just("text/plain"),
        ]),
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..128),
            "[a-z_]{1,12}=[ -~]{0,20}(&[a-z_]{1,12}=[ -~]{0,20}){0,4}".prop_map(String::into_bytes),
            "\\{\"[a-z_]{1,12}\": ?(\"[ -~]{0,16}\"|[0-9]{1,4}|null|\\[\\]|\\{\\})\\}"
                .prop_map(String::into_bytes),
        ],
        proptest::option::of(spelling()),
        proptest::option::of(prop::collection::vec(
            prop::sample::select(GATEWAY_FIELDS.to_vec()),
            1..4,
        )),
    )
        .prop_map(
            |(method, target, cookie, authorization, content_type, body, forged, connection)| Input {
                method,
                target,
                cookie: cookie.map(|c| format!("authgate_session={c}; authgate_csrf={c}")),
                authorization,
                content_type,
                body,
                forged,
                connection: connection.map(|names| format!("keep-alive, {}", names.join(", "))),
            },
        )
}

fn service_config() -> Config {
    let toml = format!(
        "[upstream]\nbuiltin = \"whoami\"\n[auth]\npublic_paths = [\"/public\"]\n\
         [[users]]\nusername = \"alice\"\npassword_hash = \"{}\"\n\
         [[clients]]\nclient_id = \"c\"\nredirect_uris = [\"http://127.0.0.1:3000/cb\"]\n",
        common::password_hash()
    );
    Config::from_toml_str(&toml).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn hostile_input_never_panics_never_500s_and_never_slips_through(input in input()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let forwarded: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
        let seen = forwarded.clone();
        let inner = tower::service_fn(move |req: Request<Full<Bytes>>| {
            let seen = seen.clone();
            async move {
                let signed_in = req.headers().contains_key("x-forwarded-user");
                let forged = req.headers().iter().any(|(name, value)| {
                    value == "forged" && GATEWAY_FIELDS.iter().any(|f| cgi_name(f) == cgi_name(name.as_str()))
                });
                assert!(!forged, "a forged gateway field reached the inner service: {:?}", req.headers());
                seen.lock().unwrap().push((req.uri().path().to_owned(), signed_in));
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
            }
        });
        let service = AuthLayer::new(service_config()).unwrap().layer(inner);

        let mut builder = Request::builder().method(input.method).uri(input.target.as_str());
        prop_assume!(builder.uri_ref().is_some());
        for (name, value) in [
            ("cookie", input.cookie.as_deref()),
            ("authorization", input.authorization.as_deref()),
            ("content-type", input.content_type),
            ("connection", input.connection.as_deref()),
        ] {
            if let Some(value) = value.filter(|v| http::HeaderValue::from_str(v).is_ok()) {
                builder = builder.header(name, value);
            }
        }
        if let Some(name) = &input.forged {
            builder = builder.header(name.to_ascii_lowercase(), "forged");
        }
        let Ok(request) = builder.body(Full::new(Bytes::from(input.body.clone()))) else {
            return Ok(());
        };
        let response = runtime.block_on(async {
            let response = service.oneshot(request).await.unwrap();
            let status = response.status();
            let _ = response.into_body().collect().await;
            status
        });
        prop_assert_ne!(response.as_u16(), 500, "{:?}", input);
        for (path, signed_in) in forwarded.lock().unwrap().iter() {
            // Public paths match with each segment's `;` parameters set
            // aside, as Tomcat and Jetty read them.
            let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
            let name = first.split(';').next().unwrap_or("");
            let name = name.split("%3B").next().unwrap().split("%3b").next().unwrap();
            let public = name == "public";
            prop_assert!(public && !signed_in, "{:?} reached the inner service as {}", input, path);
        }
    }
}

/// A target a browser can send: segments of RFC 3986 `pchar`s and escapes
/// (the first starting with a letter or digit), and a query of the same
/// with `/` and `?`.
fn browser_target() -> impl Strategy<Value = String> {
    let segment = "[A-Za-z0-9]([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2}){0,8}";
    let more = "(/([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2}){0,8}){0,3}";
    let query = proptest::option::of("([A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2}){0,24}");
    (segment, more, query).prop_map(|(first, rest, query)| match query {
        Some(q) => format!("/{first}{rest}?{q}"),
        None => format!("/{first}{rest}"),
    })
}

/// Sends `request` through `service` and answers its status, the
/// `Location` and `Set-Cookie` fields, and the body.
async fn exchange<S>(service: &S, request: Request<Full<Bytes>>) -> (u16, Option<String>, Vec<String>, String)
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<authgate::AuthBody<Full<Bytes>>>> + Clone,
    S::Error: std::fmt::Debug,
{
    let response = service.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    let cookies = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        location,
        cookies,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// What a person asked for before signing in is where they land after,
    /// byte for byte.
    #[test]
    fn every_target_a_browser_sends_comes_back_byte_for_byte_after_sign_in(target in browser_target()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let inner = tower::service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
        });
        let service = AuthLayer::new(service_config()).unwrap().layer(inner);
        let Ok(request) = Request::get(target.as_str()).header("accept", "text/html").body(Full::default()) else {
            return Ok(());
        };
        let landed = runtime.block_on(async {
            let (status, location, _, _) = exchange(&service, request).await;
            assert_eq!(status, 302, "{target}");
            let page = location.unwrap();
            let page_request = Request::get(page.as_str()).header("accept", "text/html").body(Full::default()).unwrap();
            let (status, _, cookies, html) = exchange(&service, page_request).await;
            assert_eq!(status, 200, "{page}");
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in common::hidden_inputs(&html) {
                form.append_pair(&name, &value);
            }
            form.append_pair("username", "alice").append_pair("password", common::PASSWORD);
            let post = Request::post("/management/authorize")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", cookies.join("; "))
                .body(Full::new(Bytes::from(form.finish())))
                .unwrap();
            let (status, location, _, _) = exchange(&service, post).await;
            assert_eq!(status, 303, "{target}");
            location.unwrap()
        });
        prop_assert_eq!(landed, target);
    }
}
