//! The `authgate` command: run the gateway, check a config, hash a password.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use authgate::gateway::Gateway;
use authgate::Config;

const USAGE: &str = "\
authgate: a sign-in gateway in front of any HTTP app

Usage:
  authgate [--config PATH]                 run the gateway (default ./config.toml)
  authgate check-config [--config PATH]    check the config and exit
  authgate hash-password                   read a password, print its argon2id hash
  authgate --help | --version

Logging: RUST_LOG=authgate=debug for more detail.";

enum Command {
    Run(PathBuf),
    CheckConfig(PathBuf),
    HashPassword,
    Help,
    Version,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut command = None::<&str>;
    let mut config = PathBuf::from("config.toml");
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "-c" | "--config" => {
                config = args.next().ok_or("--config needs a path")?.into();
            }
            _ if arg.starts_with("--config=") => config = arg["--config=".len()..].into(),
            "run" | "check-config" | "hash-password" if command.is_none() => {
                command = Some(match arg.as_str() {
                    "run" => "run",
                    "check-config" => "check-config",
                    _ => "hash-password",
                })
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok(match command {
        None | Some("run") => Command::Run(config),
        Some("check-config") => Command::CheckConfig(config),
        _ => Command::HashPassword,
    })
}

fn main() -> ExitCode {
    let command = match parse_args(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(err) => {
            eprintln!("authgate: {err}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("authgate {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::HashPassword => hash_password(),
        Command::CheckConfig(path) => match Config::load(&path) {
            Ok(_) => {
                println!("{}: ok", path.display());
                ExitCode::SUCCESS
            }
            Err(err) => refuse(&err),
        },
        Command::Run(path) => run(&path),
    }
}

fn refuse(err: &authgate::Error) -> ExitCode {
    eprintln!("authgate: {err}");
    ExitCode::from(2)
}

fn run(path: &std::path::Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(err) => return refuse(&err),
    };
    authgate::gateway::init_logging(config.log_format());
    // A single-threaded runtime: with `server.workers` above one, the
    // gateway starts the other workers' threads itself, each with a
    // runtime of its own.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("authgate: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let gateway = match Gateway::bind(config).await {
            Ok(gateway) => gateway,
            Err(err) => return refuse(&err),
        };
        let addr = gateway.local_addr();
        tracing::info!("authgate listening on http://{addr} (config {})", path.display());
        match gateway.serve(authgate::gateway::shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => refuse(&err),
        }
    })
}

/// Reads a password without echo on a terminal (asking twice), or one line
/// from standard input, and prints its argon2id PHC string.
fn hash_password() -> ExitCode {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ");
        let second = rpassword::prompt_password("Again: ");
        match (first, second) {
            (Ok(a), Ok(b)) if a == b => a,
            (Ok(_), Ok(_)) => {
                eprintln!("authgate: the two passwords differ; nothing printed");
                return ExitCode::FAILURE;
            }
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("authgate: cannot read the password: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        let mut line = String::new();
        if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
            eprintln!("authgate: cannot read the password: {e}");
            return ExitCode::FAILURE;
        }
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        eprintln!("authgate: the password is empty; nothing printed");
        return ExitCode::FAILURE;
    }
    if let Some(note) = client_secret_note(&password) {
        eprintln!("{note}");
    }
    println!("{}", authgate::hash_password(&password));
    ExitCode::SUCCESS
}

/// A word on the characters some OAuth clients send changed in HTTP
/// Basic, for a client secret that holds them.
fn client_secret_note(secret: &str) -> Option<String> {
    let mangled: Vec<String> = ['+', '%', ':']
        .into_iter()
        .filter(|c| secret.contains(*c))
        .map(|c| format!("{c:?}"))
        .chain((!secret.is_ascii()).then(|| "non-ASCII characters".to_owned()))
        .collect();
    (!mangled.is_empty()).then(|| {
        format!(
            "authgate: note: as a client secret, this holds {}. Some OAuth clients put a secret in HTTP Basic \
             without form-encoding it (requests-oauthlib, authlib); authgate accepts it either way, but other \
             servers may not. For a password, this does not matter.",
            mangled.join(", ")
        )
    })
}
