//! The admin API over real sockets: who may call it (an admin's session
//! with CSRF, a bearer token with the scope authgate:admin of an admin or
//! an admin client; nobody else), what it does to people, groups and
//! sessions, that every error is problem JSON, and its OpenAPI document.

use serde_json::{json, Value};
use sha2::Digest;

use crate::common::*;

pub(crate) const API: &str = "/management/admin/api/v1";

pub(crate) struct Setup {
    pub(crate) gateway: Gateway,
    pub(crate) _dir: tempfile::TempDir,
}

pub(crate) async fn setup() -> Setup {
    setup_with("").await
}

/// [`setup`] with `auth` lines in `[auth]` (`{SECRET}` in them: the path
/// of a secret file made for it).
pub(crate) async fn setup_with(auth: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream().await;
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "admin-api-tests-secret-0123456789abcdef").unwrap();
    let bot_secret = authgate::hash_password("bot-secret");
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[upstream]
url = "http://{upstream}"

[database]
url = "sqlite://{db}"

[auth]
{auth}

[admin]
groups = ["admins"]

[[users]]
username = "root"
password_hash = "{hash}"
admin = true

[[users]]
username = "carol"
password_hash = "{hash}"

[[clients]]
client_id = "ops-bot"
client_secret_hash = "{bot_secret}"
grants = ["client_credentials"]
scopes = ["authgate:admin"]

[[routes]]
path_prefix = "/ops"
url = "http://{upstream}"
allowed_groups = ["ops"]
"#,
        upstream = upstream.addr,
        db = dir.path().join("authgate.db").display(),
        auth = auth.replace("{SECRET}", &secret.display().to_string()),
        hash = password_hash()
    );
    Setup {
        gateway: Gateway::start(&toml).await,
        _dir: dir,
    }
}

/// A password-grant token for `username`, asking for `scope`.
pub(crate) async fn token(gateway: &Gateway, username: &str, password: &str, scope: Option<&str>) -> String {
    let mut form = vec![
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let body: Value = api()
        .post(gateway.url("/management/token"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned()
}

/// `method path` with `token` and an optional JSON body: status and body.
pub(crate) async fn call(
    gateway: &Gateway,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value, String) {
    let mut request = api()
        .request(method, gateway.url(&format!("{API}{path}")))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    let kind = answer
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = answer.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), kind)
}

#[tokio::test]
async fn only_admins_and_admin_clients_may_call_it_and_errors_are_problems() {
    let Setup { gateway, _dir } = setup().await;
    let anonymous = api()
        .get(gateway.url(&format!("{API}/users")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["content-type"], "application/problem+json");
    let problem: Value = anonymous.json().await.unwrap();
    assert_eq!(
        (problem["status"].as_u64(), problem["type"].as_str()),
        (Some(401), Some("about:blank"))
    );

    // Carol is no admin, whatever scope she asks for.
    let carol = token(&gateway, "carol", PASSWORD, Some("authgate:admin")).await;
    assert_eq!(
        call(&gateway, reqwest::Method::GET, "/users", &carol, None)
            .await
            .0,
        403
    );
    // Root is, but a bearer token needs the scope.
    let root_plain = token(&gateway, "root", PASSWORD, None).await;
    assert_eq!(
        call(&gateway, reqwest::Method::GET, "/users", &root_plain, None)
            .await
            .0,
        403
    );
    let root = token(&gateway, "root", PASSWORD, Some("authgate:admin")).await;
    let (status, page, _) = call(&gateway, reqwest::Method::GET, "/users", &root, None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["users"], json!([]));

    // A client allowed the scope, by client credentials.
    let bot: Value = api()
        .post(gateway.url("/management/token"))
        .basic_auth("ops-bot", Some("bot-secret"))
        .form(&[("grant_type", "client_credentials"), ("scope", "authgate:admin")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bot = bot["access_token"].as_str().unwrap();
    assert_eq!(
        call(&gateway, reqwest::Method::GET, "/groups", bot, None).await.0,
        200
    );

    // Bad input: problem JSON with the right status, nothing written.
    let (status, problem, kind) = call(
        &gateway,
        reqwest::Method::POST,
        "/users",
        &root,
        Some(json!({"username": "x", "email": "nope"})),
    )
    .await;
    assert_eq!(
        (status, kind.as_str()),
        (422, "application/problem+json"),
        "{problem}"
    );
    assert_eq!(
        call(
            &gateway,
            reqwest::Method::POST,
            "/users",
            &root,
            Some(json!({"username": "x", "colour": "red"}))
        )
        .await
        .0,
        400
    );
    assert_eq!(
        call(
            &gateway,
            reqwest::Method::POST,
            "/users",
            &root,
            Some(json!({"username": "a:b"}))
        )
        .await
        .0,
        422
    );
    assert_eq!(
        call(&gateway, reqwest::Method::GET, "/users/x", &root, None)
            .await
            .0,
        404,
        "nothing half-written"
    );
    assert_eq!(
        call(&gateway, reqwest::Method::DELETE, "/users", &root, None)
            .await
            .0,
        405
    );
    assert_eq!(
        call(&gateway, reqwest::Method::GET, "/nothing", &root, None)
            .await
            .0,
        404
    );
    let (status, _, _) = call(&gateway, reqwest::Method::GET, "/users?limit=abc", &root, None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_admin_manages_people_groups_and_sessions_and_the_audit_log_shows_it() {
    let Setup { gateway, _dir } = setup().await;
    let root = token(&gateway, "root", PASSWORD, Some("authgate:admin")).await;
    let (status, user, _) = call(
        &gateway,
        reqwest::Method::POST,
        "/users",
        &root,
        Some(json!({"username": "dora", "email": "dora@example.com", "password": "dora-password"})),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["username"], "dora");
    let (status, problem, _) = call(
        &gateway,
        reqwest::Method::POST,
        "/users",
        &root,
        Some(json!({"username": "dora"})),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(
        call(
            &gateway,
            reqwest::Method::PUT,
            "/groups/ops/members/dora",
            &root,
            None
        )
        .await
        .0,
        404,
        "no such group yet"
    );
    assert_eq!(
        call(
            &gateway,
            reqwest::Method::POST,
            "/groups",
            &root,
            Some(json!({"name": "ops"}))
        )
        .await
        .0,
        201
    );
    assert_eq!(
        call(
            &gateway,
            reqwest::Method::PUT,
            "/groups/ops/members/dora",
            &root,
            None
        )
        .await
        .0,
        204
    );
    let (_, page, _) = call(&gateway, reqwest::Method::GET, "/users?search=dor", &root, None).await;
    assert_eq!(page["users"][0]["groups"], json!(["ops"]));

    // Dora signs in and the route for ops lets her in; the admin revokes
    // her sessions, and her next request is refused.
    let dora = token(&gateway, "dora", "dora-password", None).await;
    assert_eq!(bearer_status(&gateway, "/ops/x", &dora).await, 200);
    let (status, revoked, _) = call(
        &gateway,
        reqwest::Method::POST,
        "/users/dora/revoke-sessions",
        &root,
        None,
    )
    .await;
    assert_eq!((status, revoked["revoked"].as_u64()), (200, Some(1)));
    assert_eq!(bearer_status(&gateway, "/ops/x", &dora).await, 401);

    // Disabled: her new session ends within a second.
    let dora = token(&gateway, "dora", "dora-password", None).await;
    let (status, user, _) = call(
        &gateway,
        reqwest::Method::PATCH,
        "/users/dora",
        &root,
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!((status, user["disabled"].as_bool()), (200, Some(true)));
    let disabled = std::time::Instant::now();
    while bearer_status(&gateway, "/ops/x", &dora).await != 401 {
        assert!(disabled.elapsed() < std::time::Duration::from_secs(1));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        call(&gateway, reqwest::Method::DELETE, "/users/dora", &root, None)
            .await
            .0,
        204
    );
    assert_eq!(
        call(&gateway, reqwest::Method::GET, "/users/dora", &root, None)
            .await
            .0,
        404
    );

    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, audit, _) = call(&gateway, reqwest::Method::GET, "/audit?user=dora", &root, None).await;
    let kinds: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for kind in [
        "admin.user_added",
        "admin.member_added:ops",
        "sign_in.succeeded",
        "admin.sessions_revoked",
        "admin.user_disabled",
        "admin.user_deleted",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let added = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "admin.user_added")
        .unwrap();
    assert_eq!(added["actor"], "root");
}

#[tokio::test]
async fn an_admins_session_cookie_needs_the_csrf_field_for_changes() {
    let Setup { gateway, _dir } = setup().await;
    let root = browser();
    let signed_in = sign_in(&root, &gateway, "root", PASSWORD, "/").await;
    assert_eq!(signed_in.status(), 303);
    let users = root
        .get(gateway.url(&format!("{API}/users")))
        .send()
        .await
        .unwrap();
    assert_eq!(users.status(), 200, "reading needs no CSRF field");
    let change = || {
        root.post(gateway.url(&format!("{API}/groups")))
            .json(&json!({"name": "ops"}))
    };
    let refused = change().send().await.unwrap();
    assert_eq!(refused.status(), 403);
    // The field the sign-in page carries for this browser's CSRF cookie.
    let page = root
        .get(gateway.url("/management/authorize"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let field = hidden_value(&page, "csrf").unwrap();
    let done = change().header("X-Authgate-Csrf", field).send().await.unwrap();
    assert_eq!(done.status(), 201);
    assert_eq!(
        change()
            .header("X-Authgate-Csrf", "forged")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_operation() {
    let Setup { gateway, _dir } = setup().await;
    let doc: Value = api()
        .get(gateway.url("/management/admin/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/management/admin/api/v1/users", "get"),
        ("/management/admin/api/v1/users", "post"),
        ("/management/admin/api/v1/users/{username}", "patch"),
        ("/management/admin/api/v1/users/{username}", "delete"),
        (
            "/management/admin/api/v1/users/{username}/revoke-sessions",
            "post",
        ),
        (
            "/management/admin/api/v1/groups/{group}/members/{username}",
            "put",
        ),
        ("/management/admin/api/v1/audit", "get"),
        ("/management/admin/api/v1/users/{username}/invitation", "post"),
        ("/management/admin/api/v1/groups/{group}/members", "get"),
        ("/management/admin/api/v1/sessions", "get"),
        ("/management/admin/api/v1/sessions/{id}", "delete"),
        ("/management/admin/api/v1/users/{username}/factors", "get"),
        ("/management/admin/api/v1/users/{username}/factors/{id}", "delete"),
        (
            "/management/admin/api/v1/users/{username}/second-factor-required",
            "put",
        ),
        ("/management/admin/api/v1/clients", "post"),
        ("/management/admin/api/v1/clients/{client_id}", "patch"),
        ("/management/admin/api/v1/clients/{client_id}", "delete"),
        (
            "/management/admin/api/v1/clients/{client_id}/rotate-secret",
            "post",
        ),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} is documented");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    // The rules that tie one field of a new client to another.
    let rules = doc["components"]["schemas"]["NewClientBody"]["allOf"]
        .as_array()
        .unwrap();
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert!(rules[0]["then"]["required"][0] == "redirect_uris");
}

#[tokio::test]
async fn the_api_answers_as_its_openapi_document_says_under_schemathesis() {
    let Some(python) = test_python() else {
        return;
    };
    let schemathesis = python.with_file_name("schemathesis");
    assert!(
        schemathesis.exists(),
        "tests/python/requirements.txt installs schemathesis"
    );
    let Setup { gateway, _dir: dir } =
        setup_with("secret_file = \"{SECRET}\"\nsecond_factor = \"optional\"").await;
    let root = token(&gateway, "root", PASSWORD, Some("authgate:admin")).await;
    // A confidential client, for rotate-secret to rotate (a generated id
    // names none), and a session that exists, for DELETE /sessions/{id}
    // to end (an id is the SHA-256 of a live token).
    let (status, _, _) = call(
        &gateway,
        reqwest::Method::POST,
        "/clients",
        &root,
        Some(json!({"client_id": "rotated", "grants": ["client_credentials"]})),
    )
    .await;
    assert_eq!(status, 201);
    let carol = token(&gateway, "carol", PASSWORD, None).await;
    // A factor of carol's (an authenticator being set up on her account
    // page), for DELETE /users/{username}/factors/{id} to remove.
    let browser = browser();
    sign_in(&browser, &gateway, "carol", PASSWORD, "/").await;
    let account = browser
        .get(gateway.url("/management/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_value(&account, "csrf").unwrap();
    let enrolling = browser
        .post(gateway.url("/management/account/authenticator"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let carols_factor = hidden_value(&enrolling, "factor").expect("an authenticator being set up");
    let carols_session: String = sha2::Sha256::digest(carol.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let settings = dir.path().join("schemathesis.toml");
    let shared = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/schemathesis.toml");
    std::fs::write(
        &settings,
        std::fs::read_to_string(shared).unwrap()
            + &format!(
                "\n[[operations]]\ninclude-name = \"DELETE /management/admin/api/v1/sessions/{{id}}\"\nparameters = {{ id = \"{carols_session}\" }}\n\
                 \n[[operations]]\ninclude-name = \"POST /management/admin/api/v1/clients/{{client_id}}/rotate-secret\"\nparameters = {{ client_id = \"rotated\" }}\n\
                 \n[[operations]]\ninclude-name = \"DELETE /management/admin/api/v1/users/{{username}}/factors/{{id}}\"\nparameters = {{ username = \"carol\", id = \"{carols_factor}\" }}\n"
            ),
    )
    .unwrap();
    let mut command = std::process::Command::new(&schemathesis);
    command
        .arg("--config-file")
        .arg(&settings)
        .arg("run")
        .arg(gateway.url("/management/admin/api/openapi.json"))
        .args(["--url", &gateway.url("")])
        .args(["-H", &format!("Authorization: Bearer {root}")])
        .args(["--checks", "all", "--max-examples", "40", "--seed", "20261201"])
        .env("NO_COLOR", "1")
        // Its cache of what it found stays out of the checkout.
        .current_dir(dir.path());
    let out = run_command(command).await;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.contains("No issues found"),
        "{report}"
    );
    // Its requests reached the API: it made groups and clients. (Asked
    // with a new token: taking root out of a group it was put in, which
    // schemathesis may do, ends root's sessions, as it does anyone's.)
    let root = token(&gateway, "root", PASSWORD, Some("authgate:admin")).await;
    let (_, page, _) = call(&gateway, reqwest::Method::GET, "/groups", &root, None).await;
    assert!(
        !page.as_array().unwrap_or_else(|| panic!("{page}")).is_empty(),
        "schemathesis made no group: {report}"
    );
    // It removed carol's factor (the seeded id reached the operation).
    let (_, factors, _) = call(
        &gateway,
        reqwest::Method::GET,
        "/users/carol/factors",
        &root,
        None,
    )
    .await;
    assert_eq!(
        factors["factors"],
        json!([]),
        "schemathesis did not remove carol's factor: {report}"
    );
    // Clients it made (and may have deleted since): the audit log has
    // more than the one this test made.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (_, audit, _) = call(
            &gateway,
            reqwest::Method::GET,
            "/audit?event=admin.client_added",
            &root,
            None,
        )
        .await;
        if audit["events"].as_array().map_or(0, Vec::len) > 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "schemathesis made no client: {report}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
