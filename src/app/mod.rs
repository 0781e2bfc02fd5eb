//! The composition root: builds the server from a [`Config`] (keys, logging, the store, the
//! poem application, its listeners) and runs it until a signal. `cli/` only parses arguments,
//! calls [`start`] and prints.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use ownid_bridge_store::UserStore;
use poem::endpoint::BoxEndpoint;
use poem::listener::{Acceptor, AcceptorExt, BoxAcceptor, Listener, TcpListener};
use poem::web::Json;
use poem::{get, Endpoint, EndpointExt, IntoResponse, Request, Response, Route, Server};

use crate::api::spec;
use crate::api::{ApiState, OwnIdApi};
use crate::config::fixed_routes::{
    DOCS, DOCS_FAVICON, HEALTHZ, METRICS, OPENAPI_JSON, OPENAPI_YAML, READYZ,
};
use crate::config::{Config, LogConfig, LogFormat, ReplayProtection};
use crate::error::ApiError;
pub use crate::keys::{GeneratedSecrets, KeyError, Keys, MissingSecrets};
use crate::network::{NetworkPolicy, OriginCheck};
use crate::session::SessionIssuer;
use crate::signature::{ReplayGuard, Replays, SharedGuard, SignatureCheck, SignatureVerifier};
use crate::storage::NotServable;

mod routes;
mod tls;
use routes::{docs_page, healthz, log_request, readyz, static_body, LoggedPaths, Readiness};

/// Everything `serve` derives from the configuration before it listens: one [`OwnIdApp`] per
/// configured application (one without `apps`).
pub struct App {
    pub config: Config,
    pub apps: Vec<OwnIdApp>,
}

/// One OwnID application: its single-application configuration (see [`Config::apps`]), store,
/// signature verifier and session issuer.
pub struct OwnIdApp {
    /// Leaked once per start, so that every metric and log line can carry it without a copy.
    pub name: &'static str,
    pub config: Config,
    pub store: Arc<dyn UserStore>,
    pub verifier: Arc<SignatureVerifier>,
    pub sessions: Arc<SessionIssuer>,
}

/// Why the server cannot start with a configuration.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Storage(#[from] NotServable),
    #[error("apps {app:?}: {source}")]
    InApp {
        app: String,
        source: Box<StartError>,
    },
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("metrics.listen {listen}: {source}")]
    MetricsListen {
        listen: String,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

impl StartError {
    /// Names the application an error is about when the configuration has several.
    fn in_app(self, config: &Config, app: &str) -> StartError {
        if config.apps.is_empty() {
            return self;
        }
        StartError::InApp {
            app: app.to_owned(),
            source: Box::new(self),
        }
    }
}

impl App {
    /// A single-application configuration over its store; every secret must be configured
    /// (see [`MissingSecrets::Refuse`]).
    pub fn new(
        config: Config,
        store: Arc<dyn UserStore>,
    ) -> Result<(App, GeneratedSecrets), KeyError> {
        let keys = Keys::resolve(&config, MissingSecrets::Refuse)?;
        Ok(Self::with_keys(config, vec![store], vec![keys]))
    }

    /// The zero-configuration trial start (no configuration file, no `OWNID_BRIDGE__`
    /// variable): missing secrets are generated for this run and reported back, so that the
    /// caller can print them; nothing here has a fixed default.
    pub fn new_trial(
        config: Config,
        store: Arc<dyn UserStore>,
    ) -> Result<(App, GeneratedSecrets), KeyError> {
        let keys = Keys::resolve(&config, MissingSecrets::Generate)?;
        Ok(Self::with_keys(config, vec![store], vec![keys]))
    }

    /// Every application of `config` over its store, in the order of [`Config::apps`].
    pub fn with_stores(config: Config, stores: Vec<Arc<dyn UserStore>>) -> Result<App, StartError> {
        let keys = resolve_keys(&config, MissingSecrets::Refuse)?;
        Ok(Self::with_keys(config, stores, keys).0)
    }

    /// The application over resolved keys and opened stores, one of each per application.
    pub fn with_keys(
        config: Config,
        stores: Vec<Arc<dyn UserStore>>,
        keys: Vec<Keys>,
    ) -> (App, GeneratedSecrets) {
        let configured = config.apps();
        assert!(
            configured.len() == stores.len() && configured.len() == keys.len(),
            "one store and one set of keys per application"
        );
        let mut generated = GeneratedSecrets::default();
        let apps = configured
            .into_iter()
            .zip(stores)
            .zip(keys)
            .map(|((app, store), keys)| {
                // Generated only in the zero-configuration trial: one application.
                generated = keys.generated;
                OwnIdApp {
                    name: Box::leak(app.name.into_boxed_str()),
                    config: app.config,
                    store,
                    verifier: Arc::new(keys.verifier),
                    sessions: Arc::new(keys.sessions),
                }
            })
            .collect();
        (App { config, apps }, generated)
    }

    /// The whole HTTP surface: each application's operations under its base path, and the
    /// routes the server has once (documents, health, readiness, metrics).
    pub fn endpoint(&self) -> impl Endpoint<Output = Response> + 'static {
        let config = &self.config;
        let described: Vec<spec::Described> = self
            .apps
            .iter()
            .map(|app| spec::Described {
                name: app.name,
                base_path: &app.config.server.base_path,
                responses: app.config.ownid.responses,
            })
            .collect();
        let document = spec::document_for_apps(&described);
        let docs_html = spec::swagger_ui_html(&document, &described);
        let json = spec::to_json(&document);
        let yaml = spec::to_yaml(&document);

        let several = self.apps.len() > 1;
        let mut route = Route::new();
        for app in &self.apps {
            route = route.nest(app.config.server.base_path.clone(), app.endpoint(several));
            if let Some(jwks) = app.sessions.jwks() {
                let jwks = serde_json::to_string(jwks).expect("a JWKS serializes");
                route = route.at(
                    app.config.session.jwks_path.clone(),
                    get(static_body(jwks, "application/jwk-set+json")),
                );
            }
        }
        let stores: Arc<[(&'static str, Arc<dyn UserStore>)]> = self
            .apps
            .iter()
            .map(|app| (app.name, app.store.clone()))
            .collect();
        let mut route = route
            .at(OPENAPI_JSON, get(static_body(json, "application/json")))
            .at(OPENAPI_YAML, get(static_body(yaml, "application/yaml")))
            .at(HEALTHZ, get(healthz))
            .at(READYZ, get(readyz.data(Readiness(stores))));
        if config.docs.enabled {
            let csp: Arc<str> = spec::swagger_ui_csp(&docs_html).into();
            let policy = Arc::new(NetworkPolicy {
                allowed: config.docs.allowed_networks.clone(),
                trusted_proxies: config.server.trusted_proxies.clone(),
            });
            route = route
                .at(
                    DOCS,
                    get(docs_page(
                        docs_html,
                        "text/html; charset=utf-8",
                        csp.clone(),
                        policy.clone(),
                    )),
                )
                .at(
                    DOCS_FAVICON,
                    get(docs_page(
                        spec::FAVICON_SVG.to_owned(),
                        "image/svg+xml",
                        csp,
                        policy,
                    )),
                );
        }
        if config.metrics.enabled && config.metrics.listen.is_none() {
            route = route.at(METRICS, self.metrics_endpoint());
        }
        let paths = Arc::new(LoggedPaths {
            jwks: self
                .apps
                .iter()
                .map(|app| app.config.session.jwks_path.clone())
                .collect(),
            bases: self
                .apps
                .iter()
                .map(|app| format!("{}/", app.config.server.base_path))
                .collect(),
        });
        // A panic in a handler must cost one request, not the process (see the release profile's
        // panic strategy in Cargo.toml): it becomes the usual 500 body, and the log line says so.
        let on_panic = |_: Box<dyn std::any::Any + Send>| {
            tracing::error!("a request handler panicked");
            ApiError::internal()
        };
        route
            .with(poem::middleware::CatchPanic::new().with_handler(on_panic))
            .catch_all_error(|err| async move { crate::error::error_response(err) })
            .around(move |next, req| log_request(next, req, paths.clone()))
    }

    /// `GET /metrics` in the Prometheus text format, for callers inside
    /// `metrics.allowed_networks` (loopback by default; see `NetworkPolicy::allows_metrics`),
    /// on the main port and on `metrics.listen` alike.
    pub fn metrics_endpoint(&self) -> impl Endpoint<Output = Response> + 'static {
        crate::metrics::init();
        let stores: Vec<(&'static str, Arc<dyn UserStore>)> = self
            .apps
            .iter()
            .map(|app| (app.name, app.store.clone()))
            .collect();
        let policy = NetworkPolicy {
            allowed: self.config.metrics.allowed_networks.clone(),
            trusted_proxies: self.config.server.trusted_proxies.clone(),
        };
        get(poem::endpoint::make_sync(move |req| {
            if !policy.allows_metrics(&req) {
                return crate::network::forbidden();
            }
            Response::builder()
                .content_type("text/plain; version=0.0.4; charset=utf-8")
                .body(crate::metrics::render(&stores))
        }))
    }
}

impl OwnIdApp {
    /// The three operations under this application's base path: its origin check, signature
    /// check and replay guard, its store and session issuer. Every request it answers carries
    /// its name, in the metrics and, with `several` applications, in the log (a span; see
    /// [`crate::metrics::in_app`]).
    fn endpoint(&self, several: bool) -> impl Endpoint<Output = Response> + 'static {
        let config = &self.config;
        let state = Arc::new(ApiState {
            store: self.store.clone(),
            sessions: self.sessions.clone(),
            responses: config.ownid.responses,
            normalization: config.ownid.login_id_normalization,
            max_ownid_data_chars: config.ownid.max_ownid_data_chars,
            create_missing_users: config.ownid.create_missing_users,
            retries: config.storage.retries.clone(),
        });
        let service = spec::service(OwnIdApi, &config.server.base_path);
        let mut signature = SignatureCheck::new(
            self.verifier.clone(),
            config.server.max_body_bytes,
            config.server.body_timeout,
        );
        match config.ownid.replay_protection {
            ReplayProtection::Off => {}
            ReplayProtection::Memory => {
                signature = signature.with_replay_protection(Replays::Memory(Arc::new(
                    ReplayGuard::new(config.ownid.replay_max_entries),
                )));
            }
            ReplayProtection::Storage => {
                let ledger = crate::storage::signature_ledger(config, self.store.as_ref())
                    .expect("the store was opened for serving, which requires a replay table");
                let skew = config.ownid.max_clock_skew;
                let guard = SharedGuard::new(ledger, config.storage.retries.clone(), skew);
                guard.forget_expired_every(skew);
                signature = signature.with_replay_protection(Replays::Shared(guard));
            }
        }
        let origin = OriginCheck(Arc::new(NetworkPolicy {
            allowed: config.ownid.allowed_networks.clone(),
            trusted_proxies: config.server.trusted_proxies.clone(),
        }));
        let name = self.name;
        service
            .data(state)
            .with(signature)
            .with(origin)
            .around(move |next, req| crate::metrics::in_app(name, several, next, req))
    }
}

/// The signature verifier and session issuer of every application, in the order of
/// [`Config::apps`].
fn resolve_keys(config: &Config, missing: MissingSecrets) -> Result<Vec<Keys>, StartError> {
    config
        .apps()
        .iter()
        .map(|app| {
            Keys::resolve(&app.config, missing)
                .map_err(|err| StartError::from(err).in_app(config, &app.name))
        })
        .collect()
}

/// A server bound to its ports and answering `/healthz` (and `/readyz`: not ready), its store
/// not yet open: see [`Listening::open`].
pub struct Listening {
    config: Config,
    keys: Vec<Keys>,
    addr: SocketAddr,
    metrics: Option<(BoxAcceptor, SocketAddr)>,
    /// The application, once the store is open; until then [`Starting`] answers.
    ready: Arc<OnceLock<BoxEndpoint<'static, Response>>>,
    stop: Stop,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Stops a started server as SIGINT or SIGTERM does: it accepts no more connections and lets
/// the requests in flight finish within `server.shutdown_timeout`.
#[derive(Clone, Default)]
pub struct Stop(Arc<tokio::sync::Notify>);

impl Stop {
    pub fn stop(&self) {
        // Kept for the server when it is not waiting yet.
        self.0.notify_one();
    }

    async fn requested(&self) {
        self.0.notified().await;
    }
}

/// A server that serves the OwnID operations: what `serve` prints comes from here.
pub struct Ready {
    app: App,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    /// Secrets generated for this run (zero-configuration trial only).
    pub generated: GeneratedSecrets,
    stop: Stop,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Starts the server from `config`: logging, then the secrets and keys (before anything is
/// bound or the storage touched, so a forgotten secret changes nothing; an expired previous
/// secret is warned about), then the main and metrics listeners. The main port answers at
/// once, with [`Starting`] until [`Listening::open`] has opened the store. This is what `serve`
/// runs, and what the tests start a server with (`server.listen` on port 0, then
/// [`Ready::addr`] and [`Ready::stopper`]).
pub async fn start(config: Config, missing: MissingSecrets) -> Result<Listening, StartError> {
    init_logging(&config.log);
    for file in config.exposed_secret_files() {
        tracing::warn!("secret file open to other users: {file}");
    }
    let keys = resolve_keys(&config, missing)?;
    let server = &config.server;
    let acceptor = bind_server(&server.listen, server.tls.as_ref()).await?;
    let addr = socket_addr(&acceptor).map_err(|source| BindError::Listen {
        listen: server.listen.clone(),
        tls: server.tls.is_some(),
        source,
    })?;
    let metrics = match (&config.metrics.listen, config.metrics.enabled) {
        (Some(listen), true) => {
            let metrics_error = |source| StartError::MetricsListen {
                listen: listen.clone(),
                source,
            };
            let acceptor = bind(listen).await.map_err(metrics_error)?.boxed();
            let addr = socket_addr(&acceptor).map_err(metrics_error)?;
            Some((acceptor, addr))
        }
        _ => None,
    };
    let ready = Arc::new(OnceLock::new());
    let starting = Starting {
        ready: Arc::clone(&ready),
    };
    let server_config = config.server.clone();
    let stop = Stop::default();
    let stopped = stop.clone();
    let server =
        tokio::spawn(
            async move { serve_configured(acceptor, starting, &server_config, stopped).await },
        );
    Ok(Listening {
        config,
        keys,
        addr,
        metrics,
        ready,
        stop,
        server,
    })
}

fn socket_addr(acceptor: &impl Acceptor) -> std::io::Result<SocketAddr> {
    acceptor
        .local_addr()
        .into_iter()
        .find_map(|addr| addr.as_socket_addr().copied())
        .ok_or_else(|| std::io::Error::other("the listener has no socket address"))
}

impl Listening {
    /// Opens the store for serving (waiting for the database as `storage.startup_wait` allows,
    /// see [`crate::storage::open_waiting`]) and switches the main port to the application.
    /// `None` when a signal stopped the server first.
    pub async fn open(mut self) -> Result<Option<Ready>, StartError> {
        let stores = tokio::select! {
            stores = open_stores(&self.config) => stores?,
            stopped = &mut self.server => {
                served(stopped)?;
                return Ok(None);
            }
        };
        Ok(Some(self.serve(stores)))
    }

    /// Switches the main port to the application over `stores`, opened by the caller, one per
    /// application in the order of [`Config::apps`] ([`Listening::open`] opens them from the
    /// configuration; tests pass a store with failures injected).
    pub fn serve(self, stores: Vec<Arc<dyn UserStore>>) -> Ready {
        let Listening {
            config,
            keys,
            addr,
            metrics,
            ready,
            stop,
            server,
        } = self;
        let (app, generated) = App::with_keys(config, stores, keys);
        let metrics_addr = metrics.map(|(acceptor, addr)| {
            let route = Route::new().at("/metrics", app.metrics_endpoint());
            // Ends with the process; scrapes in flight at shutdown do not matter. The same
            // connection guards as the main port, with a connection limit of its own.
            let acceptor = crate::conn::Guarded::new(acceptor, &app.config.server);
            tokio::spawn(Server::new_with_acceptor(acceptor).run(route));
            addr
        });
        if ready.set(app.endpoint().boxed()).is_err() {
            unreachable!("the application is set once");
        }
        tracing::info!(%addr, "ready");
        Ready {
            app,
            addr,
            metrics_addr,
            generated,
            stop,
            server,
        }
    }
}

/// Every application's store, opened for serving (see [`crate::storage::open_waiting`]) at
/// once.
async fn open_stores(config: &Config) -> Result<Vec<Arc<dyn UserStore>>, StartError> {
    let apps = config.apps();
    futures_util::future::try_join_all(apps.iter().map(|app| async {
        crate::storage::open_waiting(&app.config)
            .await
            .map_err(|err| StartError::from(err).in_app(config, &app.name))
    }))
    .await
}

impl Ready {
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The address the main port listens on (the real port for `listen: ...:0`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://` or `https://` and the address the server listens on.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.app.config.server.scheme(), self.addr)
    }

    /// Where Prometheus scrapes, when metrics are on.
    pub fn metrics_url(&self) -> Option<String> {
        match (self.metrics_addr, self.app.config.metrics.enabled) {
            (Some(addr), _) => Some(format!("http://{addr}/metrics")),
            (None, true) => Some(format!("{}/metrics", self.base_url())),
            (None, false) => None,
        }
    }

    /// Serves until SIGINT, SIGTERM or [`Stop::stop`] (see [`serve_configured`]).
    pub async fn run(self) -> Result<(), StartError> {
        served(self.server.await)
    }

    /// What stops this server from elsewhere, as a signal does.
    pub fn stopper(&self) -> Stop {
        self.stop.clone()
    }

    /// Whether the server has stopped serving (stopped, or failed).
    pub fn is_finished(&self) -> bool {
        self.server.is_finished()
    }

    /// Stops the server and waits until the requests in flight are answered.
    pub async fn stop(self) -> Result<(), StartError> {
        self.stop.stop();
        self.run().await
    }
}

/// How the server task ended: its own I/O error, or a panic, as [`StartError::Serve`].
fn served(joined: Result<std::io::Result<()>, tokio::task::JoinError>) -> Result<(), StartError> {
    joined
        .map_err(std::io::Error::other)
        .and_then(|served| served)
        .map_err(StartError::Serve)
}

/// What the main port answers while the store is being opened: `/healthz` is up, `/readyz` and
/// everything else are 503 with `Retry-After`. Once the application is set, it answers
/// everything.
struct Starting {
    ready: Arc<OnceLock<BoxEndpoint<'static, Response>>>,
}

impl Endpoint for Starting {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if let Some(app) = self.ready.get() {
            return app.call(req).await;
        }
        let path = req.uri().path();
        if path == "/healthz" {
            return Ok(Json(serde_json::json!({ "status": "ok" })).into_response());
        }
        // The request log is the application's, which does not exist yet: without this line a
        // call answered here would show only in the load balancer's log. Readiness probes,
        // expected to fail now, are not logged.
        if path != "/readyz" {
            tracing::warn!(
                method = %req.method(),
                path,
                status = 503,
                "answered 503 storage_unavailable: the server is starting (the database is not \
                 open yet)"
            );
        }
        Ok(ApiError::new(
            poem::http::StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "the server is starting: waiting for the user database",
        )
        .into_response())
    }
}

/// Logs to standard error, as `log` configures (`RUST_LOG` wins when set). Only the first call
/// in a process takes effect.
pub fn init_logging(log: &LogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // sqlx logs a connection parameter it does not know with its value, at WARN: a `?sslpassword=`
    // in the URL would be printed in clear. Those targets say nothing else; they stay off
    // whatever the level.
    let filter = ["sqlx_postgres::options", "sqlx_mysql::options"]
        .into_iter()
        .fold(filter, |filter, target| {
            filter.add_directive(format!("{target}=off").parse().expect("a valid directive"))
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Binds the configured address; the returned acceptor knows the real port (for `listen: ...:0`).
async fn bind(listen: &str) -> std::io::Result<impl Acceptor> {
    TcpListener::bind(listen.to_owned()).into_acceptor().await
}

/// Why the server cannot listen.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("server.tls.{key}: cannot read {}: {source}", path.display())]
    ReadTls {
        key: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("server.tls.{key}: {} cannot be used: {reason}", path.display())]
    Tls {
        key: &'static str,
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("server.listen {listen}{}: {source}", if *tls { " (TLS)" } else { "" })]
    Listen {
        listen: String,
        tls: bool,
        source: std::io::Error,
    },
}

/// Binds the address, with TLS (rustls, `tls.rs`) when a certificate and key are configured.
pub async fn bind_server(
    listen: &str,
    tls: Option<&crate::config::TlsConfig>,
) -> Result<BoxAcceptor, BindError> {
    // The certificate and key are read and checked before the port is taken.
    let tls = tls.map(tls::server_config).transpose()?;
    let is_tls = tls.is_some();
    let acceptor = TcpListener::bind(listen.to_owned())
        .into_acceptor()
        .await
        .map_err(|source| BindError::Listen {
            listen: listen.to_owned(),
            tls: is_tls,
            source,
        })?;
    Ok(match tls {
        None => acceptor.boxed(),
        Some(config) => tls::TlsAcceptor::new(acceptor, config).boxed(),
    })
}

/// Serves until SIGINT, SIGTERM or `stop`, then lets in-flight requests finish within
/// `server.shutdown_timeout`, with every connection limit of `server.*` (see `conn.rs`): the
/// idle timeout, the deadline for a request head and the number of open connections.
async fn serve_configured(
    acceptor: impl Acceptor + 'static,
    endpoint: impl Endpoint + 'static,
    server: &crate::config::ServerConfig,
    stop: Stop,
) -> std::io::Result<()> {
    let shutdown = async move {
        tokio::select! {
            _ = shutdown_signal() => {}
            _ = stop.requested() => tracing::info!("shutting down: finishing in-flight requests"),
        }
    };
    Server::new_with_acceptor(crate::conn::Guarded::new(acceptor, server))
        .run_with_graceful_shutdown(endpoint, shutdown, Some(server.shutdown_timeout))
        .await
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
