//! A real PostgreSQL: a cluster of its own in a temporary folder
//! (`initdb`), on a free port, stopped on drop; restartable with its data.
//! PostgreSQL refuses to run as root: as root, it runs as the `postgres`
//! user Debian's package makes.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, kill};

pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    child: Option<Child>,
}

/// Where Debian keeps PostgreSQL's server programs (not on the PATH).
fn server_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl Postgres {
    /// Starts one; `None` (with a message) where PostgreSQL is not
    /// installed and this is not CI (which fails without it).
    pub fn start() -> Option<Self> {
        let Some(bin) = server_bin() else {
            assert!(
                std::env::var_os("CI").is_none() && std::env::var_os("AUTHGATE_TOOLS_INSTALLED").is_none(),
                "PostgreSQL is not installed: scripts/test installs it"
            );
            eprintln!(
                "SKIPPED: PostgreSQL is not installed here (scripts/test installs it; CI fails without it)"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let data = dir.path().join("data");
        let out = Self::as_owner(&bin.join("initdb"))
            .args(["-U", "authgate", "--auth=trust", "-E", "UTF8", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut server = Self {
            port: free_port(),
            dir,
            bin,
            child: None,
        };
        server.spawn();
        Some(server)
    }

    fn as_owner(program: &std::path::Path) -> Command {
        if is_root() {
            let mut command = Command::new("setpriv");
            command
                .args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
                .arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("postgres.log")).unwrap();
        let mut child = Self::as_owner(&self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-k",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "postgres exited ({status}): {}",
                    std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
                );
            }
            // Accepting connections: pg_isready says so.
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "postgres did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("postgres://authgate@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (SIGINT: a fast shutdown, which ends the
    /// sessions of connected clients; SIGTERM would wait for them),
    /// waiting for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            kill(child);
        }
    }
}
