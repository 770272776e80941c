//! Snapshots of a [`MemoryStore`] on disk (`[tokens] persist_path`), so a
//! restart loses no session.
//!
//! A snapshot is JSON lines: a header, one line per session (the token's
//! hash and the session, never a token), and a closing line with the
//! count. It is written beside the target, fsynced, and renamed over it, so
//! a crash leaves the old snapshot or the new one, never a mix. A file that
//! is torn or corrupt anyway is set aside and reported; start-up goes on.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{unix_now, MemoryStore, Session, SharedParts, TokenKey};

const FORMAT: &str = "authgate-sessions";
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    session: Session,
}

#[derive(Serialize, Deserialize)]
struct End {
    end: usize,
}

/// Writes every live session of `store` to `path`, atomically. Blocking.
pub(crate) fn save(store: &MemoryStore, path: &Path) -> io::Result<usize> {
    let entries = store.live_entries();
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let result = (|| {
        // Readable by this user only: sessions carry what outside
        // providers issued (their refresh tokens among it).
        let file = {
            let mut options = fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options.open(&tmp)?
        };
        let mut out = BufWriter::new(file);
        serde_json::to_writer(
            &mut out,
            &Header {
                format: FORMAT.into(),
                version: VERSION,
            },
        )?;
        out.write_all(b"\n")?;
        for (key, session) in &entries {
            serde_json::to_writer(
                &mut out,
                &Entry {
                    key: key.to_hex(),
                    session: session.clone(),
                },
            )?;
            out.write_all(b"\n")?;
        }
        serde_json::to_writer(&mut out, &End { end: entries.len() })?;
        out.write_all(b"\n")?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(entries.len())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// What loading a snapshot found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Loaded {
    /// No snapshot yet.
    Nothing,
    /// This many sessions restored (expired ones are dropped).
    Restored(usize),
    /// The file was unreadable; it was moved to `set_aside`.
    Corrupt { reason: String, set_aside: PathBuf },
}

/// Restores the sessions in `path` into `store`. Blocking.
pub(crate) fn load(store: &MemoryStore, path: &Path) -> Loaded {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Loaded::Nothing,
        Err(e) => return set_aside(path, format!("cannot open it: {e}")),
    };
    let mut parsed = Vec::new();
    match parse(BufReader::new(file), &mut parsed) {
        Ok(()) => {
            let restored = parsed
                .into_iter()
                .map(|(key, session)| store.restore(key, session))
                .filter(|&kept| kept)
                .count();
            Loaded::Restored(restored)
        }
        Err(reason) => set_aside(path, reason),
    }
}

fn parse(reader: impl BufRead, out: &mut Vec<(TokenKey, Session)>) -> Result<(), String> {
    let mut lines = reader.lines().enumerate();
    let mut shared = SharedParts::default();
    let header = lines.next().ok_or("it is empty")?.1.map_err(|e| e.to_string())?;
    let header: Header = serde_json::from_str(&header).map_err(|e| format!("line 1: {e}"))?;
    if header.format != FORMAT || header.version != VERSION {
        return Err(format!(
            "line 1: not an authgate sessions file, version {VERSION}"
        ));
    }
    for (index, line) in lines {
        let line = line.map_err(|e| e.to_string())?;
        if let Ok(end) = serde_json::from_str::<End>(&line) {
            if end.end != out.len() {
                return Err(format!(
                    "it ends after {} sessions but says {}",
                    out.len(),
                    end.end
                ));
            }
            return Ok(());
        }
        let entry: Entry = serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", index + 1))?;
        let key = TokenKey::from_hex(&entry.key).ok_or_else(|| format!("line {}: bad key", index + 1))?;
        out.push((key, shared.share(entry.session)));
    }
    Err("it is torn: the closing line is missing".into())
}

fn set_aside(path: &Path, reason: String) -> Loaded {
    let aside = path.with_extension(format!("corrupt-{}", unix_now()));
    let set_aside = match fs::rename(path, &aside) {
        Ok(()) => aside,
        Err(_) => path.to_path_buf(),
    };
    Loaded::Corrupt { reason, set_aside }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Token, TokenStore};
    use futures_util::FutureExt;
    use std::sync::Arc;

    #[test]
    fn a_snapshot_round_trips_and_a_torn_one_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.jsonl");
        assert_eq!(load(&MemoryStore::new(), &path), Loaded::Nothing);

        let store = MemoryStore::new();
        let token = Token::generate();
        store
            .insert(token.key(), Session::new("a", Some("a@x"), 60))
            .now_or_never()
            .unwrap()
            .unwrap();
        store
            .insert(Token::generate().key(), Session::new("b", None, 60))
            .now_or_never()
            .unwrap()
            .unwrap();
        assert_eq!(save(&store, &path).unwrap(), 2);
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(token.as_str()),
            "a snapshot holds hashes, never tokens"
        );

        let restored = MemoryStore::new();
        assert_eq!(load(&restored, &path), Loaded::Restored(2));
        let session = restored
            .get(&token.key())
            .now_or_never()
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(session.email(), Some("a@x"));

        fs::write(&path, &text[..text.len() - 12]).unwrap();
        match load(&MemoryStore::new(), &path) {
            Loaded::Corrupt { set_aside, .. } => assert!(set_aside.exists() && !path.exists()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn restored_sessions_share_one_identity_per_user_and_one_grant_per_client() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.jsonl");
        let store = MemoryStore::new();
        let grant = |scope| crate::store::ClientGrant::new("app", Some(scope));
        // Each session with its own allocation of the same user and grant.
        let sessions = [
            ("carol", grant("read")),
            ("carol", grant("read")),
            ("carol", grant("write")),
            ("dave", grant("read")),
        ];
        let mut keys = Vec::new();
        for (user, grant) in sessions {
            let key = Token::generate().key();
            let session = Session::new(user, Some("shared@x"), 60).with_grant(grant);
            store.insert(key, session).now_or_never().unwrap().unwrap();
            keys.push(key);
        }
        save(&store, &path).unwrap();

        let restored = MemoryStore::new();
        assert_eq!(load(&restored, &path), Loaded::Restored(4));
        let back: Vec<Session> = keys
            .iter()
            .map(|key| restored.get(key).now_or_never().unwrap().unwrap().unwrap())
            .collect();
        let same_identity = |a: &Session, b: &Session| Arc::ptr_eq(&a.identity, &b.identity);
        let same_grant =
            |a: &Session, b: &Session| Arc::ptr_eq(a.grant.as_ref().unwrap(), b.grant.as_ref().unwrap());
        assert!(same_identity(&back[0], &back[1]) && same_identity(&back[0], &back[2]));
        assert!(!same_identity(&back[0], &back[3]), "dave is not carol");
        assert!(same_grant(&back[0], &back[1]) && same_grant(&back[0], &back[3]));
        assert!(!same_grant(&back[0], &back[2]), "another scope is another grant");
        assert_eq!(back[2].identity.username(), "carol");
    }
}
