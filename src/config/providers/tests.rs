//! The checks of `[[providers]]`, refused with their lines.

use crate::config::{Config, Policy, ProviderKind};
use crate::error::Error;

const UP: &str = "[upstream]\nbuiltin = \"whoami\"\n";
const CORP: &str = "[[providers]]\nid = \"corp\"\nkind = \"oidc\"\nissuer = \"https://idp.example\"\nclient_id = \"authgate\"\nclient_secret = \"s\"\n";

fn refused(toml: &str) -> Error {
    Config::from_toml_str(toml).expect_err("config should have been refused")
}

fn line(err: &Error) -> usize {
    err.location().expect("a location").line
}

#[test]
fn kinds_ids_and_keys_of_other_kinds_are_refused_with_their_lines() {
    let err = refused(&format!("{UP}[[providers]]\nid = \"x\"\nkind = \"saml\"\n"));
    assert_eq!(line(&err), 5, "{err}");
    assert!(
        err.message().contains("\"oidc\", \"github\" or \"ldap\""),
        "{err}"
    );
    let err = refused(&format!("{UP}{CORP}{CORP}"));
    assert_eq!(line(&err), 10, "the second id: {err}");
    assert!(err.message().contains("used twice"), "{err}");
    let err = refused(&format!(
        "{UP}[[providers]]\nid = \"Corp SSO\"\nkind = \"oidc\"\n"
    ));
    assert_eq!(line(&err), 4, "{err}");
    let err = refused(&format!("{UP}{CORP}bind_dn = \"cn=x\"\n"));
    assert_eq!(line(&err), 9, "{err}");
    assert!(
        err.message().contains("bind_dn is a setting of ldap providers"),
        "{err}"
    );
    let err = refused(&format!("{UP}{CORP}frobnicate = 1\n"));
    assert!(err.message().contains("unknown field `frobnicate`"), "{err}");
    let err = refused(&format!(
        "{UP}[[providers]]\nid = \"corp\"\nkind = \"oidc\"\nclient_id = \"a\"\n"
    ));
    assert!(err.message().contains("needs issuer"), "{err}");
}

#[test]
fn an_issuer_off_loopback_must_be_https() {
    let err = refused(&format!(
        "{UP}{}",
        CORP.replace("https://idp.example", "http://idp.example")
    ));
    assert_eq!(line(&err), 6, "{err}");
    assert!(err.message().contains("must use https:// off loopback"), "{err}");
    for ok in [
        "http://127.0.0.1:9000",
        "http://localhost:9000/realms/x",
        "https://idp.example/tenant",
    ] {
        Config::from_toml_str(&format!("{UP}{}", CORP.replace("https://idp.example", ok)))
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let err = refused(&format!(
        "{UP}{}",
        CORP.replace("\"https://idp.example\"", "\"https://idp.example?x=1\"")
    ));
    assert!(err.message().contains("no query"), "{err}");
    let err = refused(&format!("{UP}{CORP}scopes = [\"email\"]\n"));
    assert!(err.message().contains("must include \"openid\""), "{err}");
}

#[test]
fn secret_files_are_read_and_an_unreadable_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("corp.secret"), "from-a-file\nignored\n").unwrap();
    let toml = format!(
        "{UP}[[providers]]\nid = \"corp\"\nkind = \"oidc\"\nissuer = \"https://idp.example\"\nclient_id = \"a\"\nclient_secret_file = \"corp.secret\"\n"
    );
    let path = dir.path().join("config.toml");
    std::fs::write(&path, &toml).unwrap();
    let config = Config::load(&path).unwrap();
    let ProviderKind::Oidc(oidc) = &config.providers[0].kind else {
        panic!()
    };
    assert_eq!(oidc.client_secret.as_ref().unwrap().expose(), "from-a-file");
    std::fs::write(&path, toml.replace("corp.secret", "missing.secret")).unwrap();
    let err = Config::load(&path).unwrap_err();
    assert_eq!(line(&err), 8, "{err}");
    assert!(err.message().contains("missing.secret"), "{err}");
    let err = refused(&format!("{UP}{CORP}client_secret_file = \"x\"\n"));
    assert!(err.message().contains("not both"), "{err}");
    std::fs::write(dir.path().join("short.secret"), "too short\n").unwrap();
    std::fs::write(&path, format!("{UP}[auth]\nsecret_file = \"short.secret\"\n")).unwrap();
    let err = Config::load(&path).unwrap_err();
    assert_eq!(line(&err), 4, "{err}");
    assert!(err.message().contains("at least 32 characters"), "{err}");
    std::fs::write(
        dir.path().join("good.secret"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    std::fs::write(&path, format!("{UP}[auth]\nsecret_file = \"good.secret\"\n")).unwrap();
    assert!(Config::load(&path).unwrap().auth.secret.is_some());
}

#[test]
fn ldap_and_github_settings_are_checked() {
    let ldap = "[[providers]]\nid = \"ldap\"\nkind = \"ldap\"\nurl = \"ldap://127.0.0.1:389\"\nbind_dn = \"cn=a\"\nbind_password = \"p\"\nuser_base_dn = \"ou=people\"\n";
    let config = Config::from_toml_str(&format!("{UP}{ldap}")).unwrap();
    let ProviderKind::Ldap(found) = &config.providers[0].kind else {
        panic!()
    };
    assert_eq!(found.user_filter, "(uid={username})");
    assert!(!config.providers[0].is_redirect());
    let err = refused(&format!("{UP}{ldap}user_filter = \"(uid=alice)\"\n"));
    assert!(err.message().contains("must contain {username}"), "{err}");
    let err = refused(&format!(
        "{UP}{}",
        ldap.replace("127.0.0.1:389", "ldap.example.com")
    ));
    assert!(err.message().contains("in clear"), "{err}");
    Config::from_toml_str(&format!(
        "{UP}{}start_tls = true\n",
        ldap.replace("127.0.0.1:389", "ldap.example.com")
    ))
    .unwrap();
    let err = refused(&format!("{UP}{}", ldap.replace("ldap://", "http://")));
    assert!(err.message().contains("ldap or ldaps"), "{err}");
    let err = refused(&format!(
        "{UP}{}start_tls = true\n",
        ldap.replace("ldap://", "ldaps://")
    ));
    assert!(err.message().contains("start_tls"), "{err}");
    let err = refused(&format!("{UP}{}", ldap.replace("bind_password = \"p\"\n", "")));
    assert!(err.message().contains("bind_password"), "{err}");

    let github = "[[providers]]\nid = \"gh\"\nkind = \"github\"\nclient_id = \"a\"\nclient_secret = \"b\"\n";
    let config = Config::from_toml_str(&format!(
        "{UP}{github}api_url = \"https://ghe.example/api/v3\"\nallowed_orgs = [\"Acme\"]\n"
    ))
    .unwrap();
    let ProviderKind::Github(found) = &config.providers[0].kind else {
        panic!()
    };
    assert_eq!(found.api_url.as_str(), "https://ghe.example/api/v3/");
    assert_eq!(found.web_url.as_str(), "https://ghe.example/");
    assert_eq!(found.allowed_orgs, ["acme"]);
    assert_eq!(config.providers[0].display_name, "GitHub");
    let err = refused(&format!("{UP}{}", github.replace("client_secret = \"b\"\n", "")));
    assert!(err.message().contains("client_secret"), "{err}");
}

#[test]
fn rules_may_name_provider_users_and_auto_redirect_needs_one_button_only() {
    let config = Config::from_toml_str(&format!(
        "{UP}[[routes]]\npath_prefix = \"/ops\"\nbuiltin = \"whoami\"\nallowed_users = [\"corp:alice\"]\nallowed_groups = [\"ops\"]\n{CORP}"
    ))
    .unwrap();
    let Policy::Only(allowed) = &config.routes[0].policy else {
        panic!()
    };
    assert_eq!(
        (allowed.users.as_slice(), allowed.groups.as_slice()),
        (&["corp:alice".to_owned()][..], &["ops".to_owned()][..])
    );
    let err = refused(&format!("{UP}[auth]\nallowed_users = [\"other:alice\"]\n{CORP}"));
    assert_eq!(line(&err), 4, "{err}");
    let err = refused(&format!("{UP}[auth]\nallowed_groups = [\"a,b\"]\n"));
    assert!(err.message().contains("no commas"), "{err}");
    Config::from_toml_str(&format!("{UP}[auth]\nauto_redirect = true\n{CORP}")).unwrap();
    let hash = crate::password::hash_password("pw");
    let err = refused(&format!(
        "{UP}[auth]\nauto_redirect = true\n[[users]]\nusername = \"a\"\npassword_hash = \"{hash}\"\n{CORP}"
    ));
    assert!(
        err.message()
            .contains("exactly one outside provider and no password sign-in"),
        "{err}"
    );
    let err = refused(&format!(
        "{UP}[[users]]\nusername = \"a\"\npassword_hash = \"{hash}\"\nlinks = [\"nobody:1\"]\n{CORP}"
    ));
    assert_eq!(line(&err), 6, "{err}");
    let err = refused(&format!(
        "{UP}[[users]]\nusername = \"corp:a\"\npassword_hash = \"{hash}\"\n"
    ));
    assert!(err.message().contains("no :"), "{err}");
}
