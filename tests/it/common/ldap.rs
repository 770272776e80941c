//! A real OpenLDAP (`slapd`) with the directory of `tests/ldap/seed.ldif`,
//! on a free port, stopped on drop; its data survives a restart.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, kill, require_tools, terminate};

pub struct Slapd {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Slapd {
    /// Starts one; `None` (with a message) where slapd is not installed
    /// and this is not CI (which fails without it).
    pub fn start() -> Option<Self> {
        // slapd is in /usr/sbin, which a user's PATH may lack.
        let installed = std::path::Path::new("/usr/sbin/slapd").exists() || require_tools(&["slapd"]);
        if !installed || !require_tools(&["ldapsearch"]) {
            return None;
        }
        let mut server = Self {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ldap/start-slapd");
        let log = std::fs::File::create(self.dir.path().join("slapd.log")).unwrap();
        let mut child = Command::new(script)
            .arg(self.dir.path().join("slapd"))
            .arg(self.port.to_string())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start-slapd runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "slapd exited ({status}): {}",
                    std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "slapd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGTERM, waiting for it).
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }

    /// Starts it again on the same port, with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            kill(child);
        }
    }
}
