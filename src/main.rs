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
  authgate [--config PATH] user|group …    the database's people and groups (below)
  authgate --help | --version

The database's people and groups ([database] in the config):";

/// The whole `--help`.
fn usage() -> String {
    format!(
        "{USAGE}\n{}\n\nLogging: RUST_LOG=authgate=debug for more detail.",
        authgate::gateway::MANAGE_USAGE
    )
}

enum Command {
    Run(PathBuf),
    Manage(PathBuf, Vec<String>),
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
            "user" | "group" | "client" | "audit" | "export" | "import" | "keys" if command.is_none() => {
                let mut rest = vec![arg];
                while let Some(next) = args.next() {
                    match next.as_str() {
                        "-c" | "--config" => config = args.next().ok_or("--config needs a path")?.into(),
                        _ if next.starts_with("--config=") => config = next["--config=".len()..].into(),
                        _ => rest.push(next),
                    }
                }
                return Ok(Command::Manage(config, rest));
            }
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
            eprintln!("authgate: {err}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            println!("{}", usage());
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
        Command::Manage(path, args) => manage(&path, &args),
    }
}

/// `authgate user …` and `authgate group …`.
fn manage(path: &std::path::Path, args: &[String]) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(err) => return refuse(&err),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("authgate: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let read = || read_password().map_err(|e| e.to_owned());
    match runtime.block_on(authgate::gateway::manage(&config, args, &read)) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(err) if err.kind() == authgate::ErrorKind::Config => refuse(&err),
        Err(err) => {
            eprintln!("authgate: {err}");
            ExitCode::FAILURE
        }
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
    let password = match read_password() {
        Ok(password) => password,
        Err(why) => {
            eprintln!("authgate: {why}; nothing printed");
            return ExitCode::FAILURE;
        }
    };
    if let Some(note) = client_secret_note(&password) {
        eprintln!("{note}");
    }
    println!("{}", authgate::hash_password(&password));
    ExitCode::SUCCESS
}

/// A password: typed twice without echo on a terminal, or one line of
/// standard input; never empty.
fn read_password() -> Result<String, &'static str> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ");
        let second = rpassword::prompt_password("Again: ");
        match (first, second) {
            (Ok(a), Ok(b)) if a == b => a,
            (Ok(_), Ok(_)) => return Err("the two passwords differ"),
            _ => return Err("cannot read the password"),
        }
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|_| "cannot read the password")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        return Err("the password is empty");
    }
    Ok(password)
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
