//! Property tests: arbitrary paths, queries, bodies, cookies and
//! `Authorization` headers through the whole `AuthService` (own endpoints
//! included). It never panics, never answers `500`, and never lets an
//! unauthenticated request reach the inner service outside the public
//! paths.

mod common;

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
    )
        .prop_map(
            |(method, target, cookie, authorization, content_type, body)| Input {
                method,
                target,
                cookie: cookie.map(|c| format!("authgate_session={c}; authgate_csrf={c}")),
                authorization,
                content_type,
                body,
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
        ] {
            if let Some(value) = value.filter(|v| http::HeaderValue::from_str(v).is_ok()) {
                builder = builder.header(name, value);
            }
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
            let public = path == "/public" || path.starts_with("/public/");
            prop_assert!(public && !signed_in, "{:?} reached the inner service as {}", input, path);
        }
    }
}
