//! `authgate user …`, `group …`, `client …`, `export` and `import`: the
//! database's people, groups and OAuth clients from the command line, for
//! scripts and backups.

use std::fmt::Write as _;

use crate::config::Config;
use crate::db::{new_id, now_ms, AuditEvent, Backup, Database, DbError, NewUser};
use crate::error::{Error, ErrorKind};
use crate::identity::{client_config, new_client_secret, ClientRequest};

/// The commands, for `--help`.
pub const MANAGE_USAGE: &str = "\
  authgate user add NAME [--email E] [--name N] [--temporary]   a database user (password read as by hash-password)
  authgate user list [SEARCH]                                   users by name (and email), with their groups
  authgate user disable NAME | enable NAME | delete NAME        disabled or deleted: their sessions end within a second
  authgate user set-password NAME [--temporary]                 --temporary: must be changed at the next sign-in
  authgate user factors NAME                                    their second factors (authenticator app, security keys)
  authgate user remove-factors NAME                             all of them and their recovery codes (a lost phone:
                                                                the password alone signs in, or enrols where required)
  authgate group add NAME [--description D]
  authgate group list
  authgate group add-member GROUP USER | remove-member GROUP USER   USER may be anyone's name (corp:alice too)
  authgate client add [ID] [--public] [--redirect-uri U]... [--grant G]... [--scope S]...
                      [--post-logout-redirect-uri U]... [--backchannel-logout-uri U] [--id-token-alg RS256|ES256|EdDSA]
                      [--jwt-access-tokens] [--resource URI]... [--pairwise]
                                                                an OAuth client; prints its secret, this once
  authgate client list                                          clients by id (config.toml's too, marked)
  authgate client rotate-secret ID | delete ID                  a new secret (printed once) | gone, its tokens end
  authgate export [--output FILE]                               people, groups, members, clients and second factors as JSON
                                                                (hashes, no secret; factors sealed with auth.secret_file)
  authgate import FILE | -                                      all of an export, or nothing if any of it is taken
  authgate keys rotate                                          new [signing] keys sign from now on; the old stay published
  authgate audit [--user NAME] [--event PREFIX] [--after T] [--before T] [--limit N]
                                                                the audit log, newest first, as JSON lines";

/// Runs a `user` or `group` command on `config`'s database; answers what
/// to print, or why it failed. `read_password` asks for a new password.
pub async fn manage(
    config: &Config,
    args: &[String],
    read_password: &(dyn Fn() -> Result<String, String> + Sync),
) -> Result<String, Error> {
    if args.iter().map(String::as_str).eq(["keys", "rotate"]) {
        return rotate_keys(config);
    }
    let url = config.database.as_deref().ok_or_else(|| {
        usage(format!(
            "{} has no [database]: set url = \"sqlite://authgate.db\" (or postgres://…) there first",
            config.source().display()
        ))
    })?;
    let db = Database::open(url).map_err(failed)?;
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let flag = |name: &str| {
        words
            .iter()
            .position(|w| *w == name)
            .and_then(|at| words.get(at + 1))
            .copied()
    };
    let has = |name: &str| words.contains(&name);
    let every = |name: &str| -> Vec<String> {
        words
            .windows(2)
            .filter(|pair| pair[0] == name)
            .map(|pair| pair[1].to_owned())
            .collect()
    };
    let of_config = |id: &str| config.clients.iter().any(|c| c.client_id == id);
    let positional: Vec<&str> = positional(&words);
    let mut out = String::new();
    match positional.as_slice() {
        ["user", "add", name] => {
            check_name(name)?;
            if config.users.iter().any(|u| u.username == *name) {
                return Err(usage(format!(
                    "a user named {name:?} is in {}",
                    config.source().display()
                )));
            }
            let password = read_password().map_err(usage)?;
            let hash = crate::password::hash_password(&password);
            let email = flag("--email");
            if let Some(email) = email {
                if !email.contains('@') || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(usage(format!("--email {email:?} is not an email address")));
                }
            }
            db.add_user(&NewUser {
                username: name,
                email,
                name: flag("--name"),
                password_hash: Some(&hash),
                must_change_password: has("--temporary"),
            })
            .await
            .map_err(failed)?;
            record(&db, "admin.user_added", name).await?;
            let _ = writeln!(out, "added user {name}");
        }
        ["user", "list"] | ["user", "list", _] => {
            let search = positional.get(2).copied();
            for user in db.users(search, 0, 10_000).await.map_err(failed)? {
                let groups = db.groups_of(&user.username).await.map_err(failed)?;
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    user.username,
                    user.email.as_deref().unwrap_or("-"),
                    if user.disabled { "disabled" } else { "enabled" },
                    if groups.is_empty() {
                        "-".to_owned()
                    } else {
                        groups.join(",")
                    }
                );
            }
        }
        ["user", action @ ("disable" | "enable"), name] => {
            if !db
                .set_disabled(name, *action == "disable")
                .await
                .map_err(failed)?
            {
                return Err(failed(DbError::Conflict(format!(
                    "there is no database user named {name:?}"
                ))));
            }
            record(&db, &format!("admin.user_{action}d"), name).await?;
            let _ = writeln!(out, "{action}d user {name}");
        }
        ["user", "factors", name] => {
            for factor in db.factors(name).await.map_err(failed)? {
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    factor.id,
                    factor.kind,
                    if factor.confirmed {
                        "in use"
                    } else {
                        "being set up"
                    },
                    factor.name
                );
            }
        }
        ["user", "remove-factors", name] => {
            let mut removed = 0;
            for factor in db.factors(name).await.map_err(failed)? {
                if db.remove_factor(name, &factor.id).await.map_err(failed)? {
                    removed += 1;
                }
            }
            record(&db, "admin.second_factor_removed", name).await?;
            let _ = writeln!(out, "removed {removed} second factor(s) of {name}");
        }
        ["user", "delete", name] => {
            if !db.delete_user(name).await.map_err(failed)? {
                return Err(failed(DbError::Conflict(format!(
                    "there is no database user named {name:?}"
                ))));
            }
            record(&db, "admin.user_deleted", name).await?;
            let _ = writeln!(out, "deleted user {name}");
        }
        ["user", "set-password", name] => {
            let password = read_password().map_err(usage)?;
            let hash = crate::password::hash_password(&password);
            if !db
                .set_password(name, &hash, has("--temporary"), true)
                .await
                .map_err(failed)?
            {
                return Err(failed(DbError::Conflict(format!(
                    "there is no database user named {name:?}"
                ))));
            }
            record(&db, "admin.password_set", name).await?;
            let _ = writeln!(out, "set the password of {name}");
        }
        ["group", "add", name] => {
            check_name(name)?;
            if name.contains(',') {
                return Err(usage(format!("group {name:?}: a group name holds no comma")));
            }
            db.add_group(name, flag("--description")).await.map_err(failed)?;
            record(&db, "admin.group_added", name).await?;
            let _ = writeln!(out, "added group {name}");
        }
        ["group", "list"] => {
            for (name, members) in db.groups().await.map_err(failed)? {
                let _ = writeln!(out, "{name}\t{members}");
            }
        }
        ["group", "add-member", group, user] => {
            db.add_member(group, user).await.map_err(failed)?;
            record(&db, &format!("admin.member_added:{group}"), user).await?;
            let _ = writeln!(out, "added {user} to {group}");
        }
        ["group", "remove-member", group, user] => {
            if !db.remove_member(group, user).await.map_err(failed)? {
                return Err(failed(DbError::Conflict(format!("{user:?} is not in {group:?}"))));
            }
            record(&db, &format!("admin.member_removed:{group}"), user).await?;
            let _ = writeln!(out, "removed {user} from {group}");
        }
        ["client", "add"] | ["client", "add", _] => {
            let client_id = positional.get(2).map(|id| (*id).to_owned());
            if let Some(id) = client_id.as_deref().filter(|id| of_config(id)) {
                return Err(usage(format!(
                    "client {id:?} is in {}: change it there",
                    config.source().display()
                )));
            }
            let grants = every("--grant");
            let scopes = every("--scope");
            let (row, secret) = ClientRequest {
                client_id,
                confidential: !has("--public"),
                redirect_uris: every("--redirect-uri"),
                grants: (!grants.is_empty()).then_some(grants),
                scopes: (!scopes.is_empty()).then_some(scopes),
                cors_origins: Vec::new(),
                post_logout_redirect_uris: every("--post-logout-redirect-uri"),
                backchannel_logout_uri: flag("--backchannel-logout-uri").map(str::to_owned),
                id_token_alg: flag("--id-token-alg").map(str::to_owned),
                access_token_format: has("--jwt-access-tokens").then(|| "jwt".to_owned()),
                resources: every("--resource"),
                subject_type: has("--pairwise").then(|| "pairwise".to_owned()),
            }
            .into_row()
            .map_err(usage)?;
            db.add_client(&row).await.map_err(failed)?;
            record(&db, "admin.client_added", &row.client_id).await?;
            let _ = writeln!(out, "client_id {}", row.client_id);
            if let Some(secret) = secret {
                let _ = writeln!(out, "client_secret {secret}");
            }
        }
        ["client", "list"] => {
            for client in &config.clients {
                let grants: Vec<&str> = client.grants.iter().map(|g| g.as_str()).collect();
                let _ = writeln!(
                    out,
                    "{}\tconfig\t{}\t{}",
                    client.client_id,
                    grants.join(","),
                    client.redirect_uris.join(" ")
                );
            }
            for client in db.clients().await.map_err(failed)? {
                if !of_config(&client.client_id) {
                    let _ = writeln!(
                        out,
                        "{}\tdatabase\t{}\t{}",
                        client.client_id,
                        client.grants.join(","),
                        client.redirect_uris.join(" ")
                    );
                }
            }
        }
        ["client", "rotate-secret", id] => {
            let public = db
                .client(id)
                .await
                .map_err(failed)?
                .map(|c| c.secret_hash.is_none());
            match public {
                None => {
                    return Err(failed(DbError::Conflict(format!(
                        "there is no database client {id:?}"
                    ))))
                }
                Some(true) => {
                    return Err(usage(format!(
                        "client {id:?} is public: it has no secret to rotate"
                    )))
                }
                Some(false) => {}
            }
            let secret = new_client_secret();
            db.set_client_secret(id, &crate::password::hash_password(&secret))
                .await
                .map_err(failed)?;
            record(&db, "admin.client_secret_rotated", id).await?;
            let _ = writeln!(out, "client_id {id}\nclient_secret {secret}");
        }
        ["client", "delete", id] => {
            if !db.delete_client(id).await.map_err(failed)? {
                return Err(failed(DbError::Conflict(format!(
                    "there is no database client {id:?}"
                ))));
            }
            record(&db, "admin.client_deleted", id).await?;
            let _ = writeln!(out, "deleted client {id}");
        }
        ["export"] => {
            let backup = db.export().await.map_err(failed)?;
            let text = serde_json::to_string_pretty(&backup).expect("an export is JSON") + "\n";
            match flag("--output") {
                Some(path) => {
                    write_private(std::path::Path::new(path), &text)?;
                    let _ = writeln!(
                        out,
                        "exported {} users, {} groups, {} memberships, {} clients and {} second factors to {path}",
                        backup.users.len(),
                        backup.groups.len(),
                        backup.members.len(),
                        backup.clients.len(),
                        backup.second_factors.len()
                    );
                }
                None => out.push_str(&text),
            }
        }
        ["import", source] => {
            let text = match *source {
                "-" => std::io::read_to_string(std::io::stdin()),
                path => std::fs::read_to_string(path),
            }
            .map_err(|e| usage(format!("cannot read {source}: {e}")))?;
            let backup: Backup = serde_json::from_str(&text)
                .map_err(|e| usage(format!("{source} is not an authgate export: {e}")))?;
            check_import(config, &backup)?;
            let done = db.import(&backup).await.map_err(failed)?;
            record(
                &db,
                "admin.imported",
                &format!("{} users, {} clients", done.users, done.clients),
            )
            .await?;
            let _ = writeln!(
                out,
                "imported {} users, {} groups, {} memberships, {} clients and {} second factors",
                done.users, done.groups, done.members, done.clients, done.second_factors
            );
        }
        ["audit"] => {
            let limit = flag("--limit")
                .map_or(Ok(1000), str::parse::<i64>)
                .map_err(|_| usage("--limit takes a number"))?;
            let time = |name: &str| match flag(name) {
                None => Ok(None),
                Some(text) => crate::db::time_of(text).map(Some).ok_or_else(|| {
                    usage(format!(
                        "{name} {text:?}: a time is 2026-12-01T09:00:00Z, 2026-12-01, or milliseconds"
                    ))
                }),
            };
            let filter = crate::db::AuditFilter {
                subject: flag("--user"),
                event: flag("--event"),
                after: time("--after")?,
                before: time("--before")?,
                limit,
            };
            for event in db.audit(&filter).await.map_err(failed)? {
                let _ = writeln!(out, "{}", serde_json::to_string(&event).unwrap_or_default());
            }
        }
        _ => {
            return Err(usage(format!(
                "unknown command: authgate {}\n\n{MANAGE_USAGE}",
                words.join(" ")
            )))
        }
    }
    Ok(out)
}

/// `authgate keys rotate`: a new key of every `[signing]` algorithm signs
/// from now on (every gateway sharing the folder reads it within a
/// minute); the old ones stay published while their tokens may live.
fn rotate_keys(config: &Config) -> Result<String, Error> {
    let Some(dir) = &config.signing.keys_dir else {
        return Err(usage(format!(
            "{} has no [signing] keys_dir: keys kept in memory are new at every start",
            config.source().display()
        )));
    };
    let ring = crate::signing::KeyRing::open(&config.signing).map_err(|e| usage(e.to_string()))?;
    ring.rotate().map_err(|e| usage(e.to_string()))?;
    let kids: Vec<String> = config
        .signing
        .algorithms
        .iter()
        .filter_map(|alg| ring.current(*alg).ok())
        .map(|key| format!("{} {}", key.alg.as_str(), key.kid))
        .collect();
    Ok(format!(
        "new signing keys in {}:\n{}\n",
        dir.display(),
        kids.join("\n")
    ))
}

/// Refuses an export that breaks a rule the database's own writes keep:
/// names, hashes, the rules of `[[clients]]`, names config.toml has.
fn check_import(config: &Config, backup: &Backup) -> Result<(), Error> {
    for user in &backup.users {
        check_name(&user.username)?;
        if config.users.iter().any(|u| u.username == user.username) {
            return Err(usage(format!(
                "user {:?} is in {}: nothing was imported",
                user.username,
                config.source().display()
            )));
        }
        if let Some(problem) = user
            .password_hash
            .as_deref()
            .and_then(|h| crate::password::check_hash(h).err())
        {
            return Err(usage(format!(
                "user {:?}: the password hash {problem}: nothing was imported",
                user.username
            )));
        }
    }
    for client in &backup.clients {
        if config.clients.iter().any(|c| c.client_id == client.client_id) {
            return Err(usage(format!(
                "client {:?} is in {}: nothing was imported",
                client.client_id,
                config.source().display()
            )));
        }
        let row = client;
        if let Some(problem) = row
            .secret_hash
            .as_deref()
            .and_then(|h| crate::password::check_hash(h).err())
        {
            return Err(usage(format!(
                "client {:?}: the secret hash {problem}: nothing was imported",
                client.client_id
            )));
        }
        client_config(row).map_err(|problem| usage(format!("{problem}: nothing was imported")))?;
    }
    // An authenticator whose secret this gateway cannot open would lock
    // its person out.
    for factor in backup
        .second_factors
        .iter()
        .filter(|f| f.kind == crate::second_factor::TOTP)
    {
        let opens = config.auth.secret.as_ref().is_some_and(|secret| {
            crate::second_factor::authenticator(config, secret.expose(), factor).is_some()
        });
        if !opens {
            return Err(usage(format!(
                "the authenticator of {:?} was sealed with another auth.secret_file: give this gateway the same file (nothing was imported)",
                factor.username
            )));
        }
    }
    Ok(())
}

/// Writes `text` to a new file only its owner may read (it holds hashes).
fn write_private(path: &std::path::Path, text: &str) -> Result<(), Error> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| {
        Error::io(
            format_args!("cannot create {} (it must not exist yet)", path.display()),
            e,
        )
    })?;
    file.write_all(text.as_bytes())
        .map_err(|e| Error::io(format_args!("cannot write {}", path.display()), e))
}

/// The words that are neither a `--flag` nor a flag's value.
fn positional<'a>(words: &[&'a str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut skip = false;
    for word in words {
        if skip {
            skip = false;
        } else if word.starts_with("--") {
            skip = matches!(
                *word,
                "--email"
                    | "--name"
                    | "--description"
                    | "--user"
                    | "--event"
                    | "--limit"
                    | "--after"
                    | "--output"
                    | "--before"
                    | "--redirect-uri"
                    | "--grant"
                    | "--scope"
                    | "--post-logout-redirect-uri"
                    | "--backchannel-logout-uri"
                    | "--id-token-alg"
                    | "--resource"
            );
        } else {
            out.push(*word);
        }
    }
    out
}

/// Records an admin action of the command line in the audit log.
async fn record(db: &Database, event: &str, subject: &str) -> Result<(), Error> {
    let actor = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    );
    let entry = AuditEvent {
        id: new_id(),
        at: now_ms(),
        event: event.to_owned(),
        actor: Some(actor),
        subject: Some(subject.to_owned()),
        address: None,
        provider: None,
        client_id: None,
        detail: None,
    };
    db.write_audit(&[entry]).await.map_err(failed)
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) || name.contains(':') {
        return Err(usage(format!(
            "{name:?}: a name is 1 to 256 characters, with no control characters and no : (which names someone of a provider)"
        )));
    }
    Ok(())
}

fn usage(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Config, message)
}

fn failed(err: DbError) -> Error {
    Error::new(ErrorKind::Io, err.to_string())
}
