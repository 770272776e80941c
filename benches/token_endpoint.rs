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
//! skipped and the table says so. Servers on CPU 0, wrk on CPU 1. After the
//! issuance runs, a token issued before them is introspected again (it
//! must still be active), and authgate's resident memory per issued token
//! is printed.

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
    let measure = |url: &str, script: &Path| -> Result<Measured, String> {
        let mut all: Vec<Measured> = (0..runs)
            .map(|_| wrk_with(url, 32, seconds, &[BASIC.to_owned()], Some(script), "1"))
            .collect::<Result<_, _>>()?;
        all.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        Ok(all[all.len() / 2])
    };
    let issue_script = write(dir.path(), "issue.lua", "wrk.method = \"POST\"\nwrk.body = \"grant_type=client_credentials\"\nwrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n");

    // authgate
    let gateway = start_authgate(dir.path());
    let first = issue(&format!("http://127.0.0.1:{GATEWAY}/management/token"));
    let rss_before = rss_kib(gateway.0.id());
    let ag_issue = measure(
        &format!("http://127.0.0.1:{GATEWAY}/management/token"),
        &issue_script,
    );
    let rss_after = rss_kib(gateway.0.id());
    let introspect_script = write(dir.path(), "introspect-ag.lua", &introspect_lua(&first));
    let ag_introspect = measure(
        &format!("http://127.0.0.1:{GATEWAY}/management/introspect"),
        &introspect_script,
    );
    let still_active = introspect(
        &format!("http://127.0.0.1:{GATEWAY}/management/introspect"),
        &first,
    );
    let issued = ag_issue
        .as_ref()
        .map_or(0.0, |m| m.rps * f64::from(seconds * runs));
    let kept = every_token_kept(dir.path(), seconds);
    drop(gateway);

    // oidc-provider
    let (op_issue, op_introspect) = match start_oidc_provider(dir.path()) {
        Ok(_node) => {
            let token = issue(&format!("http://127.0.0.1:{OIDC}/token"));
            let script = write(dir.path(), "introspect-op.lua", &introspect_lua(&token));
            (
                measure(&format!("http://127.0.0.1:{OIDC}/token"), &issue_script),
                measure(&format!("http://127.0.0.1:{OIDC}/token/introspection"), &script),
            )
        }
        Err(why) => (Err(why.clone()), Err(why)),
    };

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

/// Issues tokens for `seconds` more, writing down every 20th, then
/// introspects every token written down (wrk cycling through them) and
/// counts those not active: authgate keeps every token until it expires.
fn every_token_kept(dir: &Path, seconds: u32) -> String {
    let tokens = dir.join("tokens.txt");
    let record = write(
        dir,
        "record.lua",
        &format!(
            "wrk.method = \"POST\"\nwrk.body = \"grant_type=client_credentials\"\n\
             wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n\
             local n, out = 0, nil\n\
             response = function(status, headers, body)\n\
               n = n + 1\n\
               if n % 20 == 0 then\n\
                 out = out or io.open(\"{}\", \"a\")\n\
                 local t = body:match('\"access_token\":\"([^\"]+)\"')\n\
                 if t then out:write(t, \"\\n\") out:flush() end\n\
               end\n\
             end\n",
            tokens.display()
        ),
    );
    let url = format!("http://127.0.0.1:{GATEWAY}/management/token");
    if let Err(why) = wrk_with(&url, 32, seconds, &[BASIC.to_owned()], Some(&record), "1") {
        return format!("token check skipped: {why}");
    }
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
    let out = Command::new("taskset")
        .args(["-c", "1", "wrk", "-t1", "-c32", &format!("-d{seconds}s"), "-s"])
        .arg(&check)
        .arg(format!("http://127.0.0.1:{GATEWAY}/management/introspect"))
        .output()
        .expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("checked "))
        .unwrap_or("no result from wrk");
    format!("{written} tokens written down while issuing, then introspected in a cycle: {line} (inactive must be 0).")
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
    support::start_authgate(AUTHGATE, &config, "0", GATEWAY)
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
