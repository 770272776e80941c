//! Resident memory per live token in `MemoryStore`, measured: the RSS
//! growth from one million sessions, divided by a million.
//!
//! `cargo bench --bench token_memory`

use authgate::store::{Identity, MemoryStore, Session, Token, TokenStore};
use std::sync::Arc;

use futures_util::FutureExt;

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn main() {
    const N: usize = 1_000_000;
    let keys: Vec<_> = (0..N).map(|_| Token::generate().key()).collect();
    // A thousand users, each with many sessions, as the gateway issues them:
    // sessions share their user's strings.
    let users: Vec<Arc<Identity>> = (0..1000)
        .map(|i| Identity::new(&format!("user{i}"), Some(&format!("user{i}@example.com"))))
        .collect();
    let store = MemoryStore::new();
    let before = resident_bytes();
    for (i, key) in keys.iter().enumerate() {
        let session = Session::for_identity(users[i % users.len()].clone(), 3600);
        store.insert(*key, session).now_or_never().unwrap().unwrap();
    }
    let after = resident_bytes();
    let per_token = (after - before) as f64 / N as f64;
    println!(
        "{N} live tokens: {:.0} MiB resident, {per_token:.0} bytes per token",
        (after - before) as f64 / 1048576.0
    );
    assert_eq!(store.len(), N);
}
