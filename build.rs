//! The migrations of `migrations/` are embedded in the binary by
//! `sqlx::migrate!`: a change to them must rebuild it.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
