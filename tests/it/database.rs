//! People and groups in a real database: the same suite against SQLite
//! and against PostgreSQL (a cluster of its own, started by the test).
//! Set up with the `authgate user` and `group` commands, then signed in at
//! a gateway; a database that stops leaves config users and live sessions
//! working; a database newer than the binary is refused at start.

use std::io::Write;

use futures_util::FutureExt;
use std::process::{Command, Stdio};

use crate::common::postgres::Postgres;
use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_authgate");

/// Runs `authgate ARGS --config CONFIG`, `stdin` on its standard input;
/// answers its exit code, stdout and stderr.
async fn authgate(config: &std::path::Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut command = Command::new(BIN);
    command.args(args).arg("--config").arg(config);
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("authgate runs");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

fn config_text(upstream: std::net::SocketAddr, database_url: &str, audit_file: &std::path::Path) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[upstream]
url = "http://{upstream}"

[database]
url = "{database_url}"

[audit]
file = "{audit_file}"

[[users]]
username = "carol"
password_hash = "{hash}"

[[routes]]
path_prefix = "/ops"
url = "http://{upstream}"
allowed_groups = ["ops"]
"#,
        hash = password_hash(),
        audit_file = audit_file.display()
    )
}

/// The password grant's answer, as JSON with its status.
async fn grant(gateway: &Gateway, username: &str, password: &str) -> (u16, serde_json::Value) {
    let answer = api()
        .post(gateway.url("/management/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

/// The suite, on the database at `url`; `postgres` to stop and restart it.
async fn people_in_the_database(url: &str, postgres: Option<&mut Postgres>) {
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream().await;
    let config = dir.path().join("config.toml");
    let audit_file = dir.path().join("audit.jsonl");
    let text = config_text(upstream.addr, url, &audit_file);
    std::fs::write(&config, &text).unwrap();

    let (code, out, err) = authgate(
        &config,
        &[
            "user",
            "add",
            "dora",
            "--email",
            "dora@example.com",
            "--name",
            "Dora",
        ],
        "dora-pw\n",
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = authgate(&config, &["user", "add", "dora"], "x\n").await;
    assert_eq!(code, 1, "a duplicate: {err}");
    assert!(err.contains("exists already"), "{err}");
    let (code, _, err) = authgate(
        &config,
        &["user", "add", "eve", "--email", "not an address"],
        "x\n",
    )
    .await;
    assert_eq!(code, 2, "{err}");
    for args in [
        &["group", "add", "ops"][..],
        &["group", "add-member", "ops", "dora"],
        &["group", "add-member", "ops", "carol"],
    ] {
        let (code, out, err) = authgate(&config, args, "").await;
        assert_eq!(code, 0, "{args:?}: {out}{err}");
    }
    let (code, _, err) = authgate(&config, &["group", "add-member", "nope", "dora"], "").await;
    assert_eq!(code, 1);
    assert!(err.contains("no group named \"nope\""), "{err}");
    let (_, out, _) = authgate(&config, &["user", "list"], "").await;
    assert_eq!(out, "dora\tdora@example.com\tenabled\tops\n");

    // An event older than the retention (90 days): forgotten once the
    // gateway writes its first batch.
    sqlx::any::install_default_drivers();
    let direct = if url.starts_with("sqlite://") {
        format!("{url}?mode=rwc")
    } else {
        url.to_owned()
    };
    let pool = sqlx::AnyPool::connect(&direct).await.unwrap();
    sqlx::query("INSERT INTO audit_events (id, at, event, subject) VALUES ('ancient', 1000, 'sign_in.succeeded', 'dora')")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let gateway = Gateway::start(&text).await;
    let (status, dora) = grant(&gateway, "dora", "dora-pw").await;
    assert_eq!(status, 200, "{dora}");
    let dora = dora["access_token"].as_str().unwrap().to_owned();
    let seen = bearer_json(&gateway, "/ops/x", &dora).await;
    assert_eq!(seen["headers"]["x-forwarded-user"], "dora");
    assert_eq!(seen["headers"]["x-forwarded-email"], "dora@example.com");
    assert_eq!(seen["headers"]["x-forwarded-groups"], "ops");
    // A config user in a database group.
    let (_, carol) = grant(&gateway, "carol", PASSWORD).await;
    let carol = carol["access_token"].as_str().unwrap().to_owned();
    assert_eq!(bearer_status(&gateway, "/ops/x", &carol).await, 200);
    // Wrong or unknown: refused alike.
    assert_eq!(grant(&gateway, "dora", "wrong").await.1["error"], "invalid_grant");
    assert_eq!(
        grant(&gateway, "nobody", "dora-pw").await.1["error"],
        "invalid_grant"
    );

    // Disabled (by the command line, another process): her session ends
    // within a second, and no new sign-in.
    let (code, _, err) = authgate(&config, &["user", "disable", "dora"], "").await;
    assert_eq!(code, 0, "{err}");
    let disabled = std::time::Instant::now();
    while bearer_status(&gateway, "/ops/x", &dora).await != 401 {
        assert!(
            disabled.elapsed() < std::time::Duration::from_secs(1),
            "dora's session outlived her account by a second"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        grant(&gateway, "dora", "dora-pw").await.1["error"],
        "invalid_grant"
    );
    // Taken out of a group: carol's session ends, and her next one is narrower.
    let (code, _, _) = authgate(&config, &["group", "remove-member", "ops", "carol"], "").await;
    assert_eq!(code, 0);
    let removed = std::time::Instant::now();
    while bearer_status(&gateway, "/ops/x", &carol).await != 401 {
        assert!(
            removed.elapsed() < std::time::Duration::from_secs(1),
            "carol's session kept a group she left"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (_, carol) = grant(&gateway, "carol", PASSWORD).await;
    let carol = carol["access_token"].as_str().unwrap().to_owned();
    assert_eq!(bearer_status(&gateway, "/ops/x", &carol).await, 403);
    assert_eq!(bearer_status(&gateway, "/elsewhere", &carol).await, 200);
    let (code, _, _) = authgate(&config, &["user", "enable", "dora"], "").await;
    assert_eq!(code, 0);
    let (status, again) = grant(&gateway, "dora", "dora-pw").await;
    assert_eq!(status, 200, "enabled again: {again}");
    let dora = again["access_token"].as_str().unwrap().to_owned();

    // The audit log: in the database and the file, each step with who and
    // from where, never a password or a token.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (code, out, err) = authgate(&config, &["audit", "--user", "dora"], "").await;
    assert_eq!(code, 0, "{err}");
    let events: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        events.iter().all(|e| e["id"] != "ancient"),
        "kept past its retention: {out}"
    );
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    for kind in [
        "admin.user_added",
        "sign_in.succeeded",
        "sign_in.failed",
        "admin.user_disabled",
        "admin.user_enabled",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let failed = events.iter().find(|e| e["event"] == "sign_in.failed").unwrap();
    assert_eq!(failed["detail"], "wrong_password");
    assert_eq!(failed["address"], "127.0.0.1");
    let added = events.iter().find(|e| e["event"] == "admin.user_added").unwrap();
    assert!(added["actor"].as_str().unwrap().starts_with("cli:"), "{added}");
    let file = std::fs::read_to_string(&audit_file).unwrap();
    assert!(
        file.lines()
            .any(|l| l.contains("\"sign_in.succeeded\"") && l.contains("\"dora\"")),
        "{file}"
    );
    assert!(
        !file.contains("dora-pw") && !file.contains(&dora),
        "no password, no token: {file}"
    );

    // Deleted: gone from the list, and the name is free again.
    let (code, _, _) = authgate(&config, &["user", "add", "temp"], "temp-pw\n").await;
    assert_eq!(code, 0);
    let (code, out, _) = authgate(&config, &["user", "delete", "temp"], "").await;
    assert_eq!((code, out.as_str()), (0, "deleted user temp\n"));
    let (code, _, err) = authgate(&config, &["user", "delete", "temp"], "").await;
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        grant(&gateway, "temp", "temp-pw").await.1["error"],
        "invalid_grant"
    );

    let Some(postgres) = postgres else {
        return;
    };
    // The database stops: its people get a clear 503, config users sign
    // in, live sessions keep working (the database is off their path).
    postgres.stop();
    let (status, body) = grant(&gateway, "dora", "dora-pw").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(grant(&gateway, "carol", PASSWORD).await.0, 200);
    assert_eq!(bearer_status(&gateway, "/ops/x", &dora).await, 200);
    assert_eq!(bearer_status(&gateway, "/elsewhere", &carol).await, 200);
    // Still ready (live sessions need no database), and says why not all is well.
    let ready = api().get(gateway.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert!(
        ready["database"].as_str().unwrap().contains("cannot be reached"),
        "{ready}"
    );
    // Back: everything resumes, without a restart.
    postgres.restart();
    let (status, body) = grant(&gateway, "dora", "dora-pw").await;
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = api()
        .get(gateway.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["database"], "ok");
}

/// A database whose schema is newer than this binary is refused at start.
async fn a_newer_database_is_refused(url: &str) {
    let upstream = start_upstream().await;
    let audit_dir = tempfile::tempdir().unwrap();
    let text = config_text(upstream.addr, url, &audit_dir.path().join("audit.jsonl"));
    // Made current by a first start, then moved on by "a newer authgate".
    let first = authgate::gateway::Gateway::bind(authgate::Config::from_toml_str(&text).unwrap()).await;
    assert!(first.is_ok(), "{:?}", first.err());
    drop(first);
    sqlx::any::install_default_drivers();
    let mut db_url = url.to_owned();
    if db_url.starts_with("sqlite://") && !db_url.contains('?') {
        db_url.push_str("?mode=rwc");
    }
    let pool = sqlx::AnyPool::connect(&db_url).await.unwrap();
    sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99990001, 'from the future', TRUE, $1, 0)")
        .bind(vec![0u8; 48])
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let Err(err) = authgate::gateway::Gateway::bind(authgate::Config::from_toml_str(&text).unwrap()).await
    else {
        panic!("a database newer than the binary was not refused");
    };
    assert!(
        err.to_string().contains("newer than this authgate knows"),
        "{err}"
    );
}

#[tokio::test]
async fn people_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("authgate.db").display());
    people_in_the_database(&url, None).await;
    let other = format!("sqlite://{}", dir.path().join("newer.db").display());
    a_newer_database_is_refused(&other).await;
}

#[tokio::test]
async fn people_in_postgres() {
    let Some(mut postgres) = Postgres::start() else {
        return;
    };
    let url = postgres.url();
    people_in_the_database(&url, Some(&mut postgres)).await;
}

#[tokio::test]
async fn a_newer_postgres_database_is_refused() {
    let Some(postgres) = Postgres::start() else {
        return;
    };
    a_newer_database_is_refused(&postgres.url()).await;
}

#[tokio::test]
async fn two_gateways_on_one_postgres_and_one_redis_act_on_a_change_at_once() {
    let Some(postgres) = Postgres::start() else {
        return;
    };
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream().await;
    let text = config_text(upstream.addr, &postgres.url(), &dir.path().join("audit.jsonl"))
        + &format!("\n[tokens]\nstore = \"redis\"\nredis_url = \"{}\"\n", redis.url());
    let config = dir.path().join("config.toml");
    std::fs::write(&config, &text).unwrap();
    let (code, _, err) = authgate(&config, &["user", "add", "dora"], "dora-pw\n").await;
    assert_eq!(code, 0, "{err}");
    let a = Gateway::start(&text).await;
    let b = Gateway::start(&text).await;
    // Added at one gateway's database, signed in at the other.
    let (status, body) = grant(&b, "dora", "dora-pw").await;
    assert_eq!(status, 200, "{body}");
    let dora = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(bearer_status(&a, "/x", &dora).await, 200);
    assert_eq!(bearer_status(&b, "/x", &dora).await, 200);
    let (code, _, _) = authgate(&config, &["user", "disable", "dora"], "").await;
    assert_eq!(code, 0);
    let disabled = std::time::Instant::now();
    while bearer_status(&a, "/x", &dora).await != 401 || bearer_status(&b, "/x", &dora).await != 401 {
        assert!(
            disabled.elapsed() < std::time::Duration::from_secs(1),
            "still signed in at a gateway a second later"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A client-credentials grant at `gateway`: its status.
async fn client_grant(gateway: &Gateway, id: &str, secret: &str) -> u16 {
    api()
        .post(gateway.url("/management/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits until `ready` holds, for at most a second.
async fn within_a_second<F: std::future::Future<Output = bool>>(what: &str, mut ready: impl FnMut() -> F) {
    let started = std::time::Instant::now();
    while !ready().await {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{what}: not within a second"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_client_made_with_the_command_line_works_at_every_gateway_within_a_second() {
    let Some(postgres) = Postgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream().await;
    let text = config_text(upstream.addr, &postgres.url(), &dir.path().join("audit.jsonl"));
    let config = dir.path().join("config.toml");
    std::fs::write(&config, &text).unwrap();
    let a = Gateway::start(&text).await;
    let b = Gateway::start(&text).await;

    let (code, out, err) = authgate(
        &config,
        &[
            "client",
            "add",
            "nightly",
            "--grant",
            "client_credentials",
            "--scope",
            "reports:read",
        ],
        "",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("client_secret "))
        .unwrap_or_else(|| panic!("no secret printed: {out}"))
        .to_owned();
    for gateway in [&a, &b] {
        within_a_second("the new client at a gateway", || {
            client_grant(gateway, "nightly", &secret).map(|s| s == 200)
        })
        .await;
    }
    let (_, listed, _) = authgate(&config, &["client", "list"], "").await;
    assert!(
        listed.contains("nightly\tdatabase\tclient_credentials"),
        "{listed}"
    );

    let (code, out, err) = authgate(&config, &["client", "rotate-secret", "nightly"], "").await;
    assert_eq!(code, 0, "{err}");
    let rotated = out
        .lines()
        .find_map(|l| l.strip_prefix("client_secret "))
        .unwrap()
        .to_owned();
    for gateway in [&a, &b] {
        within_a_second("the old secret refused", || {
            client_grant(gateway, "nightly", &secret).map(|s| s == 401)
        })
        .await;
        assert_eq!(client_grant(gateway, "nightly", &rotated).await, 200);
    }
    let (code, _, err) = authgate(
        &config,
        &["client", "add", "broken", "--redirect-uri", "no-scheme"],
        "",
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("redirect URI"), "{err}");
    let (code, _, _) = authgate(&config, &["client", "delete", "nightly"], "").await;
    assert_eq!(code, 0);
    for gateway in [&a, &b] {
        within_a_second("the deleted client refused", || {
            client_grant(gateway, "nightly", &rotated).map(|s| s == 401)
        })
        .await;
    }
}

#[tokio::test]
async fn proxied_traffic_of_live_sessions_never_fails_while_postgres_stops_and_starts() {
    let Some(mut postgres) = Postgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream().await;
    let text = config_text(upstream.addr, &postgres.url(), &dir.path().join("audit.jsonl"));
    let config = dir.path().join("config.toml");
    std::fs::write(&config, &text).unwrap();
    let (code, _, err) = authgate(&config, &["user", "add", "dora"], "dora-pw\n").await;
    assert_eq!(code, 0, "{err}");
    let gateway = std::sync::Arc::new(Gateway::start(&text).await);
    let (_, body) = grant(&gateway, "dora", "dora-pw").await;
    let dora = body["access_token"].as_str().unwrap().to_owned();
    let (_, body) = grant(&gateway, "carol", PASSWORD).await;
    let carol = body["access_token"].as_str().unwrap().to_owned();

    // Requests all along, while the database stops and comes back.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = tokio::spawn({
        let (gateway, stop) = (gateway.clone(), stop.clone());
        async move {
            let mut sent = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for token in [&dora, &carol] {
                    let status = bearer_status(&gateway, "/anything", token).await;
                    assert_eq!(
                        status, 200,
                        "a proxied request failed while the database was away"
                    );
                    sent += 1;
                }
            }
            sent
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    postgres.stop();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    postgres.restart();
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = traffic.await.unwrap();
    assert!(sent > 20, "only {sent} requests were sent");
    assert_eq!(
        grant(&gateway, "dora", "dora-pw").await.0,
        200,
        "and the database's people sign in again"
    );
}

#[tokio::test]
async fn an_export_of_sqlite_moves_everything_to_postgres_or_nothing() {
    let Some(postgres) = Postgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream().await;
    let sqlite = config_text(
        upstream.addr,
        &format!("sqlite://{}", dir.path().join("authgate.db").display()),
        &dir.path().join("a.jsonl"),
    );
    let from = dir.path().join("from.toml");
    std::fs::write(&from, &sqlite).unwrap();
    let to_text = config_text(upstream.addr, &postgres.url(), &dir.path().join("b.jsonl"));
    let to = dir.path().join("to.toml");
    std::fs::write(&to, &to_text).unwrap();
    for (args, stdin) in [
        (
            &["user", "add", "dora", "--email", "dora@example.com"][..],
            "dora-pw\n",
        ),
        (&["user", "add", "ed"][..], "ed-pw-123\n"),
        (&["group", "add", "ops"][..], ""),
        (&["group", "add-member", "ops", "dora"][..], ""),
    ] {
        let (code, _, err) = authgate(&from, args, stdin).await;
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    let (code, out, err) = authgate(
        &from,
        &["client", "add", "nightly", "--grant", "client_credentials"],
        "",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("client_secret "))
        .unwrap()
        .to_owned();
    let export = dir.path().join("export.json");
    let (code, out, err) = authgate(&from, &["export", "--output", export.to_str().unwrap()], "").await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("2 users, 1 groups, 1 memberships, 1 clients and 0 second factors"),
        "{out}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&export).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&export).unwrap();
    assert!(
        !text.contains("dora-pw") && !text.contains(&secret),
        "no secret in clear"
    );
    assert!(text.contains("$argon2id$"), "hashes are kept");

    // A document that breaks a rule writes nothing.
    let broken = text.replace("\"client_credentials\"", "\"telepathy\"");
    let broken_path = dir.path().join("broken.json");
    std::fs::write(&broken_path, broken).unwrap();
    let (code, _, err) = authgate(&to, &["import", broken_path.to_str().unwrap()], "").await;
    assert_ne!(code, 0);
    assert!(
        err.contains("telepathy") && err.contains("nothing was imported"),
        "{err}"
    );
    let (_, listed, _) = authgate(&to, &["user", "list"], "").await;
    assert!(listed.trim().is_empty(), "nothing half-written: {listed}");

    let (code, out, err) = authgate(&to, &["import", export.to_str().unwrap()], "").await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("imported 2 users, 1 groups, 1 memberships, 1 clients and 0 second factors"),
        "{out}"
    );
    // Everything works at a gateway on the new database.
    let gateway = Gateway::start(&to_text).await;
    let (status, body) = grant(&gateway, "dora", "dora-pw").await;
    assert_eq!(status, 200, "{body}");
    let me = bearer_json(&gateway, "/management/me", body["access_token"].as_str().unwrap()).await;
    assert_eq!(me["user"]["groups"], serde_json::json!(["ops"]), "{me}");
    let issued = api()
        .post(gateway.url("/management/token"))
        .basic_auth("nightly", Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), 200, "the client's secret works after the move");
    // Again: everything is taken, so nothing is written twice.
    let (code, _, err) = authgate(&to, &["import", "-"], &text).await;
    assert_ne!(code, 0);
    assert!(
        err.contains("exists in this database already: nothing was imported"),
        "{err}"
    );
    let (_, listed, _) = authgate(&to, &["user", "list"], "").await;
    assert_eq!(listed.lines().count(), 2, "{listed}");
}
