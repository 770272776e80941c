//! The credential check alone: hashing a presented token and finding its
//! session, at 1 thousand, 100 thousand and 1 million live tokens; the
//! whole `AuthService` decision (find the credential, look it up, rewrite
//! the headers) with an inner service that answers at once, for a local
//! user's session and for one from an outside OpenID provider; and
//! rendering the sign-in page.
//!
//! `cargo bench --bench credential_check`

use std::convert::Infallible;
use std::sync::Arc;

use authgate::store::{Identity, Token, TokenKey};
use authgate::{AuthLayer, Config, MemoryStore, Session, TokenStore};
use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use futures_util::FutureExt;
use http::{Request, Response};
use http_body_util::Full;
use tower::{service_fn, Layer, Service};

/// `n` live tokens for a thousand users, as the gateway issues them:
/// sessions share their user's identity (the directory's).
fn filled_store(n: usize) -> (MemoryStore, Vec<Token>) {
    let users: Vec<Arc<Identity>> = (0..1000)
        .map(|i| Identity::new(&format!("user{i}"), None))
        .collect();
    let store = MemoryStore::new();
    let tokens: Vec<Token> = (0..n).map(|_| Token::generate()).collect();
    for (i, token) in tokens.iter().enumerate() {
        let session = Session::for_identity(users[i % users.len()].clone(), 3600);
        store
            .insert(token.key(), session)
            .now_or_never()
            .unwrap()
            .unwrap();
    }
    (store, tokens)
}

/// Hashing a presented token and finding its session. Each lookup is for
/// a token other than the last (a stride through all of them); the token's
/// text is copied out before the clock runs, as a request brings it in its
/// head: reading it out of a million-entry list would time the bench's own
/// cache misses, not the store's.
fn store_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_lookup");
    for n in [1_000, 100_000, 1_000_000] {
        let (store, tokens) = filled_store(n);
        let mut i = 0;
        group.bench_function(format!("{n}_tokens"), |b| {
            b.iter_batched_ref(
                || {
                    i = (i + 7919) % tokens.len();
                    tokens[i].as_str().to_owned()
                },
                |presented| {
                    let key = TokenKey::of(presented);
                    black_box(store.get(&key).now_or_never().unwrap().unwrap())
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// The whole decision for a bearer token of `tokens[0]`, behind a layer
/// for `config` and `store`.
fn bearer_check(c: &mut Criterion, name: &str, config: Config, store: MemoryStore, tokens: &[Token]) {
    let layer = AuthLayer::with_store(config, store).unwrap();
    let inner = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let mut service = layer.layer(inner);
    let bearer = format!("Bearer {}", tokens[0].as_str());
    c.bench_function(name, |b| {
        b.iter_batched(
            || {
                Request::get("/api/items?page=2")
                    .header("authorization", &bearer)
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            },
            |req| black_box(service.call(req).now_or_never().unwrap().unwrap()),
            BatchSize::SmallInput,
        )
    });
}

fn layer_check(c: &mut Criterion) {
    let config = Config::from_toml_str("[upstream]\nbuiltin = \"whoami\"\n").unwrap();
    let (store, tokens) = filled_store(1_000);
    bearer_check(c, "auth_service_bearer_check", config, store, &tokens);
}

/// Sessions as [`layer_check_outside`] makes them, for a provider of
/// `provider` (`None`: a local user with the same name, email and groups).
fn sessions_with_groups(provider: Option<&str>) -> (MemoryStore, Vec<Token>) {
    let store = MemoryStore::new();
    let tokens: Vec<Token> = (0..1_000).map(|_| Token::generate()).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (i, token) in tokens.iter().enumerate() {
        let mut identity = serde_json::json!({
            "username": format!("user{i}"),
            "email": format!("user{i}@corp.example"),
            "name": "A Person",
            "groups": ["admins", "ops", "staff"],
        });
        if let Some(provider) = provider {
            identity["username"] = serde_json::json!(format!("{provider}:user{i}"));
            identity["provider"] = serde_json::json!(provider);
            identity["subject"] = serde_json::json!(format!("0b5e{i}"));
            identity["preferred_username"] = serde_json::json!(format!("user{i}"));
            identity["provider_tokens"] = serde_json::json!({
                "access_token": "eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl",
                "refresh_token": "r-1",
                "id_token": "eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl",
                "expires_at": now + 3600,
                "refresh_at": now + 2700
            });
        }
        let session: Session = serde_json::from_value(serde_json::json!({
            "identity": identity,
            "grant": null,
            "issued_at": now,
            "expires_at": now + 3600,
            "kind": "Access",
            "family": null
        }))
        .unwrap();
        store
            .insert(token.key(), session)
            .now_or_never()
            .unwrap()
            .unwrap();
    }
    (store, tokens)
}

/// A local user's session with a name, email and three groups.
fn layer_check_groups(c: &mut Criterion) {
    let config = Config::from_toml_str("[upstream]\nbuiltin = \"whoami\"\n").unwrap();
    let (store, tokens) = sessions_with_groups(None);
    bearer_check(
        c,
        "auth_service_bearer_check_local_groups",
        config,
        store,
        &tokens,
    );
}

/// The same, for sessions an outside OpenID provider vouched for: with
/// the same groups, a subject, a preferred username, and the provider's
/// tokens kept with them (as a Redis store holds them; a session's JSON is
/// the public way to make one).
fn layer_check_outside(c: &mut Criterion) {
    let config = Config::from_toml_str(
        "[upstream]\nbuiltin = \"whoami\"\n[[providers]]\nid = \"corp\"\nkind = \"oidc\"\nissuer = \"https://idp.example\"\nclient_id = \"authgate\"\nclient_secret = \"s\"\n",
    )
    .unwrap();
    let (store, tokens) = sessions_with_groups(Some("corp"));
    bearer_check(
        c,
        "auth_service_bearer_check_outside_provider",
        config,
        store,
        &tokens,
    );
}

fn sign_in_page(c: &mut Criterion) {
    let config = Config::from_toml_str("[upstream]\nbuiltin = \"whoami\"\n").unwrap();
    let inner = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let mut service = AuthLayer::new(config).unwrap().layer(inner);
    c.bench_function("sign_in_page_render", |b| {
        b.iter_batched(
            || {
                Request::get("/management/authorize?rd=%2Freports%3Fq%3D1&state=abc")
                    .header(
                        "cookie",
                        "authgate_csrf=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                    )
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            },
            |req| black_box(service.call(req).now_or_never().unwrap().unwrap()),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(
    benches,
    store_lookup,
    layer_check,
    layer_check_groups,
    layer_check_outside,
    sign_in_page
);
criterion_main!(benches);
