//! The bearer row through a route at `auth_level = "mfa"`: a token of a
//! sign-in with two factors, got as a person gets one (the password, an
//! authenticator app set up on the account page, then the password grant
//! with the app's code), so the step-up check is measured as it runs.

use totp_rs::{Algorithm, Secret, TOTP};

use crate::support::browser::{field, CurlBrowser};

/// The config sections of a gateway whose every path is at
/// `auth_level = "mfa"` (the database and secret in `folder`).
pub fn sections(folder: &std::path::Path, upstream_port: u16) -> String {
    let secret = folder.join("secret");
    std::fs::write(&secret, "bench-secret-of-forty-characters-0123456").expect("a secret file");
    format!(
        "[database]\nurl = \"sqlite://{}\"\n[auth]\nsecret_file = \"{}\"\nsecond_factor = \"optional\"\n\
         [[routes]]\npath_prefix = \"/\"\nurl = \"http://127.0.0.1:{upstream_port}\"\nauth_level = \"mfa\"\n",
        folder.join("authgate.db").display(),
        secret.display(),
    )
}

/// The code an authenticator app with `secret` (base32) shows `offset`
/// seconds from now.
fn code(secret: &str, offset: u64) -> Result<String, String> {
    let bytes = Secret::Encoded(secret.to_owned())
        .to_bytes()
        .map_err(|e| format!("{e:?}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    Ok(TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, bytes, None, String::new()).generate(now + offset))
}

/// `username` signs in at `base`, sets up an authenticator app, and gets
/// an access token with the password and its code: a two-factor token.
pub fn two_factor_token(base: &str, username: &str, password: &str) -> Result<String, String> {
    let browser = CurlBrowser::new();
    browser.sign_in(base, username, password)?;
    let account = browser.get(&format!("{base}/management/account"))?;
    let (_, enrolling) = browser.post(&format!("{base}/management/account/authenticator"), &account, &[])?;
    let secret = field(&enrolling, "secret").ok_or("no authenticator secret on the page")?;
    let factor = field(&enrolling, "factor").ok_or("no factor on the page")?;
    let (status, _) = browser.post(
        &format!("{base}/management/account/authenticator/confirm"),
        &enrolling,
        &[("factor", &factor), ("code", &code(&secret, 0)?)],
    )?;
    if status != 200 {
        return Err(format!("the authenticator's first code was refused ({status})"));
    }
    // The next step's code: the first one is used up.
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            &format!("{base}/management/token"),
            "-d",
            "grant_type=password",
        ])
        .args([
            "-d",
            &format!("username={username}"),
            "-d",
            &format!("password={password}"),
        ])
        .args(["-d", &format!("otp={}", code(&secret, 30)?)])
        .output()
        .map_err(|e| e.to_string())?;
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("the password grant with the code answered {body}"))
}
