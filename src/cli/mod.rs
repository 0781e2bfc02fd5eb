//! The command line: serve | check | schema | openapi | sign | users | export | import | config |
//! probe.

mod probe;
mod transfer;
mod users;

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context as _};
use clap::{Parser, Subcommand, ValueEnum};

use crate::api::spec;
use crate::config::{AppConfig, Backend, Config};
use crate::keys::{self, GeneratedSecrets, MissingSecrets};
use crate::signature::{now_ms, SignatureVerifier, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::{app, storage};
use ownid_bridge_store::{SchemaChanges, SchemaOptions, SchemaReport, StoreError};

/// The endpoints OwnID calls, served from your own user database.
#[derive(Parser, Debug)]
#[command(name = "ownid-bridge", version, about)]
pub struct Cli {
    /// YAML configuration file. Without one, the defaults (SQLite in the working directory)
    /// and OWNID_BRIDGE__SECTION__KEY environment overrides apply.
    #[arg(long, short, global = true, env = "OWNID_BRIDGE_CONFIG")]
    pub config: Option<PathBuf>,

    /// With several OwnID applications configured (`apps`): the one a command acts on (sign,
    /// users, export, import; check and schema: only this one instead of all).
    #[arg(long, global = true, env = "OWNID_BRIDGE_APP")]
    pub app: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (the default command).
    Serve {
        /// Listen on this `host:port` instead of server.listen.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Validate the configuration and report the storage state without changing anything: a
    /// deploy gate. Exits 0 exactly when the server will serve correctly (`warn` lines are safe
    /// under this configuration and say why), 1 when a line fails (`serve` refuses to start on
    /// the same lines), 2 when the configuration cannot be read.
    Check {
        /// `json` for a CI pipeline: `{"ok": bool, "apps": [{"name", "checks": [{"name",
        /// "level", "detail", "fix"}]}]}`.
        #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
        format: CheckFormat,
    },
    /// Create what the users table lacks: the ownIdData column and a unique index on the login
    /// id (and the replay guard's table). Every precondition is checked first; nothing is
    /// changed when one fails. It never creates the users table itself unless told to.
    Schema {
        /// Print the statements (MongoDB: commands) it would run, as a SQL file for a migration
        /// tool, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Create the users table (collection) when it is missing, with the demo's columns.
        #[arg(long)]
        create_table: bool,
        /// PostgreSQL: build the unique index with CREATE UNIQUE INDEX CONCURRENTLY, which does
        /// not block writes to a live table (slower; outside the transaction).
        #[arg(long)]
        concurrently: bool,
    },
    /// Print the OpenAPI document.
    Openapi {
        #[arg(long, value_enum, default_value_t = SpecFormat::Yaml)]
        format: SpecFormat,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Build a correctly signed request with the configured shared secret: print a curl
    /// command, or send it with --send and print the response.
    Sign {
        /// setOwnIDDataByLoginId, getOwnIDDataByLoginId or getSessionByLoginId.
        operation: Operation,
        /// The JSON body, sent byte for byte; `-` reads it from standard input.
        body: String,
        /// Send the request and print the response instead of a curl command.
        #[arg(long)]
        send: bool,
        /// The server's base URL (default: from server.listen and server.base_path).
        #[arg(long)]
        url: Option<String>,
        /// The ownid-timestamp to sign with, in Unix milliseconds (default: now).
        #[arg(long)]
        timestamp: Option<String>,
    },
    /// Look up, reset or add users in the configured table (support staff's tools; the same
    /// exact login-id match and normalization as the endpoints).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Write every user's ownIdData as JSON Lines (`{"loginId": ..., "ownIdData": ...}`, one
    /// user with data per line), streamed in constant memory.
    Export {
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Write the ownIdData of an export (JSON Lines) through the configured store. Idempotent:
    /// run again after an interruption, it resumes. Exits 1 when a line was refused or named an
    /// unknown user.
    Import {
        /// Read this file instead of standard input.
        #[arg(long, short)]
        input: Option<PathBuf>,
        /// Create the users that do not exist (otherwise they are counted and skipped).
        #[arg(long)]
        create_missing_users: bool,
        /// Check every line and count what would change, without writing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Exit 0 when the server answers `GET /readyz` with 200, 1 otherwise, printing nothing: a
    /// health check for a container (HEALTHCHECK) or a service manager. The server's address
    /// comes from server.listen (a wildcard address is asked on loopback), or from --url.
    Probe {
        /// The server's root URL instead, e.g. http://127.0.0.1:8080 (the configuration is then
        /// not read).
        #[arg(long)]
        url: Option<String>,
        /// How long to wait for the answer.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
}

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Add users with only a login id (creating the demo table when it is allowed and missing).
    Add {
        #[arg(required = true)]
        login_ids: Vec<String>,
    },
    /// Whether the user exists and has ownIdData, and its size; never the data itself unless
    /// --reveal is given. Exits 1 for an unknown user.
    Show {
        login_id: String,
        /// Also print the stored ownIdData.
        #[arg(long)]
        reveal: bool,
    },
    /// Clear the users' ownIdData, so that their next OwnID login enrols afresh (a user who lost
    /// every device). Asks for confirmation unless --yes. Exits 1 when a user is unknown.
    Reset {
        #[arg(required = true)]
        login_ids: Vec<String>,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the example configuration, every key documented.
    Example,
    /// Print a new random secret (32 bytes, base64), usable as a shared or JWT secret.
    Secret,
    /// Print the configuration the server would use, after the file, ${VAR} references and
    /// OWNID_BRIDGE__ overrides, as YAML: every key, secrets redacted.
    Show,
    /// Print the configuration file's JSON Schema (config.schema.json).
    Schema,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SpecFormat {
    Json,
    Yaml,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Operation {
    #[value(name = "setOwnIDDataByLoginId")]
    SetOwnIdDataByLoginId,
    #[value(name = "getOwnIDDataByLoginId")]
    GetOwnIdDataByLoginId,
    #[value(name = "getSessionByLoginId")]
    GetSessionByLoginId,
}

impl Operation {
    pub fn path(self) -> &'static str {
        match self {
            Operation::SetOwnIdDataByLoginId => "setOwnIDDataByLoginId",
            Operation::GetOwnIdDataByLoginId => "getOwnIDDataByLoginId",
            Operation::GetSessionByLoginId => "getSessionByLoginId",
        }
    }
}

/// Exit code for a configuration or start-up error (1 is "check found a problem").
const EXIT_CONFIG: u8 = 2;

pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    match run_command(cli).await {
        Ok(code) => code,
        // Only the outermost message: every error here already names what it is about.
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

async fn run_command(cli: Cli) -> anyhow::Result<ExitCode> {
    let command = cli.command.unwrap_or(Command::Serve { listen: None });
    let config = || Config::load(cli.config.as_deref());
    let app_name = cli.app.as_deref();
    // The one application a command acts on, as a single-application configuration.
    let app = || -> anyhow::Result<Config> { Ok(config()?.app(app_name)?.config) };
    match command {
        Command::Serve { listen } => {
            let env: Vec<(String, String)> = std::env::vars().collect();
            let trial = zero_configuration(cli.config.is_some(), &env);
            if app_name.is_some() {
                anyhow::bail!("--app selects an application for the other commands; serve runs every configured application");
            }
            serve(config()?, trial, listen).await
        }
        Command::Check { format } => check(config()?, app_name, format).await,
        Command::Schema {
            dry_run,
            create_table,
            concurrently,
        } => {
            let options = SchemaOptions {
                create_table,
                demo: false,
                dry_run,
                concurrently,
            };
            schema(config()?, app_name, options).await
        }
        Command::Openapi { format, output } => {
            // With a configuration file, the document its server serves (all its applications,
            // in their response modes).
            let config = match cli.config.is_some() {
                true => config()?,
                false => Config::default(),
            };
            openapi(&config, format, output)
        }
        Command::Sign {
            operation,
            body,
            send,
            url,
            timestamp,
        } => sign(app()?, operation, body, send, url, timestamp).await,
        Command::Users { command } => match command {
            UsersCommand::Add { login_ids } => users::add(app()?, login_ids).await,
            UsersCommand::Show { login_id, reveal } => users::show(app()?, &login_id, reveal).await,
            UsersCommand::Reset { login_ids, yes } => users::reset(app()?, login_ids, yes).await,
        },
        Command::Export { output } => transfer::export(app()?, output).await,
        Command::Import {
            input,
            create_missing_users,
            dry_run,
        } => transfer::import(app()?, input, create_missing_users, dry_run).await,
        Command::Config {
            command: ConfigCommand::Example,
        } => {
            print!("{}", crate::config::EXAMPLE);
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Secret,
        } => {
            println!("{}", SignatureVerifier::generate_secret().expose());
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Show,
        } => {
            print!("{}", config()?.show());
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Schema,
        } => {
            print!("{}", crate::config::json_schema_text());
            Ok(ExitCode::SUCCESS)
        }
        Command::Probe { url, timeout } => {
            let target = match url {
                Some(url) => probe::Target::url(url),
                None => probe::Target::configured(&config()?)?,
            };
            Ok(probe::probe(target, timeout).await)
        }
    }
}

/// Whether this is the zero-configuration trial start, the only one that generates missing
/// secrets: no configuration file and no `OWNID_BRIDGE__` environment variable. Anything
/// configured means a deployment, where a missing secret is a forgotten one.
pub fn zero_configuration(config_file: bool, env: &[(String, String)]) -> bool {
    !config_file
        && !env
            .iter()
            .any(|(key, _)| key.starts_with(crate::config::ENV_PREFIX))
}

async fn serve(
    mut config: Config,
    trial: bool,
    listen: Option<String>,
) -> anyhow::Result<ExitCode> {
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    let missing = if trial {
        MissingSecrets::Generate
    } else {
        MissingSecrets::Refuse
    };
    let Some(server) = app::start(config, missing).await?.open().await? else {
        // A signal stopped the server while it waited for the database.
        return Ok(ExitCode::SUCCESS);
    };
    let base = server.base_url();
    println!(
        "ownid-bridge {} listening on {base}",
        env!("CARGO_PKG_VERSION")
    );
    let several = server.app().apps.len() > 1;
    for app in &server.app().apps {
        let config = &app.config;
        let label = if several {
            format!("  {}:\n    ", app.name)
        } else {
            "  ".to_owned()
        };
        println!(
            "{label}OwnID endpoints: {base}{}/{{setOwnIDDataByLoginId,getOwnIDDataByLoginId,getSessionByLoginId}}",
            config.server.base_path
        );
        if several {
            println!(
                "    storage:         {} {} (table {})",
                app.store.backend(),
                config.storage.url,
                config.storage.users.table
            );
        }
    }
    println!("  Swagger UI:      {base}/docs");
    if !several {
        let app = &server.app().apps[0];
        println!(
            "  storage:         {} {}",
            app.store.backend(),
            app.config.storage.url
        );
    }
    if let Some(secret) = &server.generated.shared_secret {
        println!(
            "  shared secret:   {}\n                   (generated for this run, for local trial only: \
             set ownid.shared_secret to your OwnID application's secret)",
            secret.expose()
        );
    }
    if server.generated.jwt_secret {
        println!(
            "  JWT secret:      generated for this run (tokens stop verifying after a restart; \
             set session.secret)"
        );
    }
    if let Some(metrics) = server.metrics_url() {
        println!("  metrics:         {metrics}");
    }
    server.run().await?;
    Ok(ExitCode::SUCCESS)
}

/// The applications `check` and `schema` look at: the one `--app` names, or every one.
fn selected_apps(config: &Config, app: Option<&str>) -> anyhow::Result<Vec<AppConfig>> {
    Ok(match app {
        Some(_) => vec![config.app(app)?],
        None => config.apps(),
    })
}

async fn check(config: Config, app: Option<&str>, format: CheckFormat) -> anyhow::Result<ExitCode> {
    let warnings: Vec<String> = config
        .exposed_secret_files()
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut apps = Vec::new();
    for app in selected_apps(&config, app)? {
        apps.push((
            app.name.clone(),
            app.config.server.base_path.clone(),
            check_app(&app.config).await?,
        ));
    }
    let ok = apps.iter().all(|(_, _, report)| report.is_ok());
    match format {
        CheckFormat::Text => {
            println!("configuration: ok");
            for warning in &warnings {
                println!("warn {warning}");
            }
            for (name, base_path, report) in &apps {
                if !config.apps.is_empty() {
                    println!("app {name} ({base_path}):");
                }
                print!("{report}");
            }
        }
        CheckFormat::Json => {
            let document = serde_json::json!({
                "ok": ok,
                "warnings": warnings,
                "apps": apps
                    .iter()
                    .map(|(name, base_path, report)| serde_json::json!({
                        "name": name,
                        "base_path": base_path.to_string(),
                        "ok": report.is_ok(),
                        "checks": report.to_json(),
                    }))
                    .collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&document)?);
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One application's `check`: its keys, then its storage, as report lines.
async fn check_app(config: &Config) -> anyhow::Result<SchemaReport> {
    let mut report = SchemaReport::default();
    let mut unused = GeneratedSecrets::default();
    let refuse = MissingSecrets::Refuse;
    match keys::verifier(config, refuse, &mut unused) {
        Ok(_) => report.pass("shared secret", "valid base64"),
        Err(err) => report.fail("shared secret", err.to_string(), None),
    }
    match keys::sessions(config, refuse, &mut unused) {
        Ok(_) => report.pass(
            "session key",
            format!("{:?} can sign", config.session.algorithm),
        ),
        Err(err) => report.fail("session key", err.to_string(), None),
    }
    match storage::open(&config.storage, false).await {
        Ok(store) => {
            report.pass("storage", format!("{} reachable", config.storage.url));
            let table = storage::inspect(config, store.as_ref()).await?;
            report.checks.extend(table.checks);
        }
        Err(err) => report.fail("storage", format!("{}: {err}", config.storage.url), None),
    }
    Ok(report)
}

async fn schema(
    config: Config,
    app: Option<&str>,
    options: SchemaOptions,
) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    for app in selected_apps(&config, app)? {
        if !config.apps.is_empty() {
            let heading = format!("app {} ({}):", app.name, app.config.server.base_path);
            if options.dry_run {
                println!("-- {heading}");
            } else {
                println!("{heading}");
            }
        }
        // Without --create-table, the demo table is created as `serve` creates it: where
        // storage.create_demo_table is on, and by SQLite's default not when its name looks like a
        // misspelling of an existing table.
        let storage = &app.config.storage;
        let demo = !options.create_table && storage.creates_demo_table();
        let options = SchemaOptions {
            create_table: options.create_table || demo,
            demo: demo && storage.create_demo_table.is_none(),
            ..options
        };
        ok &= schema_app(&app.config, &options).await?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn schema_app(config: &Config, options: &SchemaOptions) -> anyhow::Result<bool> {
    // Creating an index on a large table may take minutes.
    let mut unbounded = config.storage.clone();
    unbounded.pool.statement_timeout = None;
    // A dry run creates nothing, not even the SQLite file.
    let store = storage::open(&unbounded, !options.dry_run)
        .await
        .map_err(|err| anyhow!("storage ({}): {err}", config.storage.url))?;
    let changes = match storage::apply_schema(config, store.as_ref(), options).await {
        Ok(changes) => changes,
        // The table's own problem (missing, duplicates, a statement it refused): what to fix
        // is in the message, and running again cannot help until it is fixed.
        Err(err @ StoreError::Schema(_)) => {
            eprintln!("error: {err}");
            return Ok(false);
        }
        Err(err) => return Err(err.into()),
    };
    if options.dry_run {
        print!("{}", dry_run_script(config, &changes));
        return Ok(true);
    }
    if changes.is_empty() {
        println!("nothing to change");
    }
    for change in &changes.statements {
        println!("applied: {change}");
    }
    let report = storage::inspect(config, store.as_ref()).await?;
    print!("{report}");
    Ok(report.is_ok())
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
        Backend::Mysql => "MySQL/MariaDB",
        Backend::Mongodb => "MongoDB",
    }
}

/// `schema --dry-run`'s output: a SQL file a migration tool can run (Flyway, Liquibase,
/// golang-migrate, Alembic's `op.execute`), each statement ending with `;`, remarks as `--`
/// comments; MongoDB's commands as comments of the same shape.
fn dry_run_script(config: &Config, changes: &SchemaChanges) -> String {
    let mut text = format!(
        "-- ownid-bridge schema --dry-run: {} ({}), users table {}\n",
        backend_name(config.storage.backend),
        config.storage.url,
        config.storage.users.table,
    );
    if changes.is_empty() {
        text.push_str("-- nothing to change\n");
        return text;
    }
    let mongodb = config.storage.backend == Backend::Mongodb;
    if changes.in_transaction > 1 {
        text.push_str(&format!(
            "-- ownid-bridge runs the first {} statements in one transaction\n",
            changes.in_transaction
        ));
    }
    for note in &changes.notes {
        text.push_str(&format!("-- {note}\n"));
    }
    for statement in &changes.statements {
        if mongodb {
            text.push_str(&format!("-- mongodb: {statement}\n"));
        } else {
            text.push_str(&format!("{statement};\n"));
        }
    }
    text
}

/// The document as committed under `openapi/`: the default base path and response mode.
pub fn openapi_document(format: SpecFormat) -> String {
    configured_document(&Config::default(), format)
}

/// The document a server with this configuration serves at `/openapi.json`.
fn configured_document(config: &Config, format: SpecFormat) -> String {
    let apps = config.apps();
    let described: Vec<spec::Described> = apps
        .iter()
        .map(|app| spec::Described {
            name: &app.name,
            base_path: &app.config.server.base_path,
            responses: app.config.ownid.responses,
        })
        .collect();
    let document = spec::document_for_apps(&described);
    match format {
        SpecFormat::Json => spec::to_json(&document),
        SpecFormat::Yaml => spec::to_yaml(&document),
    }
}

fn openapi(
    config: &Config,
    format: SpecFormat,
    output: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let text = configured_document(config, format);
    match output {
        Some(path) => std::fs::write(&path, text)
            .map_err(|err| anyhow!("cannot write {}: {err}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Quotes a value for a POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `scheme://host:port` to reach this machine's server from `server.listen`.
fn local_origin(config: &Config) -> String {
    let listen = &config.server.listen;
    // A wildcard bind address is not something to connect to.
    let host_port = match listen.rsplit_once(':') {
        Some(("0.0.0.0", port)) => format!("127.0.0.1:{port}"),
        Some(("[::]", port)) => format!("[::1]:{port}"),
        _ => listen.clone(),
    };
    format!("{}://{host_port}", config.server.scheme())
}

fn default_base_url(config: &Config) -> String {
    format!("{}{}", local_origin(config), config.server.base_path)
}

async fn sign(
    config: Config,
    operation: Operation,
    body: String,
    send: bool,
    url: Option<String>,
    timestamp: Option<String>,
) -> anyhow::Result<ExitCode> {
    let secret = config.ownid.shared_secret.as_ref().context(
        "no shared secret configured: set OWNID_BRIDGE__OWNID__SHARED_SECRET (for a local trial, \
         the value `serve` printed) or ownid.shared_secret in the config file",
    )?;
    let verifier = SignatureVerifier::new(secret, config.ownid.max_clock_skew)?;
    let body = if body == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|err| anyhow!("cannot read the body from standard input: {err}"))?;
        text
    } else {
        body
    };
    let timestamp = timestamp.unwrap_or_else(|| now_ms().to_string());
    let signature = verifier.sign(body.as_bytes(), &timestamp);
    let base = url.unwrap_or_else(|| default_base_url(&config));
    let url = format!("{}/{}", base.trim_end_matches('/'), operation.path());
    if !send {
        println!(
            "curl -i -X POST {} \\\n  -H 'content-type: application/json' \\\n  -H '{TIMESTAMP_HEADER}: {timestamp}' \\\n  -H '{SIGNATURE_HEADER}: {signature}' \\\n  --data-raw {}",
            shell_quote(&url),
            shell_quote(&body)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, &timestamp)
        .header(SIGNATURE_HEADER, &signature)
        .body(body)
        .send()
        .await
        .map_err(|err| anyhow!("POST {url}: {err}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|err| anyhow!("reading the response: {err}"))?;
    println!("{status}");
    if !text.is_empty() {
        println!("{text}");
    }
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
