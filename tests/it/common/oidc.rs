//! The OpenID providers of `tests/oidc/`, run with Node.js: the real one
//! (oidc-provider) and the hostile one, each a child process on a free
//! port, stopped when dropped (their stdin closes).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

/// The `node_modules` that `scripts/test` installs `tests/oidc/` into:
/// `AUTHGATE_NODE_MODULES`, else `target/test-node/node_modules`. `None`,
/// with a message, where it is missing and this is not a run of
/// `scripts/test` or CI (there, it fails).
pub fn node_modules() -> Option<PathBuf> {
    let modules = std::env::var_os("AUTHGATE_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-node/node_modules"));
    if modules.join("oidc-provider").is_dir() && modules.join("jose").is_dir() {
        return Some(modules);
    }
    assert!(
        std::env::var_os("CI").is_none() && std::env::var_os("AUTHGATE_TOOLS_INSTALLED").is_none(),
        "{} has no oidc-provider: scripts/test installs tests/oidc/package.json there",
        modules.display()
    );
    eprintln!(
        "SKIPPED: {} has no oidc-provider (scripts/test installs it; CI fails without it)",
        modules.display()
    );
    None
}

/// A provider process and its issuer URL.
pub struct NodeProvider {
    child: Child,
    _stdin: ChildStdin,
    pub issuer: String,
    dir: tempfile::TempDir,
}

impl NodeProvider {
    /// Starts `tests/oidc/{script}` with `config` (JSON); `None` where the
    /// packages are not installed (see [`node_modules`]).
    pub fn start(script: &str, config: serde_json::Value) -> Option<Self> {
        let modules = node_modules()?;
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let log = std::fs::File::create(dir.path().join("provider.log")).unwrap();
        let mut child = Command::new("node")
            .arg(
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/oidc")
                    .join(script),
            )
            .arg(&config_path)
            .env("AUTHGATE_NODE_MODULES", &modules)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("node starts");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let issuer = match line.trim().strip_prefix("ready ") {
            Some(issuer) => issuer.to_owned(),
            None => panic!(
                "{script} did not start: {line:?}\n{}",
                std::fs::read_to_string(dir.path().join("provider.log")).unwrap_or_default()
            ),
        };
        Some(Self {
            child,
            _stdin: stdin,
            issuer,
            dir,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// What the provider logged (a line per request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("provider.log")).unwrap_or_default()
    }
}

impl Drop for NodeProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
