//! A second factor: an authenticator app enrolled on the account page
//! from the QR code the server drew (read by zxing-cpp, codes computed by
//! pyotp, an RFC 6238 implementation nobody here wrote), asked for at
//! every sign-in, codes never accepted twice, recovery codes single use;
//! enrolment at sign-in where one is required; step-up per route, for a
//! browser and (RFC 9470) for an API client; what the upstream, the ID
//! token and introspection are told of how the person signed in.

use crate::common::*;
use serde_json::Value;

const SECRET: &str = "second-factor-tests-secret-0123456789";

/// A gateway with the database, the secret, second factors `policy` (and
/// `auth` lines more in `[auth]`), and `extra` config after the people
/// (`{UP}` in it: the upstream's address); alice and bob (in admins) are
/// config users.
async fn setup(policy: &str, auth: &str, extra: &str) -> (Gateway, Upstream, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, upstream) = setup_in(&dir, policy, auth, extra).await;
    (gateway, upstream, dir)
}

/// [`setup`] with the database, secret and audit log in `dir` (another
/// gateway on the same ones: a replica).
async fn setup_in(dir: &tempfile::TempDir, policy: &str, auth: &str, extra: &str) -> (Gateway, Upstream) {
    let upstream = start_upstream().await;
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[upstream]
url = "http://{upstream}"

[database]
url = "sqlite://{db}"

[audit]
file = "{audit}"

[auth]
secret_file = "{secret}"
second_factor = "{policy}"
{auth}

[[users]]
username = "alice"
password_hash = "{hash}"

[[users]]
username = "bob"
password_hash = "{hash}"
groups = ["admins"]
{extra}
"#,
        upstream = upstream.addr,
        db = dir.path().join("authgate.db").display(),
        audit = dir.path().join("audit.jsonl").display(),
        secret = secret.display(),
        hash = password_hash(),
        extra = extra.replace("{UP}", &upstream.addr.to_string()),
    );
    // Written down too, for the command line.
    std::fs::write(dir.path().join("config.toml"), &toml).unwrap();
    (Gateway::start(&toml).await, upstream)
}

/// The QR code of a page read as a phone would: its text, and the code
/// the app shows `offset` seconds from now.
async fn scan(python: &std::path::Path, html: &str, offset: i64) -> (String, String) {
    let start = html.find("<svg").expect("a QR code on the page");
    let end = html[start..].find("</svg>").expect("a whole SVG") + start + "</svg>".len();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &html[start..end]).unwrap();
    let said = run_python(
        python,
        "read_qr.py",
        &[file.path().to_str().unwrap(), &offset.to_string()],
    )
    .await
    .unwrap();
    let mut lines = said.lines();
    (lines.next().unwrap().to_owned(), lines.next().unwrap().to_owned())
}

/// The code pyotp computes from `uri`, `offset` seconds from now.
async fn code_of(python: &std::path::Path, uri: &str, offset: i64) -> String {
    let script = format!("import pyotp, time; print(pyotp.parse_uri({uri:?}).at(time.time() + {offset}))");
    let mut command = std::process::Command::new(python);
    command.args(["-c", &script]);
    let out = run_command(command).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Posts `form` (with the page's CSRF field) to `path`.
async fn post(
    client: &reqwest::Client,
    gateway: &Gateway,
    path: &str,
    html: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = hidden_value(html, "csrf").expect("a CSRF field");
    let mut fields = vec![("csrf", csrf.as_str())];
    fields.extend_from_slice(form);
    client.post(gateway.url(path)).form(&fields).send().await.unwrap()
}

/// Posts `form` to the second-factor page (`page` its last answer).
async fn answer(
    client: &reqwest::Client,
    gateway: &Gateway,
    page: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    post(client, gateway, "/management/second-factor", page, form).await
}

async fn text_of(client: &reqwest::Client, gateway: &Gateway, path: &str) -> (reqwest::StatusCode, String) {
    let answer = client.get(gateway.url(path)).send().await.unwrap();
    (answer.status(), answer.text().await.unwrap())
}

fn location(answer: &reqwest::Response) -> String {
    answer.headers()["location"].to_str().unwrap().to_owned()
}

/// Enrols an authenticator for the person signed in with `client` on the
/// account page; answers its otpauth URI and the recovery codes shown.
async fn enrol_on_account_page(
    python: &std::path::Path,
    client: &reqwest::Client,
    gateway: &Gateway,
) -> (String, Vec<String>) {
    let (status, account) = text_of(client, gateway, "/management/account").await;
    assert_eq!(status, 200);
    assert!(account.contains("id=\"add-authenticator\""), "{account}");
    let page = post(
        client,
        gateway,
        "/management/account/authenticator",
        &account,
        &[],
    )
    .await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    let (uri, _) = scan(python, &page, 0).await;
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    // The secret shown as text is the QR code's.
    let secret = unescape_html(
        page.split("id=\"secret\">")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap(),
    );
    assert!(uri.contains(&format!("secret={secret}")), "{uri} / {secret}");
    let factor = hidden_value(&page, "factor").unwrap();
    // A wrong first code: the same authenticator is shown again.
    let wrong = post(
        client,
        gateway,
        "/management/account/authenticator/confirm",
        &page,
        &[("factor", &factor), ("code", "000000")],
    )
    .await;
    assert_eq!(wrong.status(), 401);
    let again = wrong.text().await.unwrap();
    assert_eq!(scan(python, &again, 0).await.0, uri);
    let code = code_of(python, &uri, 0).await;
    let confirmed = post(
        client,
        gateway,
        "/management/account/authenticator/confirm",
        &again,
        &[("factor", &factor), ("code", &code)],
    )
    .await;
    assert_eq!(confirmed.status(), 200);
    let codes_page = confirmed.text().await.unwrap();
    let codes: Vec<String> = codes_page
        .split("id=\"recovery-codes\">")
        .nth(1)
        .unwrap()
        .split("</ol>")
        .next()
        .unwrap()
        .split("<li>")
        .skip(1)
        .map(|c| c.split('<').next().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "{codes_page}");
    (uri, codes)
}

/// Signs `username` in with the password and answers the second-factor
/// page it is sent to.
async fn password_then_page(client: &reqwest::Client, gateway: &Gateway, username: &str, rd: &str) -> String {
    let answer = sign_in(client, gateway, username, PASSWORD, rd).await;
    assert_eq!(answer.status(), 303);
    assert_eq!(location(&answer), "/management/second-factor");
    assert!(
        answer
            .headers()
            .get("set-cookie")
            .is_some_and(|c| c.to_str().unwrap().starts_with("authgate_pending=")),
        "a pending sign-in, not a session: {:?}",
        answer.headers()
    );
    let (status, page) = text_of(client, gateway, "/management/second-factor").await;
    assert_eq!(status, 200);
    page
}

#[tokio::test]
async fn an_authenticator_from_the_account_page_is_asked_for_at_every_sign_in_and_no_code_works_twice() {
    let Some(python) = test_python() else { return };
    let (gateway, _upstream, dir) = setup("optional", "", "").await;
    let alice = browser();
    sign_in(&alice, &gateway, "alice", PASSWORD, "/").await;
    let (uri, recovery) = enrol_on_account_page(&python, &alice, &gateway).await;
    let (_, account) = text_of(&alice, &gateway, "/management/account").await;
    assert!(account.contains("id=\"authenticator\""), "{account}");
    assert!(account.contains("id=\"recovery-left\">10<"), "{account}");

    // A new browser: the password is not enough.
    let second = browser();
    let page = password_then_page(&second, &gateway, "alice", "/app").await;
    assert!(page.contains("Enter your code"), "{page}");
    let (status, _) = text_of(&second, &gateway, "/app").await;
    assert_eq!(status, 302, "no session before the second factor");
    let wrong = answer(&second, &gateway, &page, &[("code", "000000")]).await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.unwrap().contains("not right"));
    // The next step's code (the enrolment used this one): accepted once.
    let code = code_of(&python, &uri, 30).await;
    let (_, page) = text_of(&second, &gateway, "/management/second-factor").await;
    let done = answer(&second, &gateway, &page, &[("code", &code)]).await;
    assert_eq!(done.status(), 303);
    assert_eq!(location(&done), "/app");
    let token = session_token(&done);
    let me = bearer_json(&gateway, "/management/me", &token).await;
    assert_eq!(me["acr"], "mfa", "{me}");
    assert_eq!(me["amr"], serde_json::json!(["pwd", "otp", "mfa"]), "{me}");
    let echoed = bearer_json(&gateway, "/app", &token).await;
    assert_eq!(echoed["headers"]["x-forwarded-auth-level"], "mfa", "{echoed}");

    // The same code again, in a third browser: a replay, refused.
    let third = browser();
    let page = password_then_page(&third, &gateway, "alice", "/").await;
    let replayed = answer(&third, &gateway, &page, &[("code", &code)]).await;
    assert_eq!(replayed.status(), 401);
    assert!(replayed.text().await.unwrap().contains("used already"));
    // A recovery code, however typed: once.
    let (_, page) = text_of(&third, &gateway, "/management/second-factor").await;
    let typed = recovery[3].to_uppercase().replace('-', " ");
    let recovered = answer(&third, &gateway, &page, &[("code", &typed)]).await;
    assert_eq!(recovered.status(), 303);
    let fourth = browser();
    let page = password_then_page(&fourth, &gateway, "alice", "/").await;
    let again = answer(&fourth, &gateway, &page, &[("code", &recovery[3])]).await;
    assert_eq!(again.status(), 401);
    // Each refusal and the recovery code are in the audit log.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    for detail in ["second_factor_wrong", "second_factor_replayed", "recovery_code"] {
        assert!(audit.contains(detail), "{detail} missing from {audit}");
    }
    assert!(audit.contains("second_factor.enrolled"), "{audit}");
}

#[tokio::test]
async fn a_route_at_auth_level_mfa_sends_a_one_factor_session_for_the_second_and_lets_it_through() {
    let Some(python) = test_python() else { return };
    let extra = "[[routes]]\npath_prefix = \"/admin\"\nurl = \"http://{UP}\"\nauth_level = \"mfa\"\n";
    let (gateway, _upstream, _dir) = setup("optional", "", extra).await;
    let bob = browser();
    sign_in(&bob, &gateway, "bob", PASSWORD, "/").await;
    // One factor: the plain routes pass, saying so; a client cannot claim more.
    let plain = bob
        .get(gateway.url("/plain"))
        .header("x-forwarded-auth-level", "mfa")
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let echoed: Value = plain.json().await.unwrap();
    assert_eq!(
        echoed["headers"]["x-forwarded-auth-level"], "password",
        "{echoed}"
    );
    // The step-up route sends the browser for a second factor, which bob lacks.
    let asked = bob.get(gateway.url("/admin/users?x=1")).send().await.unwrap();
    assert_eq!(asked.status(), 302);
    let step_up = location(&asked);
    assert_eq!(step_up, "/management/second-factor?rd=%2Fadmin%2Fusers%3Fx%3D1");
    let (_, missing) = text_of(&bob, &gateway, &step_up).await;
    assert!(missing.contains("has none yet"), "{missing}");
    // Enrolled, the same session is asked for a code, and then passes.
    let (uri, _) = enrol_on_account_page(&python, &bob, &gateway).await;
    let asked = bob.get(gateway.url("/admin/users?x=1")).send().await.unwrap();
    assert_eq!(location(&asked), step_up);
    let (_, page) = text_of(&bob, &gateway, &step_up).await;
    assert!(page.contains("Enter your code"), "{page}");
    let code = code_of(&python, &uri, 30).await;
    let done = answer(
        &bob,
        &gateway,
        &page,
        &[("code", &code), ("rd", "/admin/users?x=1")],
    )
    .await;
    assert_eq!(done.status(), 303);
    assert_eq!(location(&done), "/admin/users?x=1");
    assert!(
        done.headers().get("set-cookie").is_none(),
        "the same session, stepped up"
    );
    let through = bob
        .get(gateway.url("/admin/users?x=1"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(through.status(), 200);
    let echoed: Value = through.json().await.unwrap();
    assert_eq!(echoed["headers"]["x-forwarded-auth-level"], "mfa", "{echoed}");
    // An API client with a one-factor token: RFC 9470's challenge.
    let token = password_grant(&gateway.url("/management/token"), "alice").await;
    let refused = bearer_get(&gateway, "/admin/users", &token).await;
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_user_authentication\""),
        "{challenge}"
    );
    assert!(challenge.contains("acr_values=\"mfa\""), "{challenge}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_user_authentication", "{body}");
    assert_eq!(bearer_status(&gateway, "/plain", &token).await, 200);
}

#[tokio::test]
async fn where_a_second_factor_is_required_a_person_without_one_enrols_at_sign_in() {
    let Some(python) = test_python() else { return };
    // bob is in admins, of whom second_factor_groups requires one.
    let (gateway, _upstream, _dir) = setup("optional", "second_factor_groups = [\"admins\"]", "").await;
    let bob = browser();
    let page = password_then_page(&bob, &gateway, "bob", "/welcome").await;
    assert!(page.contains("A second factor is required for bob"), "{page}");
    let (uri, _) = scan(&python, &page, 0).await;
    let factor = hidden_value(&page, "factor").unwrap();
    let code = code_of(&python, &uri, 0).await;
    let codes = answer(&bob, &gateway, &page, &[("factor", &factor), ("code", &code)]).await;
    assert_eq!(codes.status(), 200);
    let codes = codes.text().await.unwrap();
    assert_eq!(codes.matches("<li>").count(), 10, "{codes}");
    let (status, _) = text_of(&bob, &gateway, "/welcome").await;
    assert_eq!(status, 302, "not signed in until the codes are seen");
    let done = answer(&bob, &gateway, &codes, &[("action", "continue")]).await;
    assert_eq!(done.status(), 303);
    assert_eq!(location(&done), "/welcome");
    let me = bearer_json(&gateway, "/management/me", &session_token(&done)).await;
    assert_eq!(me["acr"], "mfa", "{me}");
    // alice, not in admins, signs in with her password alone.
    let alice = browser();
    let answer = sign_in(&alice, &gateway, "alice", PASSWORD, "/").await;
    assert_eq!(location(&answer), "/");
    let me = bearer_json(&gateway, "/management/me", &session_token(&answer)).await;
    assert_eq!(me["acr"], "password", "{me}");
    assert_eq!(me["amr"], serde_json::json!(["pwd"]), "{me}");
}

#[tokio::test]
async fn the_password_grant_asks_a_person_with_a_second_factor_for_its_code_and_an_admin_can_remove_a_lost_one(
) {
    let Some(python) = test_python() else { return };
    let (gateway, _upstream, _dir) = setup(
        "optional",
        "",
        "[[users]]\nusername = \"root\"\npassword_hash = \"{HASH}\"\nadmin = true\n"
            .replace("{HASH}", password_hash())
            .as_str(),
    )
    .await;
    let alice = browser();
    sign_in(&alice, &gateway, "alice", PASSWORD, "/").await;
    let (uri, _) = enrol_on_account_page(&python, &alice, &gateway).await;
    let grant = |otp: Option<String>| {
        let gateway = &gateway;
        async move {
            let mut form = vec![
                ("grant_type", "password".to_owned()),
                ("username", "alice".to_owned()),
                ("password", PASSWORD.to_owned()),
            ];
            if let Some(otp) = otp {
                form.push(("otp", otp));
            }
            let answer = api()
                .post(gateway.url("/management/token"))
                .form(&form)
                .send()
                .await
                .unwrap();
            (answer.status(), answer.json::<Value>().await.unwrap())
        }
    };
    // The password alone no longer gets a token; with the code it does.
    let (status, body) = grant(None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"].as_str().unwrap().contains("otp"),
        "{body}"
    );
    let (status, body) = grant(Some("000000".into())).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    let (status, body) = grant(Some(code_of(&python, &uri, 30).await)).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    let me = bearer_json(&gateway, "/management/me", token).await;
    assert_eq!(me["acr"], "mfa", "{me}");
    // The admin sees alice's factor, removes it (she lost her phone).
    let root = crate::admin_api::token(&gateway, "root", PASSWORD, Some("authgate:admin")).await;
    let (status, listed, _) = crate::admin_api::call(
        &gateway,
        reqwest::Method::GET,
        "/users/alice/factors",
        &root,
        None,
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["factors"][0]["kind"], "totp", "{listed}");
    assert_eq!(listed["factors"][0]["confirmed"], true, "{listed}");
    assert_eq!(listed["recovery_codes_left"], 10, "{listed}");
    assert!(
        listed.to_string().find("secret").is_none(),
        "no secret leaves: {listed}"
    );
    let id = listed["factors"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/users/alice/factors/{id}");
    let (status, _, _) = crate::admin_api::call(&gateway, reqwest::Method::DELETE, &path, &root, None).await;
    assert_eq!(status, 204);
    let (status, _, _) = crate::admin_api::call(&gateway, reqwest::Method::DELETE, &path, &root, None).await;
    assert_eq!(status, 404);
    let (_, listed, _) = crate::admin_api::call(
        &gateway,
        reqwest::Method::GET,
        "/users/alice/factors",
        &root,
        None,
    )
    .await;
    assert_eq!(listed["factors"], serde_json::json!([]), "{listed}");
    assert_eq!(
        listed["recovery_codes_left"], 0,
        "the codes went with the last factor: {listed}"
    );
    let (status, body) = grant(None).await;
    assert_eq!(status, 200, "the password alone again: {body}");
    // Config users cannot be required by the API (their groups can).
    let (status, body, _) = crate::admin_api::call(
        &gateway,
        reqwest::Method::PUT,
        "/users/alice/second-factor-required",
        &root,
        Some(serde_json::json!({"required": true})),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    // A database user an admin requires it of sets one up at the next sign-in.
    let (status, body, _) = crate::admin_api::call(
        &gateway,
        reqwest::Method::POST,
        "/users",
        &root,
        Some(serde_json::json!({"username": "dora", "password": "dora-password-1", "temporary": false})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let dora = browser();
    let answer = sign_in(&dora, &gateway, "dora", "dora-password-1", "/").await;
    assert_eq!(location(&answer), "/", "not required yet");
    let (status, body, _) = crate::admin_api::call(
        &gateway,
        reqwest::Method::PUT,
        "/users/dora/second-factor-required",
        &root,
        Some(serde_json::json!({"required": true})),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (_, listed, _) =
        crate::admin_api::call(&gateway, reqwest::Method::GET, "/users/dora/factors", &root, None).await;
    assert_eq!(listed["required"], true, "{listed}");
    let dora = browser();
    let answer = sign_in(&dora, &gateway, "dora", "dora-password-1", "/").await;
    assert_eq!(location(&answer), "/management/second-factor");
    let (_, page) = text_of(&dora, &gateway, "/management/second-factor").await;
    assert!(page.contains("A second factor is required for dora"), "{page}");
    // The audit log is written in batches: within a few seconds.
    let mut events = Value::Null;
    for _ in 0..50 {
        let (audited, found, _) = crate::admin_api::call(
            &gateway,
            reqwest::Method::GET,
            "/audit?event=admin.second_factor_removed",
            &root,
            None,
        )
        .await;
        assert_eq!(audited, 200);
        events = found;
        if events.to_string().contains("alice") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(events.to_string().contains("\"alice\""), "{events}");
    assert!(
        events.to_string().contains("\"root\""),
        "the admin who did it: {events}"
    );
}

#[tokio::test]
async fn openid_client_is_told_of_the_second_factor_in_the_id_token_and_acr_values_asks_for_one() {
    let Some(python) = test_python() else { return };
    let client = format!(
        "[[clients]]\nclient_id = \"rp\"\nclient_secret_hash = \"{}\"\nredirect_uris = [\"http://127.0.0.1:9/callback\"]\n\
         grants = [\"authorization_code\", \"refresh_token\"]\n",
        authgate::hash_password("rp-secret")
    );
    let (gateway, _upstream, _dir) = setup("optional", "", &client).await;
    let alice = browser();
    sign_in(&alice, &gateway, "alice", PASSWORD, "/").await;
    let (uri, _) = enrol_on_account_page(&python, &alice, &gateway).await;
    let secret = url::Url::parse(&uri)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "secret")
        .unwrap()
        .1
        .into_owned();
    let Some(found) = crate::common::oidc::run_node(
        "relying_party.mjs",
        serde_json::json!({
            "issuer": gateway.url(""),
            "client_id": "rp",
            "client_secret": "rp-secret",
            "redirect_uri": "http://127.0.0.1:9/callback",
            "username": "alice",
            "password": PASSWORD,
            "scope": "openid",
            "acr_values": "mfa",
            "totp_secret": secret,
        }),
    )
    .await
    else {
        return;
    };
    assert!(found.get("error").is_none(), "{found}");
    // Validated by openid-client (and jose against the JWKS).
    assert_eq!(found["claims"]["acr"], "mfa", "{found}");
    assert_eq!(
        found["claims"]["amr"],
        serde_json::json!(["pwd", "otp", "mfa"]),
        "{found}"
    );
    assert_eq!(
        found["refreshed_claims"]["acr"], "mfa",
        "a refresh keeps how: {found}"
    );
    // bob has no second factor: acr_values=mfa has him set one up first.
    let bob = browser();
    let asked = gateway.url(
        "/management/authorize?response_type=code&client_id=rp&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback\
         &scope=openid&state=s&nonce=n&acr_values=mfa",
    );
    let signed_in = submit_sign_in(&bob, &asked, "bob", PASSWORD).await;
    assert_eq!(location(&signed_in), "/management/second-factor");
    let (_, page) = text_of(&bob, &gateway, "/management/second-factor").await;
    assert!(page.contains("Set up an authenticator app"), "{page}");
    // Without acr_values, bob signs in to the client with his password.
    let carol = browser();
    let plain = submit_sign_in(&carol, &asked.replace("&acr_values=mfa", ""), "bob", PASSWORD).await;
    assert!(
        location(&plain).starts_with("http://127.0.0.1:9/callback?code="),
        "{}",
        location(&plain)
    );
}

#[tokio::test]
async fn a_step_up_at_one_replica_counts_at_the_others_at_once() {
    let Some(python) = test_python() else { return };
    let Some(redis) = RedisServer::start() else { return };
    let extra = format!(
        "[[routes]]\npath_prefix = \"/admin\"\nurl = \"http://{{UP}}\"\nauth_level = \"mfa\"\n\
         [tokens]\nstore = \"redis\"\nredis_url = \"{}\"\ncache_secs = 10\n",
        redis.url()
    );
    let (one, _upstream, dir) = setup("optional", "", &extra).await;
    let (other, _other_upstream) = setup_in(&dir, "optional", "", &extra).await;
    let bob = browser();
    let signed_in = sign_in(&bob, &one, "bob", PASSWORD, "/").await;
    let token = session_token(&signed_in);
    let (uri, _) = enrol_on_account_page(&python, &bob, &one).await;
    // The other replica has the one-factor session in its cache now.
    assert_eq!(bearer_status(&other, "/admin/x", &token).await, 401);
    // Stepped up at the first...
    let (_, page) = text_of(&bob, &one, "/management/second-factor?rd=%2Fadmin%2Fx").await;
    let code = code_of(&python, &uri, 30).await;
    let done = answer(&bob, &one, &page, &[("code", &code), ("rd", "/admin/x")]).await;
    assert_eq!(location(&done), "/admin/x");
    // ...it counts at the other within moments, not after its cache time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let status = bearer_status(&other, "/admin/x", &token).await;
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {status} at the other replica"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_console_shows_a_persons_factors_removes_a_lost_one_and_requires_one() {
    let Some(python) = test_python() else { return };
    let root = format!(
        "[[users]]\nusername = \"root\"\npassword_hash = \"{}\"\nadmin = true\n",
        password_hash()
    );
    let (gateway, _upstream, _dir) = setup("optional", "", &root).await;
    let alice = browser();
    sign_in(&alice, &gateway, "alice", PASSWORD, "/").await;
    enrol_on_account_page(&python, &alice, &gateway).await;
    let admin = browser();
    sign_in(&admin, &gateway, "root", PASSWORD, "/").await;
    let (status, users) = text_of(&admin, &gateway, "/management/admin/users").await;
    assert_eq!(status, 200);
    assert!(
        users.contains("/management/admin/factors?user="),
        "a link per user: {users}"
    );
    let (status, page) = text_of(&admin, &gateway, "/management/admin/factors?user=alice").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("authenticator app") && page.contains("in use"),
        "{page}"
    );
    assert!(page.contains("id=\"recovery-left\">10<"), "{page}");
    let id = page
        .split("id=\"remove-")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a remove button")
        .to_owned();
    let removed = post(
        &admin,
        &gateway,
        &format!("/management/admin/users/alice/factors/{id}/remove"),
        &page,
        &[],
    )
    .await;
    assert_eq!(removed.status(), 303);
    assert!(
        location(&removed).starts_with("/management/admin/factors?user=alice"),
        "{}",
        location(&removed)
    );
    let (_, page) = text_of(&admin, &gateway, "/management/admin/factors?user=alice").await;
    assert!(page.contains("alice has no second factor"), "{page}");
    // alice signs in with her password alone again.
    let again = browser();
    let answer = sign_in(&again, &gateway, "alice", PASSWORD, "/").await;
    assert_eq!(location(&answer), "/");
    // Requiring one of a config user is refused, and says why.
    let required = post(
        &admin,
        &gateway,
        "/management/admin/users/alice/require",
        &page,
        &[("required", "1")],
    )
    .await;
    assert_eq!(required.status(), 303);
    assert!(location(&required).contains("error="), "{}", location(&required));
}

#[tokio::test]
async fn a_lost_phone_is_taken_off_on_the_command_line_and_the_password_signs_in_again() {
    let Some(python) = test_python() else { return };
    let (gateway, _upstream, dir) = setup("optional", "", "").await;
    let alice = browser();
    sign_in(&alice, &gateway, "alice", PASSWORD, "/").await;
    enrol_on_account_page(&python, &alice, &gateway).await;
    let config = dir.path().join("config.toml");
    let run = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"));
        command.args(args).arg("--config").arg(&config);
        run_command(command)
    };
    let listed = run(&["user", "factors", "alice"]).await;
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains("\ttotp\tin use\t"), "{listed}");
    let removed = run(&["user", "remove-factors", "alice"]).await;
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    assert!(String::from_utf8_lossy(&removed.stdout).contains("removed 1 second factor(s) of alice"));
    let again = browser();
    let answer = sign_in(&again, &gateway, "alice", PASSWORD, "/").await;
    assert_eq!(location(&answer), "/", "the password alone again");
}

#[tokio::test]
async fn an_export_moves_second_factors_to_a_new_database_and_they_open_only_with_the_same_secret() {
    let Some(python) = test_python() else { return };
    let (gateway, _upstream, dir) = setup("optional", "", "").await;
    let alice = browser();
    sign_in(&alice, &gateway, "alice", PASSWORD, "/").await;
    let (uri, _) = enrol_on_account_page(&python, &alice, &gateway).await;
    let authgate = |config: std::path::PathBuf, args: Vec<String>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"));
        command.args(args).arg("--config").arg(config);
        run_command(command)
    };
    let export = dir.path().join("export.json");
    let out = authgate(
        dir.path().join("config.toml"),
        vec!["export".into(), "--output".into(), export.display().to_string()],
    )
    .await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("and 1 second factors"),
        "{out:?}"
    );
    let text = std::fs::read_to_string(&export).unwrap();
    let secret = url::Url::parse(&uri)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "secret")
        .unwrap()
        .1
        .into_owned();
    assert!(
        !text.contains(&secret),
        "the authenticator's secret leaves only sealed"
    );
    let document: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(document["recovery_codes"].as_array().unwrap().len(), 10);
    // A new database: with another secret file, refused whole...
    let other = tempfile::tempdir().unwrap();
    let (fresh, _other_upstream) = setup_in(&other, "optional", "", "").await;
    drop(fresh);
    std::fs::write(
        other.path().join("secret"),
        "another-secret-of-forty-characters-01234",
    )
    .unwrap();
    let out = authgate(
        other.path().join("config.toml"),
        vec!["import".into(), export.display().to_string()],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sealed with another auth.secret_file"),
        "{out:?}"
    );
    // ...with the same one, moved: alice gives her code there too.
    std::fs::write(other.path().join("secret"), SECRET).unwrap();
    let out = authgate(
        other.path().join("config.toml"),
        vec!["import".into(), export.display().to_string()],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let (moved, _moved_upstream) = setup_in(&other, "optional", "", "").await;
    let there = browser();
    let page = password_then_page(&there, &moved, "alice", "/").await;
    let code = code_of(&python, &uri, 30).await;
    let done = answer(&there, &moved, &page, &[("code", &code)]).await;
    assert_eq!(done.status(), 303);
}

#[tokio::test]
async fn wrong_codes_are_throttled_like_passwords_and_then_even_the_right_one_waits() {
    let Some(python) = test_python() else { return };
    let (gateway, _upstream, _dir) = setup("optional", "", "").await;
    let bob = browser();
    sign_in(&bob, &gateway, "bob", PASSWORD, "/").await;
    let (uri, _) = enrol_on_account_page(&python, &bob, &gateway).await;
    let other = browser();
    let mut page = password_then_page(&other, &gateway, "bob", "/").await;
    // The person's budget is 10 failures (auth.max_failures_per_user); the
    // wrong first code of the enrolment was one of them.
    let mut throttled = None;
    for attempt in 0..12 {
        let refused = answer(&other, &gateway, &page, &[("code", "000000")]).await;
        let status = refused.status();
        let retry = refused.headers().get("retry-after").cloned();
        page = refused.text().await.unwrap();
        if status == 429 {
            throttled = Some((attempt, retry, page.clone()));
            break;
        }
        assert_eq!(status, 401, "{page}");
    }
    let (attempt, retry, said) = throttled.expect("throttled within 12 wrong codes");
    assert!(attempt <= 10, "after {attempt}");
    assert!(retry.is_some(), "Retry-After");
    assert!(said.contains("Too many wrong codes"), "{said}");
    let right = code_of(&python, &uri, 30).await;
    let waits = answer(&other, &gateway, &page, &[("code", &right)]).await;
    assert_eq!(waits.status(), 429, "the right code waits too");
}
