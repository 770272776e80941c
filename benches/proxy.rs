//! The load benchmark: authgate's authenticated pass-through side by side
//! with the upstream alone and with its peers, in one run, driven by the
//! same load generator (wrk), and printed as one table of ratios. The peers:
//!
//! - nginx, plain reverse proxy and with an `auth_request` subrequest;
//! - HAProxy, plain reverse proxy (one thread, `http-reuse always`);
//! - Caddy, plain `reverse_proxy` and with `forward_auth` to the same auth
//!   backend nginx's `auth_request` asks (how Authelia and oauth2-proxy are
//!   commonly deployed).
//!
//! authgate's rows are also compared with the best plain proxy (nginx or
//! HAProxy, whichever did more at the same cores and connections): the
//! target is at or above it in every row.
//!
//! ```text
//! scripts/bench                          # installs wrk, nginx, HAProxy and Caddy if missing, then runs this
//! cargo bench --bench proxy              # 3 × 10 s a row, medians
//! cargo bench --bench proxy -- --quick   # 1 × 3 s a row
//! ```
//!
//! Servers run on CPU 0 (`taskset -c 0`; CPUs 0-1 for the two-core rows,
//! with two workers or threads, and `GOMAXPROCS` for Caddy likewise), wrk
//! on CPU 1, none of them writing an access log unless the row says so.
//! The upstream is nginx returning `ok` (the rigs in `benches/nginx/`), or,
//! without nginx, a small hyper server; rows that need nginx (its own, and
//! Caddy's `forward_auth`, whose auth backend is nginx) are then skipped,
//! and so are the rows of a peer that is not installed: the table says so.
//! The peers' configurations are `benches/haproxy/haproxy.cfg.tmpl` and
//! `benches/caddy/Caddyfile.tmpl`, filled in like nginx's.
//!
//! Three authgate rows mirror the bearer row (one core, 32 connections),
//! each with one thing on, and are shown right after it and compared with
//! it (req/s and p99):
//!
//! - `identity_jwt = true` in `[upstream]`: every forwarded request carries
//!   `X-Authgate-Jwt` (RS256), made once per session and audience and then
//!   reused, so a request pays a cache lookup, not a signature: the target
//!   is within 5% of the bearer row;
//! - `[database]` (SQLite, in a temporary folder) and `[audit]` (to a file
//!   there): neither is on the proxied path (sessions live in the token
//!   store; the database is read at sign-in, by the console, and by the
//!   change feed's poll every 500 ms), so the two should match;
//! - every path at `auth_level = "mfa"`, with a token of two factors (the
//!   bench sets up an authenticator app as a person does, and checks that
//!   a one-factor token is refused there): the check is a field of the
//!   session, so the two should match.

#[path = "proxy/step_up.rs"]
mod step_up;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::{hash_secret, have, taskset, wait_for_port, wrk, Measured, Running};

const AUTHGATE: &str = env!("CARGO_BIN_EXE_authgate");
const UPSTREAM: u16 = 9001;
const NGINX_PROXY: u16 = 9002;
const NGINX_AUTH: u16 = 9003;
const NGINX_PROXY_BIG: u16 = 9007;
const NGINX_PROXY_LOGGED: u16 = 9009;
const HAPROXY: u16 = 9010;
const CADDY_PROXY: u16 = 9011;
const CADDY_AUTH: u16 = 9012;
const GATEWAY: u16 = 9100;
/// The bearer row with `identity_jwt = true` in `[upstream]`.
const WITH_IDENTITY_JWT: &str = "authgate, bearer token, identity_jwt = true (X-Authgate-Jwt, RS256)";
/// The bearer row with `[database]` and `[audit]` on.
const WITH_DATABASE: &str = "authgate, bearer token, [database] SQLite and [audit] file on";
/// The bearer row through a route at `auth_level = "mfa"`.
const WITH_STEP_UP: &str = "authgate, bearer token of two factors, route at auth_level = \"mfa\"";
/// The rows shown right after the plain bearer row (1 core, 32
/// connections), in this order, each with the note that compares it with
/// that row.
const BESIDE_BEARER: [(&str, &str); 3] = [
    (WITH_IDENTITY_JWT, "with identity_jwt"),
    (WITH_DATABASE, "with [database] and [audit]"),
    (WITH_STEP_UP, "at auth_level = \"mfa\""),
];

struct Row {
    name: String,
    cores: u8,
    conns: u32,
    result: Result<Measured, String>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--serve-upstream") {
        return serve_upstream(args[at + 1].parse().expect("a port"));
    }
    let quick = args.iter().any(|a| a == "--quick");
    let (runs, seconds) = if quick { (1, 3) } else { (3, 10) };
    if !have("wrk") {
        eprintln!("wrk is not installed: run scripts/bench, which installs it (apt-get install wrk)");
        std::process::exit(1);
    }
    let nginx = have("nginx");
    let haproxy = have("haproxy");
    let caddy = have("caddy");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut rows = Vec::new();
    let measure = |port: u16, conns: u32, headers: &[String], core_spec: &str| -> Result<Measured, String> {
        let mut all: Vec<Measured> = (0..runs)
            .map(|_| wrk(port, conns, seconds, headers, core_spec))
            .collect::<Result<_, _>>()?;
        all.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        Ok(all[all.len() / 2])
    };

    let _upstream = if nginx {
        Some(start_nginx(dir.path(), "up", "up-nginx.conf.tmpl", 1, "0"))
    } else {
        let me = std::env::current_exe().unwrap();
        Some(Running(
            taskset("0", &me)
                .args(["--serve-upstream", &UPSTREAM.to_string()])
                .spawn()
                .expect("the upstream"),
        ))
    };
    wait_for_port(UPSTREAM);
    let skip = |why: &str| Err::<Measured, String>(why.to_owned());
    let no_nginx = "skipped: nginx is not installed (scripts/bench installs it)";
    let no_haproxy = "skipped: HAProxy is not installed (scripts/bench installs it)";
    let no_caddy = "skipped: Caddy is not installed (scripts/bench installs it)";
    let no_auth_backend = "skipped: nginx, the auth backend, is not installed (scripts/bench installs it)";
    let auth = vec!["Authorization: Bearer testtoken".to_owned()];

    rows.push(Row {
        name: "direct to the upstream".into(),
        cores: 1,
        conns: 32,
        result: measure(UPSTREAM, 32, &[], "1"),
    });

    // One core: nginx, HAProxy, then authgate (and Caddy after it, below).
    {
        let _proxy = nginx.then(|| start_nginx(dir.path(), "px1", "px-nginx.conf.tmpl", 1, "0"));
        if nginx {
            wait_for_port(NGINX_PROXY);
        }
        rows.push(Row {
            name: "nginx reverse proxy (keepalive 64)".into(),
            cores: 1,
            conns: 32,
            result: if nginx {
                measure(NGINX_PROXY, 32, &[], "1")
            } else {
                skip(no_nginx)
            },
        });
        rows.push(Row {
            name: "nginx + auth_request".into(),
            cores: 1,
            conns: 32,
            result: if nginx {
                measure(NGINX_AUTH, 32, &auth, "1")
            } else {
                skip(no_nginx)
            },
        });
        let before = time_wait_count();
        rows.push(Row {
            name: "nginx reverse proxy (keepalive 512)".into(),
            cores: 1,
            conns: 256,
            result: if nginx {
                measure(NGINX_PROXY_BIG, 256, &[], "1")
            } else {
                skip(no_nginx)
            },
        });
        if nginx {
            rows.push(time_wait_row(before));
        }
        rows.push(Row {
            name: "nginx reverse proxy (keepalive 64), access log to a file".into(),
            cores: 1,
            conns: 32,
            result: if nginx {
                measure(NGINX_PROXY_LOGGED, 32, &[], "1")
            } else {
                skip(no_nginx)
            },
        });
    }
    // HAProxy.
    {
        let _proxy = haproxy.then(|| start_haproxy(dir.path(), "ha1", 1, "0"));
        for conns in [32, 256] {
            let before = time_wait_count();
            rows.push(Row {
                name: "HAProxy (plain proxy)".into(),
                cores: 1,
                conns,
                result: if haproxy {
                    forwards(HAPROXY, &[], false).and_then(|()| measure(HAPROXY, conns, &[], "1"))
                } else {
                    skip(no_haproxy)
                },
            });
            if haproxy && conns == 256 {
                rows.push(time_wait_row(before));
            }
        }
    }
    // The bearer row of a gateway with more config (lines for
    // `[upstream]`, and sections given the gateway's own folder): measured
    // just before the plain gateway's bearer row, shown right after it. The
    // folder (config, and whatever the sections put there) goes when the
    // gateway has stopped.
    let mirror_bearer = |name: &str, upstream: &str, sections: &dyn Fn(&Path) -> String| {
        let folder = tempfile::tempdir().expect("a temporary folder for the gateway");
        let (_gateway, token) =
            start_authgate(folder.path(), 1, "0", None, upstream, &sections(folder.path()));
        let bearer = vec![format!("Authorization: Bearer {token}")];
        Row {
            name: name.into(),
            cores: 1,
            conns: 32,
            result: forwards(GATEWAY, &bearer, true).and_then(|()| measure(GATEWAY, 32, &bearer, "1")),
        }
    };
    // The step-up check: every path at auth_level = "mfa", a token of two
    // factors (a one-factor token must be refused, or the row says so).
    let step_up_row = || {
        let folder = tempfile::tempdir().expect("a temporary folder for the gateway");
        let (_gateway, one_factor) = start_authgate(
            folder.path(),
            1,
            "0",
            None,
            "",
            &step_up::sections(folder.path(), UPSTREAM),
        );
        let base = format!("http://127.0.0.1:{GATEWAY}");
        let result = step_up::two_factor_token(&base, "bench", "bench-password")
            .map_err(|why| format!("not measured: {why}"))
            .and_then(|token| {
                let refused = forwards(GATEWAY, &[format!("Authorization: Bearer {one_factor}")], false);
                if refused.is_ok() {
                    return Err(
                        "not measured: a one-factor token passed the route at auth_level = \"mfa\"".into(),
                    );
                }
                let bearer = vec![format!("Authorization: Bearer {token}")];
                forwards(GATEWAY, &bearer, true).and_then(|()| measure(GATEWAY, 32, &bearer, "1"))
            });
        Row {
            name: WITH_STEP_UP.into(),
            cores: 1,
            conns: 32,
            result,
        }
    };
    let mut beside_bearer = vec![
        mirror_bearer(WITH_IDENTITY_JWT, "identity_jwt = true\n", &|_| String::new()),
        mirror_bearer(WITH_DATABASE, "", &|folder| {
            format!(
                "[database]\nurl = \"sqlite://{}\"\n[audit]\nfile = \"{}\"\n",
                folder.join("authgate.db").display(),
                folder.join("audit.jsonl").display(),
            )
        }),
        step_up_row(),
    ];
    {
        let (_gateway, token) = start_authgate(dir.path(), 1, "0", None, "", "");
        let bearer = vec![format!("Authorization: Bearer {token}")];
        let cookie = vec![format!("Cookie: authgate_session={token}")];
        for (name, conns, headers) in [
            ("authgate, bearer token", 32, &bearer),
            ("authgate, session cookie", 32, &cookie),
            ("authgate, no credential (401, not forwarded)", 32, &vec![]),
        ] {
            rows.push(Row {
                name: name.into(),
                cores: 1,
                conns,
                result: measure(GATEWAY, conns, headers, "1"),
            });
            // After the first, the bearer row: the ones that mirror it.
            rows.append(&mut beside_bearer);
        }
        let before = time_wait_count();
        rows.push(Row {
            name: "authgate, bearer token".into(),
            cores: 1,
            conns: 256,
            result: measure(GATEWAY, 256, &bearer, "1"),
        });
        rows.push(time_wait_row(before));
        let storm = SignInStorm::start(64);
        rows.push(Row {
            name: "authgate, bearer token, during 64 concurrent sign-ins".into(),
            cores: 1,
            conns: 32,
            result: measure(GATEWAY, 32, &bearer, "1"),
        });
        let sign_ins = storm.stop();
        rows.push(Row {
            name: format!(
                "  sign-ins completed meanwhile: {sign_ins:.0}/s (argon2id, production parameters)"
            ),
            cores: 1,
            conns: 64,
            result: Err(String::new()),
        });
    }

    {
        let log = dir.path().join("authgate.log");
        let (_gateway, token) = start_authgate(dir.path(), 1, "0", Some(&log), "", "");
        rows.push(Row {
            name: "authgate, bearer token, access log to a file (the default log level)".into(),
            cores: 1,
            conns: 32,
            result: measure(GATEWAY, 32, &[format!("Authorization: Bearer {token}")], "1"),
        });
    }
    // One core: Caddy, after authgate: its default pool of 32 idle upstream
    // connections leaves thousands of sockets in TIME_WAIT at 256
    // connections, for a minute, which would otherwise be there during
    // authgate's rows.
    {
        let _proxy = caddy.then(|| start_caddy(dir.path(), "caddy1", 1, "0"));
        for conns in [32, 256] {
            let before = time_wait_count();
            rows.push(Row {
                name: "Caddy (plain reverse_proxy)".into(),
                cores: 1,
                conns,
                result: if caddy {
                    forwards(CADDY_PROXY, &[], false).and_then(|()| measure(CADDY_PROXY, conns, &[], "1"))
                } else {
                    skip(no_caddy)
                },
            });
            if caddy && conns == 256 {
                rows.push(time_wait_row(before));
            }
            rows.push(Row {
                name: "Caddy + forward_auth".into(),
                cores: 1,
                conns,
                result: match (caddy, nginx) {
                    (false, _) => skip(no_caddy),
                    (true, false) => skip(no_auth_backend),
                    (true, true) => forwards(CADDY_AUTH, &auth, true)
                        .and_then(|()| measure(CADDY_AUTH, conns, &auth, "1")),
                },
            });
        }
    }

    // Two cores.
    {
        let _proxy = nginx.then(|| start_nginx(dir.path(), "px2", "px-nginx.conf.tmpl", 2, "0-1"));
        if nginx {
            wait_for_port(NGINX_PROXY);
        }
        rows.push(Row {
            name: "nginx reverse proxy (keepalive 64)".into(),
            cores: 2,
            conns: 32,
            result: if nginx {
                measure(NGINX_PROXY, 32, &[], "1")
            } else {
                skip(no_nginx)
            },
        });
    }
    {
        let _proxy = haproxy.then(|| start_haproxy(dir.path(), "ha2", 2, "0-1"));
        rows.push(Row {
            name: "HAProxy (plain proxy)".into(),
            cores: 2,
            conns: 32,
            result: if haproxy {
                forwards(HAPROXY, &[], false).and_then(|()| measure(HAPROXY, 32, &[], "1"))
            } else {
                skip(no_haproxy)
            },
        });
    }
    {
        let (_gateway, token) = start_authgate(dir.path(), 2, "0-1", None, "", "");
        let bearer = vec![format!("Authorization: Bearer {token}")];
        rows.push(Row {
            name: "authgate, bearer token".into(),
            cores: 2,
            conns: 32,
            result: measure(GATEWAY, 32, &bearer, "1"),
        });
    }
    {
        // Caddy last, as on one core.
        let _proxy = caddy.then(|| start_caddy(dir.path(), "caddy2", 2, "0-1"));
        rows.push(Row {
            name: "Caddy (plain reverse_proxy)".into(),
            cores: 2,
            conns: 32,
            result: if caddy {
                forwards(CADDY_PROXY, &[], false).and_then(|()| measure(CADDY_PROXY, 32, &[], "1"))
            } else {
                skip(no_caddy)
            },
        });
        rows.push(Row {
            name: "Caddy + forward_auth".into(),
            cores: 2,
            conns: 32,
            result: match (caddy, nginx) {
                (false, _) => skip(no_caddy),
                (true, false) => skip(no_auth_backend),
                (true, true) => {
                    forwards(CADDY_AUTH, &auth, true).and_then(|()| measure(CADDY_AUTH, 32, &auth, "1"))
                }
            },
        });
    }
    print_table(&rows, runs, seconds);
}

/// `benches/{rig}/{template}` with `__W__` (workers, threads) and
/// `__DIR__` (the instance's own folder, `dir/name`, made here) filled in,
/// written to that folder as `file`; answers the folder and the file.
fn write_config(
    dir: &Path,
    name: &str,
    rig: &str,
    template: &str,
    workers: u32,
    file: &str,
) -> (PathBuf, PathBuf) {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("benches")
            .join(rig)
            .join(template),
    )
    .unwrap()
    .replace("__W__", &workers.to_string())
    .replace("__DIR__", folder.to_str().unwrap());
    let conf = folder.join(file);
    std::fs::write(&conf, text).unwrap();
    (folder, conf)
}

/// A file in `folder` for a server's own messages (its errors, Caddy's
/// runtime log), not an access log.
fn messages(folder: &Path, file: &str) -> Stdio {
    Stdio::from(std::fs::File::create(folder.join(file)).expect("a log file"))
}

fn start_nginx(dir: &Path, name: &str, template: &str, workers: u32, cores: &str) -> Running {
    let (folder, conf) = write_config(dir, name, "nginx", template, workers, "nginx.conf");
    let child = Command::new("taskset")
        .args(["-c", cores, "nginx", "-g", "daemon off;", "-p"])
        .arg(&folder)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx");
    Running(child)
}

/// HAProxy in the foreground (`-db`) with `threads` threads on `cores`,
/// listening on [`HAPROXY`] once this returns. SIGTERM (the guard's) stops
/// it at once.
fn start_haproxy(dir: &Path, name: &str, threads: u32, cores: &str) -> Running {
    let (folder, conf) = write_config(dir, name, "haproxy", "haproxy.cfg.tmpl", threads, "haproxy.cfg");
    let child = Command::new("taskset")
        .args(["-c", cores, "haproxy", "-db", "-f"])
        .arg(&conf)
        .current_dir(&folder)
        .stdout(Stdio::null())
        .stderr(messages(&folder, "haproxy.log"))
        .spawn()
        .expect("haproxy");
    let running = Running(child);
    wait_for_port(HAPROXY);
    running
}

/// Caddy with `GOMAXPROCS` = `threads` on `cores`, listening on
/// [`CADDY_PROXY`] and [`CADDY_AUTH`] once this returns; its home and XDG
/// folders are its own folder, so it writes nothing elsewhere. SIGTERM
/// (the guard's) stops it within its one-second grace period.
fn start_caddy(dir: &Path, name: &str, threads: u32, cores: &str) -> Running {
    let (folder, conf) = write_config(dir, name, "caddy", "Caddyfile.tmpl", threads, "Caddyfile");
    let child = Command::new("taskset")
        .args(["-c", cores, "caddy", "run", "--adapter", "caddyfile", "--config"])
        .arg(&conf)
        .current_dir(&folder)
        .env("GOMAXPROCS", threads.to_string())
        .env("HOME", &folder)
        .env("XDG_CONFIG_HOME", &folder)
        .env("XDG_DATA_HOME", &folder)
        .stdout(Stdio::null())
        .stderr(messages(&folder, "caddy.log"))
        .spawn()
        .expect("caddy");
    let running = Running(child);
    wait_for_port(CADDY_PROXY);
    wait_for_port(CADDY_AUTH);
    running
}

/// Whether the proxy on `port` forwards: `/` with `headers` answers 200
/// (the upstream's `ok`) and, for one that asks the auth backend, 401
/// without them. wrk counts every answer, so a peer that only answered
/// errors (a wrong auth URI, an upstream it cannot reach) would otherwise
/// come out fast.
fn forwards(port: u16, headers: &[String], refuses_without: bool) -> Result<(), String> {
    let status = |headers: &[String]| {
        let mut curl = Command::new("curl");
        curl.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]);
        for header in headers {
            curl.args(["-H", header]);
        }
        curl.arg(format!("http://127.0.0.1:{port}/"))
            .output()
            .map_or_else(
                |e| e.to_string(),
                |out| String::from_utf8_lossy(&out.stdout).into_owned(),
            )
    };
    let with = status(headers);
    if with != "200" {
        return Err(format!("not measured: `/` answered {with}, not 200"));
    }
    if refuses_without {
        let without = status(&[]);
        if without != "401" {
            return Err(format!(
                "not measured: `/` without credentials answered {without}, not 401"
            ));
        }
    }
    Ok(())
}

/// Starts the release authgate in front of the upstream; answers it and a
/// bearer token from its token endpoint.
/// The gateway with `workers` threads on `cores`, its config written to
/// `dir` with `upstream` (more lines of `[upstream]`, or nothing) and
/// `sections` (whole TOML sections, or nothing) at its end; with `log`,
/// its default log (the access log on) goes to that file.
fn start_authgate(
    dir: &Path,
    workers: u32,
    cores: &str,
    log: Option<&Path>,
    upstream: &str,
    sections: &str,
) -> (Running, String) {
    let hash = hash_secret(AUTHGATE, "bench-password");
    let config: PathBuf = dir.join(format!("authgate-{workers}.toml"));
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{GATEWAY}\"\nworkers = {workers}\n[upstream]\nurl = \"http://127.0.0.1:{UPSTREAM}\"\n{upstream}\
             [limits]\nheader_read_timeout_secs = 60\n[[users]]\nusername = \"bench\"\npassword_hash = \"{hash}\"\n{sections}"
        ),
    )
    .unwrap();
    let gateway = support::start_authgate(AUTHGATE, &config, cores, GATEWAY, log);
    let out = Command::new("curl")
        .args([
            "-s",
            &format!("http://127.0.0.1:{GATEWAY}/management/token"),
            "-d",
            "grant_type=password",
        ])
        .args(["-d", "username=bench", "-d", "password=bench-password"])
        .output()
        .expect("curl");
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a token response");
    (
        gateway,
        body["access_token"].as_str().expect("an access token").to_owned(),
    )
}

/// Sockets in TIME_WAIT towards the upstream after a row, and before it
/// (left by earlier rows, or by a proxy stopped less than a minute ago): a
/// proxy that opens and closes a connection per request leaves thousands.
fn time_wait_row(before: Option<usize>) -> Row {
    let result = match (before, time_wait_count()) {
        (Some(before), Some(after)) => format!("{after} sockets in TIME_WAIT ({before} before the row)"),
        _ => "TIME_WAIT not counted: `ss` failed".to_owned(),
    };
    Row {
        name: "  TIME_WAIT to the upstream after it".into(),
        cores: 1,
        conns: 256,
        result: Err(result),
    }
}

fn time_wait_count() -> Option<usize> {
    let out = Command::new("ss")
        .args(["-Htan", "state", "time-wait", &format!("( dport = :{UPSTREAM} )")])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).lines().count())
}

fn print_table(rows: &[Row], runs: u32, seconds: u32) {
    let find = |name: &str, cores: u8, conns: u32| {
        rows.iter()
            .find(|r| r.name.starts_with(name) && r.cores == cores && r.conns == conns)
            .and_then(|r| r.result.as_ref().ok().copied())
    };
    let direct = find("direct", 1, 32);
    println!("\nauthgate proxy benchmark: wrk -t1 on CPU 1, servers on CPU 0 (0-1 for 2 cores), {runs} × {seconds} s, medians\n");
    println!("| row | server cores | conns | req/s | p50 | p99 | ratio to direct | ratio to nginx proxy | ratio to nginx + auth_request | ratio to HAProxy | ratio to best plain proxy |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        match row.result {
            Ok(m) => {
                // A row with the access log on is compared with nginx's
                // with its access log on.
                let logged = row.name.contains("access log");
                let nginx = if logged {
                    find(
                        "nginx reverse proxy (keepalive 64), access log",
                        row.cores,
                        row.conns,
                    )
                } else {
                    find("nginx reverse proxy", row.cores, row.conns)
                };
                let auth = find("nginx + auth_request", row.cores, row.conns).filter(|_| !logged);
                // HAProxy logs nothing: the rows with an access log have
                // no HAProxy, and so no best plain proxy, to compare with.
                let haproxy = find("HAProxy (plain proxy)", row.cores, row.conns).filter(|_| !logged);
                let best = [
                    ("nginx", find("nginx reverse proxy", row.cores, row.conns)),
                    ("HAProxy", haproxy),
                ]
                .into_iter()
                .filter_map(|(name, m)| Some((name, m?)))
                .max_by(|a, b| a.1.rps.total_cmp(&b.1.rps))
                .filter(|_| !logged);
                let ratio = |base: Option<Measured>| {
                    base.map_or("—".to_owned(), |b| format!("{:.2}", m.rps / b.rps))
                };
                let best = best.map_or("—".to_owned(), |(name, b)| {
                    format!("{} ({name})", ratio(Some(b)))
                });
                println!(
                    "| {} | {} | {} | {:.0} | {:.2} ms | {:.2} ms | {} | {} | {} | {} | {} |",
                    row.name,
                    row.cores,
                    row.conns,
                    m.rps,
                    m.p50_ms,
                    m.p99_ms,
                    ratio(direct),
                    ratio(nginx),
                    ratio(auth),
                    ratio(haproxy),
                    best
                );
            }
            Err(ref why) => println!(
                "| {} | {} | {} | {why} | | | | | | | |",
                row.name, row.cores, row.conns
            ),
        }
        if let Some((_, with)) = BESIDE_BEARER.iter().find(|(name, _)| row.name == *name) {
            // The plain bearer row is the first whose name starts so.
            if let (Ok(on), Some(off)) = (&row.result, find("authgate, bearer token", 1, 32)) {
                println!(
                    "|   {with} / the plain bearer row: {:.2} req/s, {:.2} p99 | | | | | | | | | | |",
                    on.rps / off.rps,
                    on.p99_ms / off.p99_ms
                );
            }
        }
        if row.name.contains("during 64 concurrent sign-ins") {
            if let (Ok(storm), Some(quiet)) = (&row.result, find("authgate, bearer token", 1, 32)) {
                println!(
                    "|   p99 during the storm / quiet p99: {:.1} | | | | | | | | | | |",
                    storm.p99_ms / quiet.p99_ms
                );
            }
        }
    }
}

/// Clients signing in with the password grant over and over (each sign-in
/// is an argon2id verification): one wrk on CPU 1 with a connection per
/// client, so the load generator itself costs next to nothing there (64
/// shell loops forking curl took enough of CPU 1 to show in the measuring
/// wrk's own p99).
struct SignInStorm {
    wrk: Option<std::process::Child>,
    _dir: tempfile::TempDir,
}

impl Drop for SignInStorm {
    fn drop(&mut self) {
        if let Some(mut wrk) = self.wrk.take() {
            let _ = wrk.kill();
            let _ = wrk.wait();
        }
    }
}

impl SignInStorm {
    fn start(clients: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("sign-in.lua");
        std::fs::write(
            &script,
            "wrk.method = \"POST\"\nwrk.body = \"grant_type=password&username=bench&password=bench-password\"\n\
             wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n",
        )
        .unwrap();
        let wrk = Command::new("taskset")
            .args([
                "-c",
                "1",
                "wrk",
                "-t1",
                &format!("-c{clients}"),
                "-d1h",
                "--timeout",
                "60s",
                "-s",
            ])
            .arg(&script)
            .arg(format!("http://127.0.0.1:{GATEWAY}/management/token"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("wrk");
        // Let every client get its first sign-in under way.
        std::thread::sleep(std::time::Duration::from_secs(2));
        Self {
            wrk: Some(wrk),
            _dir: dir,
        }
    }

    /// Stops the clients (wrk prints its summary on SIGINT); answers the
    /// sign-ins completed per second.
    fn stop(mut self) -> f64 {
        let wrk = self.wrk.take().expect("started");
        let _ = Command::new("kill")
            .args(["-INT", &wrk.id().to_string()])
            .status();
        let out = wrk.wait_with_output().expect("wrk");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(f64::NAN)
    }
}

/// Without nginx: a trivial upstream answering `ok`, on one thread.
fn serve_upstream(port: u16) {
    use http_body_util::Full;
    use hyper_util::rt::TokioIo;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        bytes::Bytes::from_static(b"ok"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
