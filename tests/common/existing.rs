//! The matrix of existing tables (issue 19): a company's users table of one shape on a fresh
//! database, then what `check`, `schema --dry-run` and `schema` say and do with the real binary,
//! and whether the server serves it (as `serve` starts: `storage::open_for_serving`) or refuses.
//!
//! ```ignore
//! let table = Existing::new(Shape {
//!     backend: "postgres",
//!     setup: &["CREATE TABLE customers (email text PRIMARY KEY, ownid jsonb)"],
//!     env: &[("OWNID_BRIDGE__STORAGE__USERS__TABLE", "customers"), ...],
//! })
//! .await;
//! let check = table.check().await;
//! assert_eq!(check.code, 0, "{check}");
//! assert_eq!(check.level("ownid_data column"), "ok", "{check}");
//! let app = table.serve().await.expect("serves");
//! ```

use std::fmt;

use ownid_bridge::config::Config;
use ownid_bridge::storage;
use serde_json::Value;

use super::{fresh_database, spawn_with_store, FreshDatabase, TestApp, JWT_SECRET, SECRET};

/// One shape of an existing users table.
pub struct Shape<'a> {
    /// `sqlite`, `postgres`, `mysql` or `mongodb`.
    pub backend: &'a str,
    /// What makes the table, run in order on the fresh database: SQL statements, or on MongoDB
    /// commands as JSON documents (each run with `runCommand`, e.g.
    /// `{"create": "customers", "validator": {...}}`, `{"insert": "customers", "documents": [...]}`).
    pub setup: &'a [&'a str],
    /// Configuration overrides beyond the backend, its URL and the keys (`OWNID_BRIDGE__...`):
    /// the table and columns, `OWNID_BRIDGE__OWNID__CREATE_MISSING_USERS`, ...
    pub env: &'a [(&'a str, &'a str)],
}

/// The configuration file of every shape: the keys only (the rest comes from the environment).
fn keys_file() -> String {
    format!("ownid: {{ shared_secret: \"{SECRET}\" }}\nsession: {{ secret: \"{JWT_SECRET}\" }}\n")
}

/// A fresh database holding one [`Shape`].
pub struct Existing {
    pub backend: String,
    pub db: FreshDatabase,
    pub env: Vec<(String, String)>,
}

/// What `check` printed: its exit code, its text and its `--format json` document.
pub struct Checked {
    pub code: i32,
    pub text: String,
    pub json: Value,
}

impl Checked {
    /// The level (`ok`, `warn`, `fail`) of the line named `name` (the first of that name), or
    /// `"absent"`.
    pub fn level(&self, name: &str) -> String {
        self.line(name)
            .and_then(|line| line["level"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "absent".into())
    }

    /// The detail and fix of the line named `name`, joined, for `contains` assertions.
    pub fn detail(&self, name: &str) -> String {
        self.line(name)
            .map(|line| {
                format!(
                    "{} {}",
                    line["detail"].as_str().unwrap_or_default(),
                    line["fix"].as_str().unwrap_or_default()
                )
            })
            .unwrap_or_default()
    }

    fn line(&self, name: &str) -> Option<&Value> {
        self.json["apps"][0]["checks"]
            .as_array()?
            .iter()
            .find(|line| line["name"] == name)
    }
}

impl fmt::Display for Checked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "check exited {}:\n{}", self.code, self.text)
    }
}

impl Existing {
    /// A fresh database with `shape`'s table in it.
    pub async fn new(shape: Shape<'_>) -> Existing {
        let db = fresh_database(shape.backend, "existing").await;
        let mut env: Vec<(String, String)> = vec![
            (
                "OWNID_BRIDGE__STORAGE__BACKEND".into(),
                shape.backend.into(),
            ),
            ("OWNID_BRIDGE__STORAGE__URL".into(), db.url.clone()),
        ];
        env.extend(
            shape
                .env
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string())),
        );
        let existing = Existing {
            backend: shape.backend.into(),
            db,
            env,
        };
        existing.execute(shape.setup).await;
        existing
    }

    /// This shape's environment with `overrides` put in place of (or beside) its keys.
    pub fn env_with(&self, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .env
            .iter()
            .filter(|(key, _)| !overrides.iter().any(|(k, _)| k == key))
            .cloned()
            .collect();
        env.extend(
            overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        env
    }

    /// Runs more setup (SQL statements, or MongoDB commands as JSON) on the database.
    pub async fn execute(&self, statements: &[&str]) {
        let url = self.db.url.as_str();
        match self.backend.as_str() {
            "sqlite" => {
                let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
                    .await
                    .unwrap();
                for statement in statements {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(*statement))
                        .execute(&pool)
                        .await
                        .unwrap_or_else(|err| panic!("{statement}: {err}"));
                }
                pool.close().await;
            }
            "postgres" => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                for statement in statements {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(*statement))
                        .execute(&pool)
                        .await
                        .unwrap_or_else(|err| panic!("{statement}: {err}"));
                }
                pool.close().await;
            }
            "mysql" => {
                let pool = sqlx::MySqlPool::connect(url).await.unwrap();
                for statement in statements {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(*statement))
                        .execute(&pool)
                        .await
                        .unwrap_or_else(|err| panic!("{statement}: {err}"));
                }
                pool.close().await;
            }
            "mongodb" => {
                let client = mongodb::Client::with_uri_str(url).await.unwrap();
                let database = client.default_database().expect("a database in the URL");
                for command in statements {
                    let json: Value = serde_json::from_str(command)
                        .unwrap_or_else(|err| panic!("{command}: {err}"));
                    let document = mongodb::bson::to_document(&json).unwrap();
                    database
                        .run_command(document)
                        .await
                        .unwrap_or_else(|err| panic!("{command}: {err}"));
                }
            }
            other => panic!("no backend {other:?}"),
        }
    }

    /// The configuration `serve` would read: the keys' file and the environment of
    /// [`Existing::cli`].
    pub fn config(&self) -> Config {
        Config::from_yaml(&keys_file(), &self.env).expect("config")
    }

    /// Runs the real binary with `args`, configured by the environment only (no file): exit
    /// code, stdout, stderr.
    pub async fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, keys_file()).unwrap();
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ownid-bridge"))
            .arg("--config")
            .arg(&file)
            .args(args)
            .current_dir(dir.path())
            .env_remove("OWNID_BRIDGE_CONFIG")
            .env_remove("OWNID_BRIDGE_APP")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .await
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// `check`, as text and as `--format json`; the two must agree on the exit code.
    pub async fn check(&self) -> Checked {
        let (code, text, err) = self.cli(&["check"]).await;
        let (json_code, json, json_err) = self.cli(&["check", "--format", "json"]).await;
        assert_eq!(
            code, json_code,
            "text and json disagree:\n{text}{err}\n{json}{json_err}"
        );
        let json: Value = serde_json::from_str(&json)
            .unwrap_or_else(|err| panic!("check --format json: {err}\n{json}{json_err}"));
        assert_eq!(json["ok"], code == 0, "{json}");
        Checked {
            code,
            text: format!("{text}{err}"),
            json,
        }
    }

    /// The server on this table as `serve` starts it, or why it refuses to start (the message
    /// `serve` prints before exiting 2).
    pub async fn serve(&self) -> Result<TestApp, String> {
        let config = self.config();
        match storage::open_for_serving(&config).await {
            Ok(store) => Ok(spawn_with_store(
                config,
                store,
                tempfile::tempdir().unwrap(),
            )),
            Err(err) => Err(err.to_string()),
        }
    }

    /// `check` exits 1 with the line `name` failed, its detail and fix naming every one of
    /// `words`, and `serve` refuses to start: what a table the server cannot serve must get.
    pub async fn assert_refused(&self, name: &str, words: &[&str], context: &str) {
        let check = self.check().await;
        assert_eq!(check.code, 1, "{context}: {check}");
        assert_eq!(check.level(name), "fail", "{context}: {check}");
        let detail = check.detail(name);
        for word in words {
            assert!(detail.contains(word), "{context}: {word:?} not in {check}");
        }
        assert!(self.serve().await.is_err(), "{context}: serve started");
    }

    /// Sets `data` for `login_id`, reads it back byte for byte, and issues a session: the three
    /// operations of the contract on this table. Returns the session's claims.
    pub async fn contract(&self, app: &TestApp, login_id: &str, data: &str) -> Value {
        let set = app.set_data(login_id, data).await;
        assert_eq!(set.status, 204, "set {login_id}: {}", set.body);
        let got = app.get_data(login_id).await;
        assert_eq!(got.status, 200, "get {login_id}: {}", got.body);
        assert_eq!(
            got.json()["ownIdData"],
            data,
            "get {login_id} byte for byte"
        );
        let session = app.session(login_id).await;
        assert_eq!(session.status, 200, "session {login_id}: {}", session.body);
        session.json()
    }
}
