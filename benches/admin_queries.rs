//! The admin API's reads at scale: the user list (a search, and a page)
//! at 100,000 users, and the audit log's filters (by person, by event) at
//! 1,000,000 events, in SQLite; the 99th percentile of each must stay
//! under 50 ms. The gateway runs in this process; the rows are written
//! straight into its database first.
//!
//! ```text
//! cargo bench --bench admin_queries
//! cargo bench --bench admin_queries -- --quick     # 10,000 users, 100,000 events
//! ```

use std::time::{Duration, Instant};

use sqlx::Row;

const ROUNDS: usize = 200;

/// The path of a row's `i`-th request.
type PathOf = Box<dyn Fn(usize) -> String>;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (users, events) = if quick {
        (10_000, 100_000)
    } else {
        (100_000, 1_000_000)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(users, events));
}

async fn run(users: usize, events: usize) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("authgate.db");
    let hash = authgate::hash_password("root-password");
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nbuiltin = \"whoami\"\n[database]\nurl = \"sqlite://{}\"\n[[users]]\nusername = \"root\"\npassword_hash = \"{hash}\"\nadmin = true\n",
        db.display()
    );
    let gateway = authgate::gateway::Gateway::bind(authgate::Config::from_toml_str(&toml).unwrap())
        .await
        .unwrap();
    let addr = gateway.local_addr();
    tokio::spawn(gateway.serve(std::future::pending()));

    let started = Instant::now();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    fill(&pool, users, events).await;
    let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM audit_events")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get("n");
    eprintln!(
        "{users} users and {count} events written in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let http = reqwest::Client::new();
    let base = format!("http://{addr}/management/admin/api/v1");
    let token: serde_json::Value = http
        .post(format!("http://{addr}/management/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "root"),
            ("password", "root-password"),
            ("scope", "authgate:admin"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    println!("| the admin API, SQLite, {users} users, {count} events | p50 | p99 | target p99 |");
    println!("|---|---|---|---|");
    let rows: [(&str, PathOf); 4] = [
        (
            "users: the first page",
            Box::new(|_| "/users?limit=50".to_owned()),
        ),
        (
            "users: a search",
            Box::new(move |i| format!("/users?search=user{}&limit=50", (i * 7919) % users)),
        ),
        (
            "audit: one person's events",
            Box::new(move |i| format!("/audit?user=user{}&limit=100", (i * 104_729) % users)),
        ),
        (
            "audit: one kind of event",
            Box::new(|i| {
                format!(
                    "/audit?event={}&limit=100",
                    ["sign_in.failed", "sign_out", "admin."][i % 3]
                )
            }),
        ),
    ];
    for (name, path) in rows {
        let mut times = Vec::with_capacity(ROUNDS);
        for i in 0..ROUNDS {
            let at = Instant::now();
            let answer = http
                .get(format!("{base}{}", path(i)))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            if answer.status() != 200 {
                panic!("{name}: {}", answer.text().await.unwrap_or_default());
            }
            let _ = answer.bytes().await.unwrap();
            times.push(at.elapsed());
        }
        times.sort();
        let pick = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
        println!("| {name} | {} | {} | 50 ms |", ms(pick(0.5)), ms(pick(0.99)));
    }
}

/// `users` users (in groups) and `events` audit events over the last 30
/// days, most of them sign-ins.
async fn fill(pool: &sqlx::AnyPool, users: usize, events: usize) {
    const CHUNK: usize = 500;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut tx = pool.begin().await.unwrap();
    for start in (0..users).step_by(CHUNK) {
        let end = (start + CHUNK).min(users);
        let values: Vec<String> = (start..end)
            .map(|i| format!("('user{i}', 'user{i}@example.com', 'User {i}', NULL, 0, 0, {now}, NULL)"))
            .collect();
        sqlx::query(&format!(
            "INSERT INTO users (username, email, name, password_hash, disabled, must_change_password, created_at, last_sign_in_at) VALUES {}",
            values.join(",")
        ))
        .execute(&mut *tx)
        .await
        .unwrap();
        let members: Vec<String> = (start..end)
            .map(|i| format!("('g{}', 'user{i}', {now})", i % 20))
            .collect();
        sqlx::query(&format!(
            "INSERT INTO group_members (group_name, username, added_at) VALUES {}",
            members.join(",")
        ))
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    let kinds = [
        "sign_in.succeeded",
        "sign_in.succeeded",
        "sign_in.succeeded",
        "sign_in.failed",
        "sign_out",
        "token.revoked",
        "admin.user_added",
    ];
    for start in (0..events).step_by(CHUNK) {
        let end = (start + CHUNK).min(events);
        let values: Vec<String> = (start..end)
            .map(|i| {
                let at = now - (i as i64 * 2_592_000_000 / events as i64);
                format!(
                    "('e{i}', {at}, '{}', NULL, 'user{}', '10.0.{}.{}', NULL, NULL, NULL, NULL)",
                    kinds[i % kinds.len()],
                    (i * 31) % users,
                    i % 256,
                    (i / 256) % 256
                )
            })
            .collect();
        sqlx::query(&format!(
            "INSERT INTO audit_events (id, at, event, actor, subject, address, provider, client_id, outcome, detail) VALUES {}",
            values.join(",")
        ))
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}
