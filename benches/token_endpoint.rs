//! The token endpoint at proxy speed: `client_credentials` issuance with
//! HTTP Basic, token introspection and OpenID Connect's userinfo, authgate
//! side by side with oidc-provider (the most used Node.js authorization
//! server), in one run; then what an ID token costs authgate to issue.
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
//! falls on both alike.
//!
//! Userinfo is asked with an access token whose scope is `openid` (the
//! claims: `sub`). authgate's comes from the password grant of a
//! confidential client; oidc-provider's from a real sign-in through the
//! authorization code flow, which its server script goes through itself
//! once it listens: its interaction page signs `person` in and grants
//! `openid` at once, as a login and consent page does once answered.
//!
//! ID tokens side by side: the authorization code flow of a browser
//! already signed in at each server (single sign-on to an application),
//! once per signing algorithm, each by a client of its own with
//! `id_token_signed_response_alg`: wrk asks the authorization endpoint
//! with the session cookie, redeems the code at the token endpoint, and
//! counts the ID tokens answered (see `token_endpoint/code_flow.rs`).
//! oidc-provider signs with keys of the same sizes (RSA 2048, P-256,
//! Ed25519) made by Node.js at its start.
//!
//! What the ID token alone costs authgate: oidc-provider has no password
//! grant, so these rows are authgate's
//! alone: the password grant of a confidential client with and without
//! `scope=openid`, whose difference is making and signing the ID token.
//! Once with a person whose hash has the production argon2id parameters
//! (what an ID token adds to a real sign-in), once with a person whose
//! hash has the least (m=8 KiB, t=1), so the signature is most of what
//! differs: there once per algorithm, each by a client of its own with
//! `id_token_signed_response_alg` (RS256 by default). An algorithm whose
//! client this authgate refuses (`authgate check-config`), or whose ID
//! token comes out signed otherwise, is not measured, and the table says
//! why. Each group's runs alternate like the two servers'.
//!
//! After the runs, a token issued before them is
//! introspected again (it must still be active), authgate's resident
//! memory per issued token is printed, and every token of a further
//! issuance run is introspected (all must be active).

#[path = "token_endpoint/code_flow.rs"]
mod code_flow;
mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use std::path::PathBuf;

use base64::Engine;
use code_flow::{CodeFlow, REDIRECT_URI};
use support::{hash_secret, have, measured_by, wait_for_port, wrk_text, wrk_with, Measured, Running};

const AUTHGATE: &str = env!("CARGO_BIN_EXE_authgate");
const GATEWAY: u16 = 9110;
const OIDC: u16 = 9120;
const CLIENT: &str = "bench";
const SECRET: &str = "bench-secret";
const BASIC: &str = "Authorization: Basic YmVuY2g6YmVuY2gtc2VjcmV0"; // bench:bench-secret
/// The confidential client of the password grant (RS256 ID tokens, the
/// default), and of oidc-provider's authorization code flow; its secret is
/// [`SECRET`].
const RP: &str = "rp";
/// The person who signs in (production argon2id parameters), and the one
/// whose hash costs next to nothing; both with [`PASSWORD`].
const PERSON: &str = "person";
const QUICK_PERSON: &str = "quick-person";
const PASSWORD: &str = "person-password";
/// The ID token algorithms measured, each with a client of its own (the
/// first is [`RP`], which names none).
const ALGORITHMS: [(&str, &str); 3] = [("RS256", RP), ("ES256", "rp-es256"), ("EdDSA", "rp-eddsa")];

/// What wrk sends: a GET, or a POST of a form (its Lua script written
/// once), with extra header lines; or a script of its own, counting what
/// it says.
struct Load {
    url: String,
    headers: Vec<String>,
    form: Option<(String, PathBuf)>,
    counted: Counted,
}

/// What a load's rate counts.
#[derive(Clone, Copy)]
enum Counted {
    Requests,
    /// ID tokens issued, as [`CodeFlow::script`] counts them.
    IdTokens,
}

impl Load {
    fn get(url: &str, headers: Vec<String>) -> Self {
        Self {
            url: url.to_owned(),
            headers,
            form: None,
            counted: Counted::Requests,
        }
    }

    /// `flow` in turns, if it answers an ID token signed with `alg`.
    fn code_flow(
        dir: &Path,
        script: &str,
        flow: Result<CodeFlow, String>,
        alg: &str,
    ) -> Result<Self, String> {
        let flow = flow?;
        let (status, body) = flow.once()?;
        signed_as(&status, &body, Some(alg))?;
        Ok(Self {
            url: flow.authorize.clone(),
            headers: Vec::new(),
            form: Some((String::new(), flow.script(dir, script))),
            counted: Counted::IdTokens,
        })
    }

    fn post(dir: &Path, script: &str, url: &str, headers: Vec<String>, form: &str) -> Self {
        let lua = format!(
            "wrk.method = \"POST\"\nwrk.body = \"{form}\"\nwrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n"
        );
        Self {
            url: url.to_owned(),
            headers,
            form: Some((form.to_owned(), write(dir, script, &lua))),
            counted: Counted::Requests,
        }
    }

    /// The load's request sent once with curl: its status and JSON body.
    fn once(&self) -> (String, serde_json::Value) {
        let mut curl = Command::new("curl");
        curl.args(["-s", "-w", "\n%{http_code}"]);
        for header in &self.headers {
            curl.args(["-H", header]);
        }
        if let Some((form, _)) = &self.form {
            curl.args(["-d", form]);
        }
        let out = curl.arg(&self.url).output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout);
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        (
            status.to_owned(),
            serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        )
    }
}

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
    let d = dir.path();
    let ag_token = format!("http://127.0.0.1:{GATEWAY}/management/token");
    let ag_introspection = format!("http://127.0.0.1:{GATEWAY}/management/introspect");
    let ag_userinfo = format!("http://127.0.0.1:{GATEWAY}/management/userinfo");
    let op_token = format!("http://127.0.0.1:{OIDC}/token");
    let op_introspection = format!("http://127.0.0.1:{OIDC}/token/introspection");
    let op_userinfo = format!("http://127.0.0.1:{OIDC}/me");
    let basic = || vec![BASIC.to_owned()];
    let bearer = |token: &str| vec![format!("Authorization: Bearer {token}")];

    // Both servers run side by side and their runs alternate, so that
    // drift on a shared machine falls on both alike.
    let (gateway, refused_algorithms) = start_authgate(d);
    let node = start_oidc_provider(d);
    let first = issue(&ag_token);
    let ag_issue_load = Load::post(
        d,
        "issue.lua",
        &ag_token,
        basic(),
        "grant_type=client_credentials",
    );
    let ag_introspect_load = Load::post(
        d,
        "introspect-ag.lua",
        &ag_introspection,
        basic(),
        &format!("token={first}"),
    );
    let (op_issue_load, op_introspect_load, op_userinfo_load) = match &node {
        Ok(_) => (
            Ok(Load::post(
                d,
                "issue-op.lua",
                &op_token,
                basic(),
                "grant_type=client_credentials",
            )),
            Ok(Load::post(
                d,
                "introspect-op.lua",
                &op_introspection,
                basic(),
                &format!("token={}", issue(&op_token)),
            )),
            oidc_provider_signed_in(d)
                .map(|token| Load::get(&op_userinfo, bearer(&token)))
                .and_then(answers_claims),
        ),
        Err(why) => (Err(why.clone()), Err(why.clone()), Err(why.clone())),
    };
    let signed_in = |person: &str| format!("grant_type=password&username={person}&password={PASSWORD}");
    let ag_userinfo_load = Load::post(
        d,
        "userinfo-token.lua",
        &ag_token,
        client_basic(RP),
        &format!("{}&scope=openid", signed_in(PERSON)),
    )
    .once()
    .1["access_token"]
        .as_str()
        .ok_or_else(|| "not measured: the password grant with scope=openid issued no access token".to_owned())
        .map(|token| Load::get(&ag_userinfo, bearer(token)))
        .and_then(answers_claims);
    let run = |load: &Load| {
        let script = load.form.as_ref().map(|(_, script)| script.as_path());
        match load.counted {
            Counted::Requests => wrk_with(&load.url, 32, seconds, &load.headers, script, "1"),
            Counted::IdTokens => wrk_text(&load.url, 32, seconds, &load.headers, script, "1")
                .and_then(|text| measured_by(&text, |text| code_flow::id_tokens_a_second(text, seconds))),
        }
    };
    // Each load's median, their runs in turns; a load that is not there
    // (`Err`: why) is not run and answers why.
    let in_turns = |loads: &[&Result<Load, String>]| -> Vec<Result<Measured, String>> {
        let mut measured: Vec<Vec<Result<Measured, String>>> = loads.iter().map(|_| Vec::new()).collect();
        for _ in 0..runs {
            for (load, results) in loads.iter().zip(&mut measured) {
                if let Ok(load) = load {
                    results.push(run(load));
                }
            }
        }
        loads
            .iter()
            .zip(measured)
            .map(|(load, results)| load.as_ref().map_err(Clone::clone).and_then(|_| median(results)))
            .collect()
    };
    let alternate = |ours: Result<Load, String>, theirs: &Result<Load, String>| {
        let [ours, theirs]: [_; 2] = in_turns(&[&ours, theirs]).try_into().unwrap();
        (ours, theirs)
    };

    let rss_before = rss_kib(gateway.0.id());
    let (ag_issue, op_issue) = alternate(Ok(ag_issue_load), &op_issue_load);
    let rss_after = rss_kib(gateway.0.id());
    let (ag_introspect, op_introspect) = alternate(Ok(ag_introspect_load), &op_introspect_load);
    let (ag_userinfo, op_userinfo) = alternate(ag_userinfo_load, &op_userinfo_load);

    // The password grant without and with an ID token: for `person` with
    // RS256; for `quick-person` with each algorithm.
    let grant = |script: &str, person: &str, client: &str, openid: bool, alg: Option<&str>| {
        let load = Load::post(
            d,
            script,
            &ag_token,
            client_basic(client),
            &format!(
                "{}{}",
                signed_in(person),
                if openid { "&scope=openid" } else { "" }
            ),
        );
        issues_id_token(load, alg)
    };
    let id_token_rows = |person: &str, what: &str, algorithms: &[(&str, &str)]| {
        let mut loads = vec![(
            format!("password grant, HTTP Basic, {what}"),
            grant(&format!("{person}.lua"), person, RP, false, None),
        )];
        for (alg, client) in algorithms {
            let load = match refused_algorithms.get(*alg) {
                Some(why) => Err(why.clone()),
                None => grant(&format!("{person}-{alg}.lua"), person, client, true, Some(alg)),
            };
            loads.push((
                format!("password grant, HTTP Basic, {what}, scope=openid: + ID token {alg}"),
                load,
            ));
        }
        let results = in_turns(&loads.iter().map(|(_, load)| load).collect::<Vec<_>>());
        loads
            .into_iter()
            .map(|(name, _)| name)
            .zip(results)
            .collect::<Vec<_>>()
    };
    let id_tokens = [
        id_token_rows(PERSON, "argon2id production parameters", &ALGORITHMS[..1]),
        id_token_rows(
            QUICK_PERSON,
            "argon2id m=8 KiB t=1 (the hash next to free)",
            &ALGORITHMS,
        ),
    ];
    let still_active = introspect(&ag_introspection, &first);
    let issued = ag_issue
        .as_ref()
        .map_or(0.0, |m| m.rps * f64::from(seconds * runs));
    let kept = every_token_kept(dir.path(), seconds);
    // The code flow of a browser signed in at both, once per algorithm.
    let ag_session = code_flow::authgate_session(&format!("http://127.0.0.1:{GATEWAY}"), PERSON, PASSWORD);
    let code_flows: Vec<_> = ALGORITHMS
        .iter()
        .map(|(alg, client)| {
            // A session of its own for each: the last run's tokens have
            // pushed the one before out of oidc-provider's memory.
            let op_session = node
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|_| oidc_provider_session());
            let flow = |authorize: &str, token: &str, session: &Result<String, String>| {
                session
                    .clone()
                    .map(|cookie| CodeFlow::new(authorize, token, client, &cookie, &basic_value(client)))
            };
            let ours = match refused_algorithms.get(*alg) {
                Some(why) => Err(why.clone()),
                None => Load::code_flow(
                    d,
                    &format!("code-ag-{alg}.lua"),
                    flow(
                        &format!("http://127.0.0.1:{GATEWAY}/management/authorize"),
                        &ag_token,
                        &ag_session,
                    ),
                    alg,
                ),
            };
            let theirs = Load::code_flow(
                d,
                &format!("code-op-{alg}.lua"),
                flow(&format!("http://127.0.0.1:{OIDC}/auth"), &op_token, &op_session),
                alg,
            );
            let (ours, theirs) = alternate(ours, &theirs);
            (
                format!("code flow, signed-in browser (authorize + token), ID tokens/s, {alg}"),
                ours,
                theirs,
            )
        })
        .collect();
    drop(node);
    drop(gateway);

    println!("\ntoken endpoint benchmark: wrk -t1 -c32 on CPU 1, servers on CPU 0, {runs} × {seconds} s, medians\n");
    println!("| endpoint | server | req/s | p50 | p99 | ratio to oidc-provider |");
    println!("|---|---|---|---|---|---|");
    let rows = [
        ("client_credentials, HTTP Basic".to_owned(), ag_issue, op_issue),
        ("introspection".to_owned(), ag_introspect, op_introspect),
        (
            "userinfo, GET, Bearer (scope openid)".to_owned(),
            ag_userinfo,
            op_userinfo,
        ),
    ];
    for (endpoint, ours, theirs) in rows.iter().chain(&code_flows) {
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
    // The ID token rows: authgate's alone, each group's first row (no
    // openid) the base of the notes after the others.
    for group in &id_tokens {
        let base = group[0].1.as_ref().ok();
        for (endpoint, result) in group {
            match result {
                Ok(m) => println!(
                    "| {endpoint} | authgate | {:.0} | {:.2} ms | {:.2} ms | — |",
                    m.rps, m.p50_ms, m.p99_ms
                ),
                Err(why) => println!("| {endpoint} | authgate | {why} | | | |"),
            }
            if let (Some(alg), Ok(with), Some(without)) = (endpoint.rsplit_once("ID token "), result, base) {
                println!(
                    "|   with the ID token ({}) / without: {:.2} req/s, {:.2} p99 | | | | | |",
                    alg.1,
                    with.rps / without.rps,
                    with.p99_ms / without.p99_ms
                );
            }
        }
    }
    println!(
        "| password grant | oidc-provider 9 | not offered: oidc-provider has no password grant, \
         and issues ID tokens only after a browser sign-in | | | |"
    );
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

/// `Authorization: Basic` for `client` and [`SECRET`].
fn client_basic(client: &str) -> Vec<String> {
    vec![format!("Authorization: {}", basic_value(client))]
}

/// The value of [`client_basic`]'s header.
fn basic_value(client: &str) -> String {
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{client}:{SECRET}"));
    format!("Basic {pair}")
}

/// The userinfo load if it answers 200 with a `sub`: wrk counts every
/// answer, so one that only answered errors would otherwise come out fast.
fn answers_claims(load: Load) -> Result<Load, String> {
    match load.once() {
        (status, body) if status == "200" && body["sub"].is_string() => Ok(load),
        (status, body) => Err(format!("not measured: userinfo answered {status}: {body}")),
    }
}

/// The password grant load if it answers 200 with an access token, and an
/// ID token signed with `alg` (`None`: no ID token).
fn issues_id_token(load: Load, alg: Option<&str>) -> Result<Load, String> {
    let (status, body) = load.once();
    signed_as(&status, &body, alg).map(|()| load)
}

/// Whether a token endpoint's answer is a 200 with an access token, and an
/// ID token signed with `alg` (`None`: no ID token).
fn signed_as(status: &str, body: &serde_json::Value, alg: Option<&str>) -> Result<(), String> {
    if status != "200" || !body["access_token"].is_string() {
        return Err(format!(
            "not measured: the token endpoint answered {status}: {body}"
        ));
    }
    let signed_with = body["id_token"].as_str().map(|jwt| {
        let header = jwt.split('.').next().unwrap_or("");
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
            .and_then(|h| h["alg"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "an unreadable header".to_owned())
    });
    match (alg, signed_with.as_deref()) {
        (None, None) => Ok(()),
        (Some(alg), Some(with)) if alg == with => Ok(()),
        (None, Some(with)) => Err(format!("not measured: an ID token ({with}) without scope=openid")),
        (Some(alg), None) => Err(format!(
            "not measured: no ID token for scope=openid (asked {alg})"
        )),
        (Some(alg), Some(with)) => Err(format!(
            "not measured: the client asks {alg} (id_token_signed_response_alg), the ID token came out {with}"
        )),
    }
}

/// An argon2id PHC string for `secret` with the least parameters (m=8
/// KiB, t=1, p=1): a password check that costs next to nothing.
fn cheap_hash(secret: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(8, 1, 1, None).expect("the least argon2 parameters");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(
            secret.as_bytes(),
            &SaltString::encode_b64(b"authgate-bench-1").expect("a salt"),
        )
        .expect("argon2id")
        .to_string()
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

/// The grants and redirect URI of the ID token clients.
fn code_flow_client() -> String {
    format!("grants = [\"password\", \"authorization_code\"]\nredirect_uris = [\"{REDIRECT_URI}\"]\n")
}

/// authgate on CPU 0 with the clients and people above, and a client per
/// ID token algorithm past RS256 (and `[signing]` offering them) if this
/// authgate accepts that config (`authgate check-config`); answers it and,
/// by algorithm, why one is not measured.
fn start_authgate(dir: &Path) -> (Running, std::collections::HashMap<&'static str, String>) {
    let hash = hash_secret(AUTHGATE, SECRET);
    let person = hash_secret(AUTHGATE, PASSWORD);
    let quick = cheap_hash(PASSWORD);
    let code_flow_client = code_flow_client();
    let base = format!(
        "[server]\nlisten = \"127.0.0.1:{GATEWAY}\"\nworkers = 1\n[upstream]\nbuiltin = \"whoami\"\n\
         [tokens]\nttl_secs = 86400\n[[clients]]\nclient_id = \"{CLIENT}\"\nclient_secret_hash = \"{hash}\"\ngrants = [\"client_credentials\"]\n\
         [[clients]]\nclient_id = \"{RP}\"\nclient_secret_hash = \"{hash}\"\n{code_flow_client}\
         [[users]]\nusername = \"{PERSON}\"\npassword_hash = \"{person}\"\n\
         [[users]]\nusername = \"{QUICK_PERSON}\"\npassword_hash = \"{quick}\"\n"
    );
    let others = &ALGORITHMS[1..];
    let mut full = base.clone();
    full.push_str(&format!(
        "[signing]\nalgorithms = [{}]\n",
        others
            .iter()
            .map(|(alg, _)| format!("\"{alg}\""))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    for (alg, client) in others {
        full.push_str(&format!(
            "[[clients]]\nclient_id = \"{client}\"\nclient_secret_hash = \"{hash}\"\n{code_flow_client}\
             id_token_signed_response_alg = \"{alg}\"\n"
        ));
    }
    let config = write(dir, "authgate.toml", &full);
    let checked = Command::new(AUTHGATE)
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("authgate check-config");
    let mut refused = std::collections::HashMap::new();
    if !checked.status.success() {
        let said = String::from_utf8_lossy(&checked.stderr);
        let said = said.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        for (alg, _) in others {
            refused.insert(
                *alg,
                format!(
                    "not measured: a client with id_token_signed_response_alg = \"{alg}\" is refused: {said}"
                ),
            );
        }
        write(dir, "authgate.toml", &base);
    }
    (
        support::start_authgate(AUTHGATE, &config, "0", GATEWAY, None),
        refused,
    )
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
        &OIDC_PROVIDER_SERVER
            .replace("__OIDC__", &OIDC.to_string())
            .replace("__CLIENT__", CLIENT)
            .replace("__REDIRECT_URI__", REDIRECT_URI)
            .replace("__RPS__", &serde_json::to_string(&ALGORITHMS).expect("JSON"))
            .replace("__SECRET__", SECRET)
            .replace("__PERSON__", PERSON),
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

/// oidc-provider's server: the client_credentials client, the client of
/// the authorization code flow, people with `sub` as their only claim, and
/// an interaction page that signs [`PERSON`] in and grants `openid` at
/// once. Once it listens it signs in through that flow (following the
/// redirects with its cookies) and writes the access token, or `error:
/// why`, to `userinfo-token.txt`.
const OIDC_PROVIDER_SERVER: &str = r#"import Provider from 'oidc-provider';
import { writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
const issuer = 'http://127.0.0.1:__OIDC__';
const redirectUri = '__REDIRECT_URI__';
// [alg, client_id]: a client per ID token algorithm, and a key for each.
const rps = __RPS__;
const key = (type, options, alg) =>
  ({ ...generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' }), alg, use: 'sig' });
const provider = new Provider(issuer, {
  clients: [
    { client_id: '__CLIENT__', client_secret: '__SECRET__', grant_types: ['client_credentials'],
      redirect_uris: [], response_types: [], token_endpoint_auth_method: 'client_secret_basic' },
    ...rps.map(([alg, id]) => ({ client_id: id, client_secret: '__SECRET__', grant_types: ['authorization_code'],
      redirect_uris: [redirectUri], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: alg })),
  ],
  jwks: { keys: [key('rsa', { modulusLength: 2048 }, 'RS256'), key('ec', { namedCurve: 'P-256' }, 'ES256'),
    key('ed25519', {}, 'EdDSA')] },
  enabledJWA: { idTokenSigningAlgValues: ['RS256', 'ES256', 'EdDSA'] },
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
  features: { clientCredentials: { enabled: true }, introspection: { enabled: true }, devInteractions: { enabled: false } },
});
provider.use(async (ctx, next) => {
  // The default adapter keeps 1000 entries at most: after the other rows'
  // tokens the browser's session is gone, so the bench asks for a new one.
  if (ctx.path === '/bench-session') {
    ctx.body = await signInEverywhere();
    return;
  }
  if (!/^\/interaction\/[^/]+$/.test(ctx.path)) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const grant = new provider.Grant({ accountId: '__PERSON__', clientId: details.params.client_id });
  grant.addOIDCScope('openid');
  const grantId = await grant.save();
  ctx.respond = false;
  await provider.interactionFinished(ctx.req, ctx.res,
    { login: { accountId: '__PERSON__' }, consent: { grantId } }, { mergeWithLastSubmission: false });
});
const cookies = new Map();
async function get(path) {
  const res = await fetch(new URL(path, issuer), { redirect: 'manual',
    headers: { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') } });
  for (const c of res.headers.getSetCookie()) {
    const pair = c.split(';')[0];
    const at = pair.indexOf('=');
    cookies.set(pair.slice(0, at), pair.slice(at + 1));
  }
  return res;
}
async function signIn(client) {
  const asked = new URLSearchParams({ client_id: client, response_type: 'code', scope: 'openid',
    redirect_uri: redirectUri, state: 'bench', nonce: 'bench' });
  let res = await get(`/auth?${asked}`);
  let code;
  for (let hops = 0; hops < 6 && !code; hops++) {
    const location = res.headers.get('location');
    if (!location) throw new Error(`${res.status} without a redirect: ${await res.text()}`);
    if (location.startsWith(redirectUri)) code = new URL(location).searchParams.get('code');
    else res = await get(location);
  }
  if (!code) throw new Error('no code after six redirects');
  const token = await fetch(`${issuer}/token`, { method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${client}:__SECRET__`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri }) });
  const body = await token.json();
  if (!body.access_token || !body.id_token) throw new Error(`the token endpoint answered ${JSON.stringify(body)}`);
  return body.access_token;
}
// A new browser session signed in to every client (each grants openid), so
// that it then signs in to any of them with no page: its Cookie header.
async function signInEverywhere() {
  cookies.clear();
  for (const [, client] of rps) await signIn(client);
  return [...cookies].filter(([, v]) => v).map(([k, v]) => `${k}=${v}`).join('; ');
}
provider.listen(__OIDC__, () => signIn(rps[0][1]).then(
  (token) => writeFileSync('userinfo-token.txt', token),
  (err) => writeFileSync('userinfo-token.txt', `error: ${err.message}`)));
"#;

/// The `Cookie` header of a new browser session at oidc-provider, signed
/// in to every client (see [`OIDC_PROVIDER_SERVER`]).
fn oidc_provider_session() -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-s", "-f", &format!("http://127.0.0.1:{OIDC}/bench-session")])
        .output()
        .map_err(|e| e.to_string())?;
    match String::from_utf8_lossy(&out.stdout).trim() {
        cookie if out.status.success() && cookie.contains('=') => Ok(cookie.to_owned()),
        said => Err(format!(
            "not measured: oidc-provider's sign-in to every client answered {said:?}"
        )),
    }
}

/// The access token oidc-provider's own sign-in got (see
/// [`OIDC_PROVIDER_SERVER`]), once it has written it down.
fn oidc_provider_signed_in(dir: &Path) -> Result<String, String> {
    let file = dir.join("oidc-provider").join("userinfo-token.txt");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match std::fs::read_to_string(&file) {
            Ok(text) if !text.is_empty() => {
                return match text.strip_prefix("error: ") {
                    Some(why) => Err(format!("not measured: oidc-provider's sign-in failed: {why}")),
                    None => Ok(text.trim().to_owned()),
                }
            }
            _ if std::time::Instant::now() > deadline => {
                return Err("not measured: oidc-provider's sign-in wrote no token within 10 s".into())
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}
