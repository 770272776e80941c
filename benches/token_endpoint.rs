//! The token endpoint at proxy speed: `client_credentials` issuance with
//! HTTP Basic and token introspection, authgate side by side with
//! oidc-provider (the most used Node.js authorization server), in one run.
//!
//! ```text
//! scripts/bench-token                          # installs wrk and Node.js if missing, then this
//! cargo bench --bench token_endpoint           # 3 × 10 s a row, medians
//! cargo bench --bench token_endpoint -- --quick
//! ```
//!
//! oidc-provider 9 is installed with npm into a temporary folder by the
//! benchmark itself (default in-memory adapter, opaque tokens, a
//! confidential client with a plain secret); without Node.js its rows are
//! skipped and the table says so. Both servers run side by side on CPU 0
//! and their runs alternate (wrk on CPU 1), so drift on a shared machine
//! falls on both alike. After the runs, a token issued before them is
//! introspected again (it must still be active), authgate's resident
//! memory per issued token is printed, and every token of a further
//! issuance run is introspected (all must be active).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::{hash_secret, have, wait_for_port, wrk_with, Measured, Running};

const AUTHGATE: &str = env!("CARGO_BIN_EXE_authgate");
const GATEWAY: u16 = 9110;
const OIDC: u16 = 9120;
const CLIENT: &str = "bench";
const SECRET: &str = "bench-secret";
const BASIC: &str = "Authorization: Basic YmVuY2g6YmVuY2gtc2VjcmV0"; // bench:bench-secret

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (runs, seconds) = if args.iter().any(|a| a == "--quick") {
        (1, 3)
    } else {
        (3, 10)
    };
    if !have("wrk") {
        eprintln!("wrk is not installed: run scripts/bench-token, which installs it");
        std::process::exit(1);
    }
    let dir = tempfile::tempdir().unwrap();
    let issue_script = write(dir.path(), "issue.lua", "wrk.method = \"POST\"\nwrk.body = \"grant_type=client_credentials\"\nwrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n");
    let ag_token = format!("http://127.0.0.1:{GATEWAY}/management/token");
    let ag_introspection = format!("http://127.0.0.1:{GATEWAY}/management/introspect");
    let op_token = format!("http://127.0.0.1:{OIDC}/token");
    let op_introspection = format!("http://127.0.0.1:{OIDC}/token/introspection");

    // Both servers run side by side and their runs alternate, so that
    // drift on a shared machine falls on both alike.
    let gateway = start_authgate(dir.path());
    let node = start_oidc_provider(dir.path());
    let first = issue(&ag_token);
    let ag_introspect_script = write(dir.path(), "introspect-ag.lua", &introspect_lua(&first));
    let op_introspect_script = node.as_ref().ok().map(|_| {
        write(
            dir.path(),
            "introspect-op.lua",
            &introspect_lua(&issue(&op_token)),
        )
    });
    let run = |url: &str, script: &Path| wrk_with(url, 32, seconds, &[BASIC.to_owned()], Some(script), "1");
    let alternate = |ours: (&str, &Path), theirs: Option<(&str, &Path)>| {
        let (mut ag, mut op) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            ag.push(run(ours.0, ours.1));
            if let Some((url, script)) = theirs {
                op.push(run(url, script));
            }
        }
        let op = match &node {
            Ok(_) => median(op),
            Err(why) => Err(why.clone()),
        };
        (median(ag), op)
    };

    let rss_before = rss_kib(gateway.0.id());
    let (ag_issue, op_issue) = alternate(
        (&ag_token, &issue_script),
        node.as_ref()
            .ok()
            .map(|_| (op_token.as_str(), issue_script.as_path())),
    );
    let rss_after = rss_kib(gateway.0.id());
    let (ag_introspect, op_introspect) = alternate(
        (&ag_introspection, &ag_introspect_script),
        op_introspect_script
            .as_deref()
            .map(|script| (op_introspection.as_str(), script)),
    );
    drop(node);
    let still_active = introspect(&ag_introspection, &first);
    let issued = ag_issue
        .as_ref()
        .map_or(0.0, |m| m.rps * f64::from(seconds * runs));
    let kept = every_token_kept(dir.path(), seconds);
    drop(gateway);

    println!("\ntoken endpoint benchmark: wrk -t1 -c32 on CPU 1, servers on CPU 0, {runs} × {seconds} s, medians\n");
    println!("| endpoint | server | req/s | p50 | p99 | ratio to oidc-provider |");
    println!("|---|---|---|---|---|---|");
    for (endpoint, ours, theirs) in [
        ("client_credentials, HTTP Basic", &ag_issue, &op_issue),
        ("introspection", &ag_introspect, &op_introspect),
    ] {
        for (server, result) in [("authgate", ours), ("oidc-provider 9", theirs)] {
            match result {
                Ok(m) => {
                    let ratio = match (server, theirs) {
                        ("authgate", Ok(t)) => format!("{:.1}", m.rps / t.rps),
                        ("authgate", Err(_)) => "—".to_owned(),
                        _ => "1.0".to_owned(),
                    };
                    println!(
                        "| {endpoint} | {server} | {:.0} | {:.2} ms | {:.2} ms | {ratio} |",
                        m.rps, m.p50_ms, m.p99_ms
                    )
                }
                Err(why) => println!("| {endpoint} | {server} | {why} | | | |"),
            }
        }
    }
    println!(
        "\nauthgate issued about {:.0} tokens in the issuance runs; a token issued before them introspects active: {still_active}; \
         resident memory grew {:.0} bytes per issued token.\n{kept}",
        issued,
        (rss_after.saturating_sub(rss_before) as f64 * 1024.0) / issued.max(1.0)
    );
}

/// Issues tokens for `seconds` more, writing every one down, then
/// introspects every token written down (wrk walking the list in order
/// until it has been through all of it), and compares the store's count of
/// live tokens with the number issued since the start: authgate keeps
/// every token until it expires.
fn every_token_kept(dir: &Path, seconds: u32) -> String {
    let tokens = dir.join("tokens.txt");
    let record = write(
        dir,
        "record.lua",
        &format!(
            "wrk.method = \"POST\"\nwrk.body = \"grant_type=client_credentials\"\n\
             wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n\
             local out = nil\n\
             response = function(status, headers, body)\n\
               out = out or io.open(\"{}\", \"a\")\n\
               local t = body:match('\"access_token\":\"([^\"]+)\"')\n\
               if t then out:write(t, \"\\n\") end\n\
             end\n\
             done = function() if out then out:close() end end\n",
            tokens.display()
        ),
    );
    let url = format!("http://127.0.0.1:{GATEWAY}/management/token");
    if let Err(why) = wrk_with(&url, 32, seconds, &[BASIC.to_owned()], Some(&record), "1") {
        return format!("token check skipped: {why}");
    }
    // wrk's `done` runs in another Lua state: give the writer a moment.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let written = std::fs::read_to_string(&tokens)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    let check = write(
        dir,
        "check.lua",
        &format!(
            "local tokens = {{}}\nfor line in io.lines(\"{}\") do tokens[#tokens + 1] = line end\n\
             local i = 0\ninactive, checked = 0, 0\n\
             request = function()\n\
               i = i % #tokens + 1\n\
               local headers = {{[\"Content-Type\"] = \"application/x-www-form-urlencoded\", [\"Authorization\"] = \"{basic}\"}}\n\
               return wrk.format(\"POST\", nil, headers, \"token=\" .. tokens[i])\n\
             end\n\
             response = function(status, headers, body)\n\
               checked = checked + 1\n\
               if not body:find('\"active\":true', 1, true) then inactive = inactive + 1 end\n\
             end\n\
             local threads = {{}}\n\
             setup = function(thread) threads[#threads + 1] = thread end\n\
             done = function()\n\
               for _, t in ipairs(threads) do print(\"checked \" .. t:get(\"checked\") .. \" inactive \" .. t:get(\"inactive\")) end\n\
             end\n",
            tokens.display(),
            basic = BASIC.trim_start_matches("Authorization: ")
        ),
    );
    // Long enough to go through the whole list at a conservative 30k/s.
    let check_for = (written as u64 / 30_000 + 3).max(u64::from(seconds));
    let out = Command::new("taskset")
        .args(["-c", "1", "wrk", "-t1", "-c32", &format!("-d{check_for}s"), "-s"])
        .arg(&check)
        .arg(format!("http://127.0.0.1:{GATEWAY}/management/introspect"))
        .output()
        .expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    let counts: Vec<u64> = text
        .lines()
        .find_map(|l| l.strip_prefix("checked "))
        .map(|l| {
            l.split(" inactive ")
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let walked = match counts[..] {
        [checked, inactive] => format!(
            "introspected {checked} times in order, so each at least once: {}; inactive answers: {inactive} (must be 0)",
            if checked >= written as u64 { "yes" } else { "NO" }
        ),
        _ => format!("no result from wrk: {text}"),
    };
    let metrics = metric_values(&format!("http://127.0.0.1:{GATEWAY}/metrics"));
    let (issued, live) = (
        metrics("authgate_tokens_issued_total"),
        metrics("authgate_tokens_live"),
    );
    format!(
        "Every token written down while issuing ({written}) was then {walked}.\n\
         The store holds {live} live tokens for {issued} issued since the start (equal: {}).",
        if issued == live { "yes" } else { "NO" }
    )
}

/// Reads `url` (Prometheus text) and answers a lookup of a metric's value.
fn metric_values(url: &str) -> impl Fn(&str) -> u64 {
    let out = Command::new("curl").args(["-s", url]).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    move |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }
}

/// The run with the median throughput, or the first failure.
fn median(runs: Vec<Result<Measured, String>>) -> Result<Measured, String> {
    let mut all: Vec<Measured> = runs.into_iter().collect::<Result<_, _>>()?;
    if all.is_empty() {
        return Err("no runs".into());
    }
    all.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    Ok(all[all.len() / 2])
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn introspect_lua(token: &str) -> String {
    format!(
        "wrk.method = \"POST\"\nwrk.body = \"token={token}\"\nwrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n"
    )
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn curl_form(url: &str, form: &str) -> serde_json::Value {
    let out = Command::new("curl")
        .args(["-s", "-u", &format!("{CLIENT}:{SECRET}"), "-d", form, url])
        .output()
        .expect("curl");
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn issue(url: &str) -> String {
    let body = curl_form(url, "grant_type=client_credentials");
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token from {url}: {body}"))
        .to_owned()
}

fn introspect(url: &str, token: &str) -> bool {
    curl_form(url, &format!("token={token}"))["active"] == serde_json::Value::Bool(true)
}

fn start_authgate(dir: &Path) -> Running {
    let hash = hash_secret(AUTHGATE, SECRET);
    let config = write(
        dir,
        "authgate.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{GATEWAY}\"\nworkers = 1\n[upstream]\nbuiltin = \"whoami\"\n\
             [tokens]\nttl_secs = 86400\n[[clients]]\nclient_id = \"{CLIENT}\"\nclient_secret_hash = \"{hash}\"\ngrants = [\"client_credentials\"]\n"
        ),
    );
    support::start_authgate(AUTHGATE, &config, "0", GATEWAY, None)
}

/// Installs oidc-provider 9 into `dir` with npm and starts it on CPU 0.
fn start_oidc_provider(dir: &Path) -> Result<Running, String> {
    if !have("node") || !have("npm") {
        return Err("skipped: Node.js is not installed (scripts/bench-token installs it)".into());
    }
    let folder = dir.join("oidc-provider");
    std::fs::create_dir_all(&folder).unwrap();
    write(
        &folder,
        "package.json",
        "{\"name\":\"bench\",\"private\":true,\"type\":\"module\"}",
    );
    let installed = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--silent",
            "oidc-provider@9",
        ])
        .current_dir(&folder)
        .status()
        .map_err(|e| e.to_string())?;
    if !installed.success() {
        return Err("skipped: npm could not install oidc-provider@9".into());
    }
    write(
        &folder,
        "server.mjs",
        &format!(
            "import Provider from 'oidc-provider';\n\
             const provider = new Provider('http://127.0.0.1:{OIDC}', {{\n\
               clients: [{{ client_id: '{CLIENT}', client_secret: '{SECRET}', grant_types: ['client_credentials'],\n\
                 redirect_uris: [], response_types: [], token_endpoint_auth_method: 'client_secret_basic' }}],\n\
               features: {{ clientCredentials: {{ enabled: true }}, introspection: {{ enabled: true }}, devInteractions: {{ enabled: false }} }},\n\
             }});\n\
             provider.listen({OIDC});\n"
        ),
    );
    let child = Command::new("taskset")
        .args(["-c", "0", "node", "server.mjs"])
        .current_dir(&folder)
        .env("NODE_ENV", "production")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    wait_for_port(OIDC);
    Ok(Running(child))
}
