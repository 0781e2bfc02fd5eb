use std::time::Duration;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn error(yaml: &str, vars: &[(&str, &str)]) -> String {
    Config::from_yaml(yaml, &env(vars)).unwrap_err().to_string()
}

#[test]
fn defaults_without_a_file() {
    let config = Config::from_yaml("", &[]).unwrap();
    assert_eq!(config.server.listen, "127.0.0.1:8080");
    assert_eq!(config.server.base_path, "/ownid");
    assert_eq!(config.ownid.max_clock_skew, Duration::from_secs(60));
    assert!(config.ownid.shared_secret.is_none());
    assert!(config.session.secret.is_none());
    assert_eq!(config.storage.url.expose(), "sqlite://ownid-bridge.db");
    assert!(config.storage.creates_demo_table());
}

#[test]
fn the_example_file_loads() {
    let config = Config::from_yaml(
        EXAMPLE,
        &env(&[
            (
                "OWNID_SHARED_SECRET",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            ),
            (
                "OWNID_BRIDGE_JWT_SECRET",
                "an-hmac-secret-of-at-least-32-bytes!!",
            ),
        ]),
    )
    .unwrap();
    assert_eq!(config.storage.users.table, "users");
    assert!(config.ownid.shared_secret.is_some());
}

#[test]
fn variables_expand_with_defaults_and_escapes() {
    let config = Config::from_yaml(
        "server: { listen: \"${HOST:-0.0.0.0}:${PORT}\", base_path: \"/a$$b\" }",
        &env(&[("PORT", "9000")]),
    );
    // `$` is not allowed in a base path; the expansion itself worked.
    assert_eq!(
        config.unwrap_err().to_string(),
        "server.base_path: \"/a$b\" must start with '/' and use only letters, digits and -_.~/"
    );
    let config = Config::from_yaml(
        "server: { listen: \"${HOST:-0.0.0.0}:${PORT}\" }",
        &env(&[("PORT", "9000")]),
    )
    .unwrap();
    assert_eq!(config.server.listen, "0.0.0.0:9000");
}

#[test]
fn a_missing_variable_names_the_key() {
    assert_eq!(
        error("ownid:\n  shared_secret: \"${NOPE_NOT_SET}\"\n", &[]),
        "ownid.shared_secret: environment variable NOPE_NOT_SET is not set"
    );
}

#[test]
fn an_unknown_key_names_its_path() {
    let message = error("storage:\n  users:\n    tabel: people\n", &[]);
    assert!(
        message.starts_with("storage.users.tabel: unknown field `tabel`, expected one of"),
        "{message}"
    );
    let message = error("servre: {}\n", &[]);
    assert!(message.contains("unknown field `servre`"), "{message}");
}

#[test]
fn a_bad_duration_names_its_path() {
    let message = error("ownid: { max_clock_skew: soon }\n", &[]);
    assert!(
        message.starts_with("ownid.max_clock_skew: invalid duration \"soon\""),
        "{message}"
    );
}

#[test]
fn environment_overrides_win_and_accept_strings_for_numbers() {
    let config = Config::from_yaml(
        "server: { max_body_bytes: 100 }\nownid: { create_missing_users: false }\n",
        &env(&[
            ("OWNID_BRIDGE__SERVER__MAX_BODY_BYTES", "2048"),
            ("OWNID_BRIDGE__OWNID__CREATE_MISSING_USERS", "true"),
            ("OWNID_BRIDGE__OWNID__SHARED_SECRET", "c2VjcmV0"),
            ("OWNID_BRIDGE__STORAGE__USERS__TABLE", "accounts"),
        ]),
    )
    .unwrap();
    assert_eq!(config.server.max_body_bytes, 2048);
    assert!(config.ownid.create_missing_users);
    assert_eq!(config.ownid.shared_secret.unwrap().expose(), "c2VjcmV0");
    assert_eq!(config.storage.users.table, "accounts");
}

#[test]
fn an_unknown_override_is_an_error_too() {
    let message = error("", &[("OWNID_BRIDGE__SERVER__LISTNE", "x")]);
    assert!(message.contains("unknown field `listne`"), "{message}");
}

#[test]
fn secrets_are_read_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, "c2VjcmV0\n").unwrap();
    let yaml = format!(
        "ownid: {{ shared_secret_file: {:?} }}",
        file.display().to_string()
    );
    let config = Config::from_yaml(&yaml, &[]).unwrap();
    assert_eq!(config.ownid.shared_secret.unwrap().expose(), "c2VjcmV0");
    let both = format!(
        "ownid: {{ shared_secret: x, shared_secret_file: {:?} }}",
        file.display().to_string()
    );
    assert!(error(&both, &[]).starts_with("ownid.shared_secret: set either"));
    let missing = error("session: { secret_file: /nonexistent/secret }", &[]);
    assert!(
        missing.starts_with("session.secret_file: cannot read"),
        "{missing}"
    );
}

#[test]
fn networks_accept_lists_strings_and_bare_addresses() {
    let config = Config::from_yaml(
        "ownid: { allowed_networks: [\"203.0.113.0/24\", \"2001:db8::1\"] }",
        &env(&[(
            "OWNID_BRIDGE__SERVER__TRUSTED_PROXIES",
            "10.0.0.0/8, 127.0.0.1",
        )]),
    )
    .unwrap();
    assert_eq!(config.ownid.allowed_networks.len(), 2);
    assert_eq!(config.server.trusted_proxies.len(), 2);
    let message = error("ownid: { allowed_networks: [\"10.0.0.0/33\"] }", &[]);
    assert!(message.starts_with("ownid.allowed_networks"), "{message}");
}

#[test]
fn the_url_must_match_the_backend() {
    let message = error("storage: { backend: postgres }", &[]);
    assert!(
        message.starts_with("storage.url: storage.backend postgres expects"),
        "{message}"
    );
    let config = Config::from_yaml(
        "storage: { backend: mariadb, url: \"mariadb://app:pw@db/users\" }",
        &[],
    )
    .unwrap();
    assert_eq!(config.storage.backend, Backend::Mysql);
    assert!(!config.storage.creates_demo_table());
    let message = error("storage: { backend: oracle }", &[]);
    assert!(
        message.starts_with("storage.backend: unknown variant `oracle`"),
        "{message}"
    );
}

#[test]
fn invalid_identifiers_name_their_key() {
    let message = error("storage: { users: { ownid_data: \"x; drop table\" } }", &[]);
    assert!(
        message.starts_with("storage.users.ownid_data:"),
        "{message}"
    );
    let message = error("storage: { users: { claims: { sub: id } } }", &[]);
    assert!(
        message.starts_with("storage.users.claims.sub:"),
        "{message}"
    );
}

#[test]
fn debug_output_redacts_secrets_and_url_passwords() {
    let config = Config::from_yaml(
        "ownid: { shared_secret: c2VjcmV0LXZhbHVl }\n\
         session: { secret: jwt-secret-value-jwt-secret-value }\n\
         storage: { url: \"sqlite://user:pa55word@localhost/x.db\" }\n",
        &[],
    )
    .unwrap();
    let debug = format!("{config:?}");
    for leaked in ["c2VjcmV0LXZhbHVl", "jwt-secret-value", "pa55word"] {
        assert!(!debug.contains(leaked), "{leaked} in {debug}");
    }
    assert!(debug.contains("[redacted]"));
}

#[test]
fn replay_protection_is_a_mode_and_the_old_booleans_still_work() {
    let mode = |yaml: &str, vars: &[(&str, &str)]| {
        Config::from_yaml(yaml, &env(vars))
            .unwrap()
            .ownid
            .replay_protection
    };
    assert_eq!(mode("", &[]), ReplayProtection::Memory);
    assert_eq!(
        mode("ownid: { replay_protection: off }", &[]),
        ReplayProtection::Off
    );
    assert_eq!(
        mode("ownid: { replay_protection: memory }", &[]),
        ReplayProtection::Memory
    );
    assert_eq!(
        mode("ownid: { replay_protection: false }", &[]),
        ReplayProtection::Off
    );
    assert_eq!(
        mode("ownid: { replay_protection: true }", &[]),
        ReplayProtection::Memory
    );
    for (value, expected) in [
        ("false", ReplayProtection::Off),
        ("true", ReplayProtection::Memory),
        ("off", ReplayProtection::Off),
        ("memory", ReplayProtection::Memory),
        ("storage", ReplayProtection::Storage),
    ] {
        assert_eq!(
            mode("", &[("OWNID_BRIDGE__OWNID__REPLAY_PROTECTION", value)]),
            expected,
            "{value}"
        );
    }
    assert_eq!(
        mode("ownid: { replay_protection: storage }", &[]),
        ReplayProtection::Storage
    );
    let message = error("ownid: { replay_protection: sometimes }", &[]);
    assert!(
        message.starts_with("ownid.replay_protection:") && message.contains("off, memory, storage"),
        "{message}"
    );
    let table = |yaml: &str| Config::from_yaml(yaml, &[]).map(|c| c.ownid.replay_table);
    assert_eq!(table("").unwrap(), "ownid_replay_guard");
    assert_eq!(
        table("ownid: { replay_table: seen_signatures }").unwrap(),
        "seen_signatures"
    );
    let message = error("ownid: { replay_table: \"seen; DROP\" }", &[]);
    assert!(
        message.starts_with("ownid.replay_table:") && message.contains("not a valid name"),
        "{message}"
    );
    assert_eq!(
        Config::from_yaml("", &[]).unwrap().ownid.replay_max_entries,
        500_000
    );
    let message = error("ownid: { replay_max_entries: 0 }", &[]);
    assert!(
        message.starts_with("ownid.replay_max_entries: must be positive"),
        "{message}"
    );
}

#[test]
fn previous_secrets_are_strings_or_carry_an_expiry() {
    let config = Config::from_yaml(
        "ownid:\n  previous_shared_secrets:\n    - c2VjcmV0LW9uZQ==\n    \
         - { secret: c2VjcmV0LXR3bw==, expires: \"2026-12-31T00:00:00Z\" }\n",
        &[],
    )
    .unwrap();
    let previous = &config.ownid.previous_shared_secrets;
    assert_eq!(previous.len(), 2);
    assert_eq!(previous[0].secret.expose(), "c2VjcmV0LW9uZQ==");
    assert_eq!(previous[0].expires, None);
    assert_eq!(previous[1].secret.expose(), "c2VjcmV0LXR3bw==");
    assert_eq!(
        previous[1].expires,
        Some(humantime::parse_rfc3339("2026-12-31T00:00:00Z").unwrap())
    );
    let config = Config::from_yaml(
        "",
        &env(&[(
            "OWNID_BRIDGE__OWNID__PREVIOUS_SHARED_SECRETS",
            "c2VjcmV0LW9uZQ==, c2VjcmV0LXR3bw==",
        )]),
    )
    .unwrap();
    assert_eq!(config.ownid.previous_shared_secrets.len(), 2);
    let message = error(
        "ownid: { previous_shared_secrets: [{ secret: x, expires: tomorrow }] }",
        &[],
    );
    assert!(
        message.starts_with("ownid.previous_shared_secrets: item 0: expires \"tomorrow\""),
        "{message}"
    );
    let debug = format!("{config:?}");
    assert!(!debug.contains("c2VjcmV0"), "{debug}");
}

#[test]
fn the_pool_section_is_the_stores_own_settings() {
    use ownid_bridge_store::PoolSettings;
    assert_eq!(
        Config::from_yaml("", &[]).unwrap().storage.pool,
        PoolSettings::default()
    );
    let config = Config::from_yaml(
        "storage: { pool: { max_connections: 4, idle_timeout: none } }",
        &env(&[
            ("OWNID_BRIDGE__STORAGE__POOL__ACQUIRE_TIMEOUT", "250ms"),
            ("OWNID_BRIDGE__STORAGE__POOL__MIN_CONNECTIONS", "2"),
        ]),
    )
    .unwrap();
    assert_eq!(
        config.storage.pool,
        PoolSettings {
            max_connections: 4,
            min_connections: 2,
            acquire_timeout: Duration::from_millis(250),
            idle_timeout: None,
            ..PoolSettings::default()
        }
    );
    let message = error("storage: { pool: { max_conections: 4 } }", &[]);
    assert!(
        message.starts_with("storage.pool.max_conections: unknown field `max_conections`"),
        "{message}"
    );
    let message = error("storage: { pool: { connect_timeout: soon } }", &[]);
    assert!(
        message.starts_with("storage.pool.connect_timeout: invalid duration \"soon\""),
        "{message}"
    );
}

const SECRET_A: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
const SECRET_B: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";
const SECRET_C: &str = "Q0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0M=";
const JWT: &str = "an-hmac-secret-of-at-least-32-bytes!!";

/// Two applications over the top-level database, the second in a table of its own.
fn two_apps(extra: &str) -> String {
    format!(
        "storage: {{ url: \"sqlite://shared.db\" }}\n\
         apps:\n\
         - name: customer\n  base_path: /ownid/customer/\n  ownid: {{ shared_secret: \"{SECRET_A}\" }}\n  session: {{ secret: \"{JWT}\" }}\n\
         - name: admin\n  base_path: /ownid/admin\n  ownid: {{ shared_secret: \"{SECRET_B}\", responses: legacy }}\n  session: {{ secret: \"{JWT}\", ttl: 5m }}\n  users: {{ table: admins, login_id: email }}\n{extra}"
    )
}

#[test]
fn without_apps_the_top_level_sections_are_the_default_app() {
    let config = Config::from_yaml("server: { base_path: /id }", &[]).unwrap();
    let apps = config.apps();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].name, DEFAULT_APP);
    assert_eq!(apps[0].config.server.base_path, "/id");
    assert_eq!(config.app(None).unwrap().name, "default");
    assert_eq!(config.app(Some("default")).unwrap().name, "default");
}

#[test]
fn each_app_has_its_own_sections_over_the_shared_storage() {
    let config = Config::from_yaml(&two_apps(""), &[]).unwrap();
    let apps = config.apps();
    let (customer, admin) = (&apps[0], &apps[1]);
    assert_eq!(customer.name, "customer");
    assert_eq!(customer.config.server.base_path, "/ownid/customer");
    assert_eq!(
        customer
            .config
            .ownid
            .shared_secret
            .as_ref()
            .unwrap()
            .expose(),
        SECRET_A
    );
    assert_eq!(customer.config.ownid.responses, ResponseMode::Standard);
    assert_eq!(customer.config.storage.users.table, "users");
    assert_eq!(
        admin.config.ownid.shared_secret.as_ref().unwrap().expose(),
        SECRET_B
    );
    assert_eq!(admin.config.ownid.responses, ResponseMode::Legacy);
    assert_eq!(admin.config.session.ttl, Duration::from_secs(300));
    assert_eq!(admin.config.storage.users.table, "admins");
    assert_eq!(admin.config.storage.users.login_id, "email");
    assert_eq!(admin.config.storage.url.expose(), "sqlite://shared.db");
    // The entries' copies hold no further applications.
    assert!(admin.config.apps.is_empty());
    assert_eq!(config.app(Some("admin")).unwrap().name, "admin");
    assert_eq!(
        config.app(None).unwrap_err().to_string(),
        "several OwnID applications are configured (customer, admin): choose one with --app"
    );
    assert_eq!(
        config.app(Some("shop")).unwrap_err().to_string(),
        "--app \"shop\": no such application; configured: customer, admin"
    );
}

#[test]
fn an_app_may_have_a_database_of_its_own() {
    let yaml = two_apps(&format!(
        "- name: partner\n  base_path: /partner\n  ownid: {{ shared_secret: \"{SECRET_C}\" }}\n  session: {{ secret: \"{JWT}\" }}\n  storage: {{ backend: postgres, url: \"postgres://db/partners\", users: {{ table: people }} }}\n"
    ));
    let config = Config::from_yaml(&yaml, &[]).unwrap();
    let partner = config.app(Some("partner")).unwrap().config;
    assert_eq!(partner.storage.backend, Backend::Postgres);
    assert_eq!(partner.storage.users.table, "people");
}

#[test]
fn app_entries_are_checked_and_name_their_entry() {
    let with = |extra: &str| error(&two_apps(extra), &[]);
    let entry = |body: &str| {
        with(&format!(
            "- name: third\n  base_path: /third\n  ownid: {{ shared_secret: \"{SECRET_A}\" }}\n  session: {{ secret: \"{JWT}\" }}\n{body}"
        ))
    };
    assert_eq!(
        with("- name: Third!\n  base_path: /t\n"),
        "apps[2].name: \"Third!\" must be 1 to 32 lower-case letters, digits, - and _, starting with a letter or digit"
    );
    assert_eq!(
        with("- name: third\n  base_path: /t\n  session: { secret: x }\n"),
        "apps[2].ownid.shared_secret: each application needs its own shared secret from the OwnID console (or ownid.shared_secret_file); ${VAR} references work here"
    );
    assert_eq!(
        with(&format!("- name: third\n  base_path: /t\n  ownid: {{ shared_secret: \"{SECRET_A}\" }}\n")),
        "apps[2].session.secret: HS256 signs this application's session tokens with it; set it (or session.secret_file)"
    );
    assert!(
        entry("  users: { table: third }\n  storage: { url: \"sqlite://x.db\" }\n")
            .starts_with("apps[2].users: set users (a table in the shared storage) or storage")
    );
    assert_eq!(
        with(&format!("- name: third\n  base_path: /t\n  ownid: {{ shared_secret: \"{SECRET_A}\", max_ownid_data_chars: 0 }}\n  session: {{ secret: \"{JWT}\" }}\n  users: {{ table: thirds }}\n")),
        "apps[2].ownid.max_ownid_data_chars: must be positive"
    );
    assert!(with("- name: x\n  base_path: /x\n  colour: blue\n").contains("colour"));
}

#[test]
fn apps_may_not_share_a_name_a_base_path_or_a_data_column() {
    let third = |name: &str, base: &str, users: &str| {
        error(
            &two_apps(&format!(
                "- name: {name}\n  base_path: {base}\n  ownid: {{ shared_secret: \"{SECRET_C}\" }}\n  session: {{ secret: \"{JWT}\" }}\n{users}"
            )),
            &[],
        )
    };
    assert_eq!(
        third("admin", "/other", "  users: { table: others }\n"),
        "apps[2]: the same name as apps[1] (\"admin\"); each application needs its own"
    );
    assert_eq!(
        third("third", "/ownid/admin/v2", "  users: { table: others }\n"),
        "apps[2]: a base path equal to, or nested in, the base path as apps[1] (\"admin\"); each application needs its own"
    );
    assert_eq!(
        third("third", "/ownid", "  users: { table: others }\n"),
        "apps[2]: a base path equal to, or nested in, the base path as apps[0] (\"customer\"); each application needs its own"
    );
    // /ownid/customers is not under /ownid/customer.
    assert!(Config::from_yaml(
        &two_apps(&format!(
            "- name: third\n  base_path: /ownid/customers\n  ownid: {{ shared_secret: \"{SECRET_C}\" }}\n  session: {{ secret: \"{JWT}\" }}\n  users: {{ table: others }}\n"
        )),
        &[]
    )
    .is_ok());
    assert_eq!(
        third("third", "/third", ""),
        "apps[2]: the same ownIdData column (database, table and column) as apps[0] (\"customer\"); each application needs its own"
    );
    // The same secret, current or previous, would let a request signed for one pass the other.
    let shared = |ownid: &str| {
        error(
            &two_apps(&format!(
                "- name: third\n  base_path: /third\n  ownid: {ownid}\n  session: {{ secret: \"{JWT}\" }}\n  users: {{ table: others }}\n"
            )),
            &[],
        )
    };
    let message = shared(&format!("{{ shared_secret: \"{SECRET_B}\" }}"));
    assert_eq!(
        message,
        "apps[2]: a shared secret (current or previous) in common as apps[1] (\"admin\"); each application needs its own"
    );
    assert!(!message.contains(SECRET_B));
    assert!(shared(&format!(
        "{{ shared_secret: \"{SECRET_C}\", previous_shared_secrets: [\"{SECRET_A}\"] }}"
    ))
    .starts_with("apps[2]: a shared secret (current or previous) in common as apps[0]"));
    // The same table with another ownIdData column is fine: two apps over one users table.
    assert!(Config::from_yaml(
        &two_apps(&format!(
            "- name: third\n  base_path: /third\n  ownid: {{ shared_secret: \"{SECRET_C}\" }}\n  session: {{ secret: \"{JWT}\" }}\n  users: {{ ownid_data: third_ownid_data }}\n"
        )),
        &[]
    )
    .is_ok());
}

#[test]
fn with_apps_the_top_level_app_sections_are_refused() {
    for (yaml, vars, key) in [
        (
            format!("ownid: {{ shared_secret: \"{SECRET_A}\" }}\n"),
            vec![],
            "ownid",
        ),
        ("session: { ttl: 5m }\n".to_owned(), vec![], "session"),
        (
            "server: { base_path: /x }\n".to_owned(),
            vec![],
            "server.base_path",
        ),
        (
            String::new(),
            vec![("OWNID_BRIDGE__OWNID__SHARED_SECRET", SECRET_A)],
            "ownid",
        ),
    ] {
        let message = error(&format!("{yaml}{}", two_apps("")), &vars);
        assert!(
            message.starts_with(&format!("{key}: with apps, each application has its own")),
            "{message}"
        );
    }
    // The shared sections stay at the top.
    assert!(Config::from_yaml(
        &format!(
            "server: {{ listen: \"127.0.0.1:0\" }}\nlog: {{ level: debug }}\n{}",
            two_apps("")
        ),
        &[]
    )
    .is_ok());
}

#[test]
fn app_secrets_are_read_from_files_and_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-secret");
    std::fs::write(&file, format!("{SECRET_B}\n")).unwrap();
    let yaml = format!(
        "apps:\n- name: admin\n  base_path: /admin\n  ownid: {{ shared_secret_file: \"{}\" }}\n  session: {{ secret: \"{JWT}\" }}\n",
        file.display()
    );
    let config = Config::from_yaml(&yaml, &[]).unwrap();
    let admin = config.app(None).unwrap().config;
    assert_eq!(admin.ownid.shared_secret.unwrap().expose(), SECRET_B);
    let debug = format!("{config:?}");
    assert!(!debug.contains(SECRET_B) && !debug.contains(JWT), "{debug}");
}

#[test]
fn variables_inside_a_storage_url_are_percent_encoded() {
    // A password with `#`, `/`, `@` or `:` pasted into the URL's user information or query
    // would change where the URL ends, and what the driver (and the masking) reads as the host.
    let vars = env(&[
        ("DB_PASSWORD", "p#ss/w@rd:x %"),
        ("DB_HOST", "db.internal"),
        ("MODE", "verify-full&x=1"),
        ("DATABASE_URL", "postgres://a:b@h:5432/db"),
    ]);
    let url = |value: &str| {
        Config::from_yaml(
            &format!("storage: {{ backend: postgres, url: \"{value}\" }}"),
            &vars,
        )
        .unwrap()
        .storage
        .url
        .expose()
        .to_owned()
    };
    assert_eq!(
        url("postgres://app:${DB_PASSWORD}@${DB_HOST}:5432/users?sslmode=${MODE}"),
        "postgres://app:p%23ss%2Fw%40rd%3Ax%20%25@db.internal:5432/users?sslmode=verify-full%26x%3D1"
    );
    let parsed = url::Url::parse(&url("postgres://app:${DB_PASSWORD}@db/users")).unwrap();
    let password = percent_encoding::percent_decode_str(parsed.password().unwrap())
        .decode_utf8()
        .unwrap();
    assert_eq!(password, "p#ss/w@rd:x %");
    assert_eq!(parsed.host_str(), Some("db"));
    // A whole URL in one variable is taken as it is; so is every other key.
    assert_eq!(url("${DATABASE_URL}"), "postgres://a:b@h:5432/db");
    let listen = Config::from_yaml("server: { listen: \"${DB_HOST}:80\" }", &vars).unwrap();
    assert_eq!(listen.server.listen, "db.internal:80");
}

#[test]
fn secrets_equal_as_hmac_keys_are_refused_across_apps() {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use sha2::Digest as _;
    // HMAC pads a key with zero bytes to its block (64 bytes) and hashes a longer key first: K
    // and K followed by a zero byte, or a long key and its SHA-256, sign alike.
    let key_a = STANDARD.decode(SECRET_A).unwrap();
    let padded = STANDARD.encode([key_a.as_slice(), &[0]].concat());
    let long = vec![7u8; 100];
    let hashed = STANDARD.encode(sha2::Sha256::digest(&long));
    let with_secrets = |first: &str, second: &str| {
        Config::from_yaml(
            &format!(
                "apps:\n\
                 - name: one\n  base_path: /one\n  ownid: {{ shared_secret: \"{first}\" }}\n  session: {{ secret: \"{JWT}\" }}\n  users: {{ table: ones }}\n\
                 - name: two\n  base_path: /two\n  ownid: {{ previous_shared_secrets: [\"{SECRET_C}\"], shared_secret: \"{second}\" }}\n  session: {{ secret: \"{JWT}\" }}\n  users: {{ table: twos }}\n"
            ),
            &[],
        )
    };
    for (first, second) in [
        (SECRET_A.to_owned(), padded.clone()),
        (STANDARD.encode(&long), hashed.clone()),
    ] {
        let err = with_secrets(&first, &second).unwrap_err().to_string();
        assert_eq!(
            err,
            "apps[1]: a shared secret (current or previous) in common as apps[0] (\"one\"); each application needs its own"
        );
    }
    assert!(with_secrets(SECRET_A, SECRET_B).is_ok());
}

#[test]
fn sqlite_urls_naming_the_same_file_are_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = std::env::current_dir().unwrap();
    let absolute = cwd.join("apps.db");
    for (first, second) in [
        (
            "sqlite://./apps.db".to_owned(),
            "sqlite://apps.db".to_owned(),
        ),
        (
            "sqlite:apps.db".to_owned(),
            "sqlite://apps.db?mode=rwc".to_owned(),
        ),
        (
            format!("sqlite://{}", absolute.display()),
            "sqlite://./sub/../apps.db".to_owned(),
        ),
    ] {
        let err = error(
            &format!(
                "apps:\n\
                 - name: one\n  base_path: /one\n  ownid: {{ shared_secret: \"{SECRET_A}\" }}\n  session: {{ secret: \"{JWT}\" }}\n  storage: {{ url: \"{first}\" }}\n\
                 - name: two\n  base_path: /two\n  ownid: {{ shared_secret: \"{SECRET_B}\" }}\n  session: {{ secret: \"{JWT}\" }}\n  storage: {{ url: \"{second}\" }}\n"
            ),
            &[],
        );
        assert_eq!(
            err,
            "apps[1]: the same ownIdData column (database, table and column) as apps[0] (\"one\"); each application needs its own",
            "{first} and {second}"
        );
    }
    // Two files are two databases.
    let other = dir.path().join("other.db");
    assert!(Config::from_yaml(
        &format!(
            "apps:\n\
             - name: one\n  base_path: /one\n  ownid: {{ shared_secret: \"{SECRET_A}\" }}\n  session: {{ secret: \"{JWT}\" }}\n  storage: {{ url: \"sqlite://apps.db\" }}\n\
             - name: two\n  base_path: /two\n  ownid: {{ shared_secret: \"{SECRET_B}\" }}\n  session: {{ secret: \"{JWT}\" }}\n  storage: {{ url: \"sqlite://{}\" }}\n",
            other.display()
        ),
        &[],
    )
    .is_ok());
}

/// Red team, round 3 (R3): SQLite's names (and MySQL's column names) ignore ASCII case, so
/// `users`/`OWNID_DATA` and `USERS`/`ownid_data` on one file are one column.
#[test]
fn names_spelt_in_another_case_are_one_column_where_the_database_ignores_case() {
    let apps = |backend: &str, url: &str, table: &str, column: &str| {
        format!(
            "apps:\n\
             - name: one\n  base_path: /one\n  ownid: {{ shared_secret: \"{SECRET_A}\" }}\n  session: {{ secret: \"{JWT}\" }}\n  storage: {{ backend: {backend}, url: \"{url}\" }}\n\
             - name: two\n  base_path: /two\n  ownid: {{ shared_secret: \"{SECRET_B}\" }}\n  session: {{ secret: \"{JWT}\" }}\n  storage: {{ backend: {backend}, url: \"{url}\", users: {{ table: {table}, ownid_data: {column} }} }}\n"
        )
    };
    for (backend, url) in [
        ("sqlite", "sqlite://apps.db"),
        ("mysql", "mysql://db.example.com/app"),
    ] {
        assert_eq!(
            error(&apps(backend, url, "USERS", "OWNID_DATA"), &[]),
            "apps[1]: the same ownIdData column (database, table and column) as apps[0] (\"one\"); each application needs its own",
            "{backend}"
        );
    }
    // PostgreSQL's quoted names and MongoDB's are case-sensitive: two columns.
    for (backend, url) in [
        ("postgres", "postgres://db.example.com/app"),
        ("mongodb", "mongodb://db.example.com/app"),
    ] {
        assert!(
            Config::from_yaml(&apps(backend, url, "USERS", "OWNID_DATA"), &[]).is_ok(),
            "{backend}"
        );
    }
}

#[test]
fn base_and_jwks_paths_may_not_take_a_route_of_the_server() {
    for reserved in [
        "/healthz",
        "/readyz",
        "/docs",
        "/docs/favicon.svg",
        "/metrics",
        "/openapi.json",
        "/openapi.yaml",
    ] {
        let err = error(&format!("server: {{ base_path: \"{reserved}/\" }}"), &[]);
        assert!(
            err.starts_with(&format!(
                "server.base_path: {reserved:?} is a route of the server"
            )),
            "{err}"
        );
        let err = error(
            &format!("session: {{ algorithm: ES256, jwks_path: \"{reserved}\" }}"),
            &[],
        );
        assert!(
            err.starts_with(&format!(
                "session.jwks_path: {reserved:?} is a route of the server"
            )),
            "{err}"
        );
    }
    for taken in [
        "/ownid",
        "/ownid/getSessionByLoginId",
        "/ownid/setOwnIDDataByLoginId",
    ] {
        let err = error(
            &format!("session: {{ algorithm: RS256, jwks_path: \"{taken}\" }}"),
            &[],
        );
        assert!(
            err.starts_with(&format!("session.jwks_path: {taken:?} is")),
            "{err}"
        );
    }
    // Across applications too: one's JWKS on another's operation.
    let err = error(
        &two_apps(&format!(
            "- name: third\n  base_path: /third\n  ownid: {{ shared_secret: \"{SECRET_C}\" }}\n  session: {{ algorithm: EdDSA, jwks_path: /ownid/admin/getOwnIDDataByLoginId }}\n  users: {{ table: thirds }}\n"
        )),
        &[],
    );
    assert!(
        err.starts_with("apps[2].session.jwks_path: \"/ownid/admin/getOwnIDDataByLoginId\" is"),
        "{err}"
    );
    // Red team, round 3 (R4): poem merges `//` (so `//healthz` is `/healthz`); `.` and `..` name
    // another path than they read as.
    for crooked in ["//healthz", "/ownid//x", "/a/../healthz", "/./docs", "/x/."] {
        let err = error(&format!("server: {{ base_path: \"{crooked}\" }}"), &[]);
        assert!(
            err.starts_with(&format!("server.base_path: {crooked:?} has ")),
            "{err}"
        );
        let err = error(
            &format!("session: {{ algorithm: ES256, jwks_path: \"{crooked}\" }}"),
            &[],
        );
        assert!(
            err.starts_with(&format!("session.jwks_path: {crooked:?} has ")),
            "{err}"
        );
    }
    // Beside them, and under another path, is fine; an HMAC algorithm serves no JWKS.
    for yaml in [
        "server: { base_path: /docs/ownid }",
        "session: { algorithm: ES256, jwks_path: /ownid-keys/jwks.json }",
        "session: { jwks_path: /ownid/getSessionByLoginId }",
    ] {
        assert!(Config::from_yaml(yaml, &[]).is_ok(), "{yaml}");
    }
}

#[test]
fn the_operation_paths_are_those_the_api_serves() {
    let document: serde_json::Value =
        serde_json::from_str(&crate::cli::openapi_document(crate::cli::SpecFormat::Json)).unwrap();
    let mut served: Vec<&String> = document["paths"].as_object().unwrap().keys().collect();
    served.sort();
    let mut listed: Vec<String> = server::OPERATIONS
        .iter()
        .map(|operation| format!("/{operation}"))
        .collect();
    listed.sort();
    assert_eq!(served, listed.iter().collect::<Vec<_>>());
}
