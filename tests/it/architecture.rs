//! The import rules of docs/architecture.md, checked on the sources: no
//! cycle between the crate's modules (folders and files), and no module
//! reaching up into one above it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crate's top-level modules.
const MODULES: [&str; 14] = [
    "auth", "config", "error", "gateway", "identity", "layer", "oauth", "obs", "password", "proxy",
    "runtime", "store", "tls", "web",
];

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

/// A file's code without its tests (which may reach anywhere).
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("#[cfg(test)]\nmod tests").next().unwrap().to_owned()
}

/// The modules (`crate::x::y` as `x/y`, to the depth of a file) a file
/// names.
fn named(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + 7..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
        if parts.first().is_some_and(|m| MODULES.contains(m)) {
            out.insert(parts[0].to_owned());
        }
    }
    out
}

/// The top-level module a file is in (`src/auth/state.rs` is `auth`).
fn module_of(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).unwrap();
    let first = rel
        .components()
        .next()?
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    let name = first.trim_end_matches(".rs").to_owned();
    MODULES.contains(&name.as_str()).then_some(name)
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in sources(&root) {
        let Some(module) = module_of(&root, &path) else {
            continue;
        };
        let mut uses = named(&code_of(&path));
        uses.remove(&module);
        graph.entry(module).or_default().extend(uses);
    }
    graph
}

#[test]
fn the_modules_import_each_other_without_a_cycle() {
    let graph = graph();
    // Peel off modules that import nothing left: what stays is a cycle.
    let mut left = graph.clone();
    loop {
        let leaves: Vec<String> = left
            .iter()
            .filter(|(_, uses)| uses.iter().all(|u| !left.contains_key(u)))
            .map(|(m, _)| m.clone())
            .collect();
        if leaves.is_empty() {
            break;
        }
        for leaf in leaves {
            left.remove(&leaf);
        }
    }
    assert!(left.is_empty(), "modules in a cycle: {left:#?}");
}

/// The layers of docs/architecture.md, lowest first: a module imports
/// only from layers below its own.
const LAYERS: [&[&str]; 9] = [
    &["runtime", "web", "password", "tls", "error"],
    &["store", "config", "db"],
    &["identity", "proxy", "signing", "second_factor"],
    &["obs"],
    &["auth"],
    &["admin"],
    &["oauth"],
    &["layer"],
    &["gateway"],
];

#[test]
fn every_module_imports_only_from_the_layers_below_it() {
    let layer = |module: &str| {
        LAYERS
            .iter()
            .position(|l| l.contains(&module))
            .unwrap_or_else(|| panic!("{module} is in no layer"))
    };
    for (module, imports) in graph() {
        for import in imports {
            assert!(
                layer(&import) < layer(&module),
                "{module} imports {import}, which is not below it (docs/architecture.md)"
            );
        }
    }
}

#[test]
fn no_module_reaches_up_into_one_above_it() {
    let graph = graph();
    let uses = |module: &str| graph.get(module).cloned().unwrap_or_default();
    let may_only = |module: &str, allowed: &[&str]| {
        let extra: Vec<String> = uses(module)
            .into_iter()
            .filter(|u| !allowed.contains(&u.as_str()))
            .collect();
        assert!(extra.is_empty(), "{module} imports {extra:?}, above it");
    };
    // The leaves.
    for leaf in ["error", "password", "tls", "runtime", "web"] {
        may_only(leaf, &[]);
    }
    // Config is a leaf of the domain: it imports nothing of it.
    may_only("config", &["error", "password", "tls", "web"]);
    // The database knows nothing of the rest: SQL in, rows out.
    may_only("db", &[]);
    // The store knows no HTTP flow, no grant, no configuration.
    may_only("store", &["runtime", "error"]);
    // The proxy knows nothing of sign-in or tokens.
    may_only("proxy", &["config", "error", "runtime", "tls", "web"]);
    // Who signs in: besides the store and the config, only leaves (tls for
    // the CA files of providers and directories).
    may_only(
        "identity",
        &["config", "error", "password", "runtime", "store", "tls"],
    );
    // The signing keys know only their configuration.
    may_only("signing", &["config", "error"]);
    // Second factors: what the config requires, the database keeps and a
    // session records; no HTTP.
    may_only("second_factor", &["config", "db", "error", "store"]);
    // The library never needs the binary's gateway.
    for (module, imports) in &graph {
        if module != "gateway" {
            assert!(!imports.contains("gateway"), "{module} imports the gateway");
        }
    }
}
