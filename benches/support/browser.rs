//! A browser made of curl and a cookie jar, for the steps a benchmark
//! takes before it measures (signing in, setting up a second factor).

use std::process::Command;

/// curl with one cookie jar across its requests.
pub struct CurlBrowser {
    jar: tempfile::NamedTempFile,
}

impl CurlBrowser {
    pub fn new() -> Self {
        Self {
            jar: tempfile::NamedTempFile::new().expect("a cookie jar"),
        }
    }

    fn curl(&self) -> Command {
        let mut curl = Command::new("curl");
        curl.args(["-s", "-H", "Accept: text/html", "-b"])
            .arg(self.jar.path())
            .arg("-c")
            .arg(self.jar.path());
        curl
    }

    /// `GET url`: its body.
    pub fn get(&self, url: &str) -> Result<String, String> {
        let out = self.curl().arg(url).output().map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `POST url` of the form `pairs` and the CSRF field of `page`: the
    /// status, the body.
    pub fn post(&self, url: &str, page: &str, pairs: &[(&str, &str)]) -> Result<(u16, String), String> {
        let csrf = field(page, "csrf").ok_or("no csrf field on the page")?;
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("csrf", &csrf)
            .extend_pairs(pairs)
            .finish();
        let out = self
            .curl()
            .args(["-w", "\n%{http_code}", "-d", &form, url])
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        Ok((status.parse().unwrap_or(0), body.to_owned()))
    }

    /// Signs `username` in at authgate (`base`, e.g. `http://127.0.0.1:9110`)
    /// through its sign-in page, as a browser does.
    pub fn sign_in(&self, base: &str, username: &str, password: &str) -> Result<(), String> {
        let page = self.get(&format!("{base}/management/authorize?rd=/"))?;
        self.post(
            &format!("{base}/management/authorize"),
            &page,
            &[("rd", "/"), ("username", username), ("password", password)],
        )?;
        self.cookie("authgate_session")
            .map(|_| ())
            .ok_or_else(|| "the sign-in set no session cookie".to_owned())
    }

    /// The value of the cookie `name`, if the jar has it.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let jar = std::fs::read_to_string(self.jar.path()).ok()?;
        jar.lines()
            .map(|line| line.split('\t').collect::<Vec<_>>())
            .find(|fields| fields.len() == 7 && fields[5] == name)
            .map(|fields| fields[6].to_owned())
    }
}

/// The value of a page's hidden field `name`, or the text of the element
/// with id `name`.
pub fn field(page: &str, name: &str) -> Option<String> {
    let value = page
        .split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .or_else(|| page.split(&format!("id=\"{name}\">")).nth(1))?;
    Some(value.split(['"', '<']).next()?.to_owned())
}
