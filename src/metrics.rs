//! Prometheus metrics, through the `metrics` facade and its Prometheus exporter.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `ownid_bridge_requests_total` | counter | `app`, `operation`, `status` |
//! | `ownid_bridge_request_duration_seconds` | histogram | `app`, `operation` |
//! | `ownid_bridge_signature_failures_total` | counter | `app`, `reason` |
//! | `ownid_bridge_storage_errors_total` | counter | `app`, `kind` (`unavailable`, `contention`, `too_large`, `other`) |
//! | `ownid_bridge_storage_retries_total` | counter | `app`, `operation`: operations run again after contention |
//! | `ownid_bridge_storage_pool_connections` | gauge | `app`, `state` (`in_use`, `idle`, `max`) |
//! | `ownid_bridge_connections_open` | gauge | (none): client connections open now (`conn.rs`) |
//! | `ownid_bridge_connections_refused_total` | counter | `reason` (`per_address`; `conn.rs`) |
//! | `ownid_bridge_build_info` | gauge, always 1 | `version`, `backends` (those compiled in) |
//! | `process_*` | | CPU seconds, resident and virtual memory, open and maximum file descriptors, threads, start time (the `metrics-process` crate) |
//!
//! Every metric has its `# HELP` line (see [`describe`]).
//!
//! `app` is the OwnID application that answered (`default` without `apps` in the
//! configuration), and empty for the routes the server has once (health, documents, metrics) and
//! for the command line's own storage calls.
//!
//! `operation` is one of the three OwnID operations (the `OperationId` poem-openapi attaches to
//! the response once an operation ran) or the name of another route, and `other` for anything
//! unknown, so that no caller can grow the number of series.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use ownid_bridge_store::UserStore;

const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once; `None` when another recorder was installed first
/// (then nothing is exported, and the routes say so).
fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "ownid_bridge_request_duration_seconds".into(),
                    ),
                    &DURATION_BUCKETS,
                )
                .expect("non-empty buckets")
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            spawn_upkeep(handle.clone());
            Some(handle)
        })
        .as_ref()
}

/// Reads the process's CPU, memory, file descriptors and threads at each scrape.
fn process() -> &'static metrics_process::Collector {
    static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();
    PROCESS.get_or_init(metrics_process::Collector::default)
}

/// The `# HELP` text of every metric, and the build information, once the recorder is installed.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "ownid_bridge_requests_total",
        "HTTP requests answered, by application, operation (an OwnID operation, another route, or other) and status."
    );
    describe_histogram!(
        "ownid_bridge_request_duration_seconds",
        Unit::Seconds,
        "Time from the request's arrival to its answer, by application and operation."
    );
    describe_counter!(
        "ownid_bridge_signature_failures_total",
        "Requests refused by the signature check, by application and reason (missing_signature, stale_timestamp, invalid_signature, replayed_request)."
    );
    describe_counter!(
        "ownid_bridge_storage_errors_total",
        "Storage operations that failed, by application and kind (unavailable, contention, too_large, other)."
    );
    describe_counter!(
        "ownid_bridge_storage_retries_total",
        "Storage operations run again after a conflict with another statement, by application and operation."
    );
    describe_gauge!(
        "ownid_bridge_storage_pool_connections",
        "Database connections of each application's pool, by state (in_use, idle, max), read at each scrape."
    );
    describe_gauge!(
        "ownid_bridge_connections_open",
        "Client connections open now (at most server.max_connections)."
    );
    describe_counter!(
        "ownid_bridge_connections_refused_total",
        "Client connections closed on accept, by reason (per_address: server.max_connections_per_address reached)."
    );
    describe_gauge!(
        "ownid_bridge_build_info",
        "Always 1; the labels say which build is running: its version and the storage backends compiled in."
    );
    let backends: Vec<&str> = [
        ("sqlite", cfg!(feature = "sqlite")),
        ("postgres", cfg!(feature = "postgres")),
        ("mysql", cfg!(feature = "mysql")),
        ("mongodb", cfg!(feature = "mongodb")),
    ]
    .into_iter()
    .filter_map(|(name, compiled)| compiled.then_some(name))
    .collect();
    metrics::gauge!(
        "ownid_bridge_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "backends" => backends.join(",")
    )
    .set(1.0);
    process().describe();
}

/// How often histogram samples are folded into their buckets when nobody scrapes `/metrics`.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The exporter keeps every histogram sample until an upkeep (or a scrape) folds it into the
/// buckets (a value and an `Instant`, 24 bytes a request): without this, a server nobody scrapes
/// grows for ever. A thread of its own, so that it runs whatever runtime the recorder was
/// installed from.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            handle.run_upkeep();
        });
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "could not start the metrics upkeep thread; histogram samples are folded only when /metrics is scraped");
    }
}

/// Makes sure the recorder exists before the first request is counted.
pub fn init() {
    if handle().is_none() {
        tracing::warn!("another metrics recorder is installed; /metrics will be empty");
    }
}

/// The routes whose names may appear as the `operation` label.
const KNOWN: [&str; 10] = [
    "setOwnIDDataByLoginId",
    "getOwnIDDataByLoginId",
    "getSessionByLoginId",
    "healthz",
    "readyz",
    "metrics",
    "docs",
    "openapi.json",
    "openapi.yaml",
    "jwks",
];

/// The `operation` label for a request path, for the requests no OwnID operation answered
/// (other routes, and requests the middlewares refused before the operation ran).
pub fn operation(path: &str, is_jwks: bool) -> &'static str {
    if is_jwks {
        return "jwks";
    }
    let last = path.rsplit('/').next().unwrap_or_default();
    KNOWN
        .iter()
        .find(|known| **known == last)
        .copied()
        .unwrap_or("other")
}

tokio::task_local! {
    /// The application whose request the current task is answering (see [`in_app`]).
    static APP: &'static str;
}

/// The application's name on its responses, read by the request log.
#[derive(Clone, Copy, Debug)]
pub struct AppName(pub &'static str);

/// Runs an application's request with its name known to every metric recorded meanwhile (a task
/// local) and, when the server has several applications, to every log line (a span); marks the
/// response with [`AppName`].
///
/// The inner call's future is boxed first: it is the whole middleware and operation stack, and
/// moved inline through the span and the task local it was copied three more times per request
/// (about 9,000 more instructions per request under callgrind; docs/benchmarks.md, "Paired
/// A/B: several OwnID applications").
pub async fn in_app<E: poem::Endpoint>(
    app: &'static str,
    several: bool,
    next: E,
    req: poem::Request,
) -> poem::Result<poem::Response> {
    use poem::IntoResponse as _;
    use tracing::Instrument as _;
    let span = if several {
        tracing::info_span!("app", app)
    } else {
        tracing::Span::none()
    };
    let call = Box::pin(next.call(req));
    let answered = APP.scope(app, call.instrument(span)).await;
    let mut response = match answered {
        Ok(response) => response.into_response(),
        Err(err) => crate::error::error_response(err),
    };
    response.set_data(AppName(app));
    Ok(response)
}

fn current_app() -> &'static str {
    APP.try_with(|app| *app).unwrap_or("")
}

pub fn record_request(app: &'static str, operation: &'static str, status: u16, seconds: f64) {
    metrics::counter!(
        "ownid_bridge_requests_total",
        "app" => app,
        "operation" => operation,
        "status" => status_label(status)
    )
    .increment(1);
    metrics::histogram!(
        "ownid_bridge_request_duration_seconds",
        "app" => app,
        "operation" => operation
    )
    .record(seconds);
}

/// The `status` label without an allocation for the statuses the server answers with.
fn status_label(status: u16) -> metrics::SharedString {
    let known = match status {
        200 => "200",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        413 => "413",
        431 => "431",
        500 => "500",
        503 => "503",
        other => return other.to_string().into(),
    };
    known.into()
}

pub fn record_signature_failure(app: &'static str, reason: &'static str) {
    metrics::counter!(
        "ownid_bridge_signature_failures_total",
        "app" => app,
        "reason" => reason
    )
    .increment(1);
}

pub fn record_storage_error(kind: &'static str) {
    metrics::counter!(
        "ownid_bridge_storage_errors_total",
        "app" => current_app(),
        "kind" => kind
    )
    .increment(1);
}

pub fn record_storage_retry(operation: &'static str) {
    metrics::counter!(
        "ownid_bridge_storage_retries_total",
        "app" => current_app(),
        "operation" => operation
    )
    .increment(1);
}

/// The exposition text, with every application's pool gauges read now.
pub fn render(stores: &[(&'static str, std::sync::Arc<dyn UserStore>)]) -> String {
    for (app, store) in stores {
        let Some(pool) = store.pool_status() else {
            continue;
        };
        let gauge = |state: &'static str, value: u32| {
            metrics::gauge!(
                "ownid_bridge_storage_pool_connections",
                "app" => *app,
                "state" => state
            )
            .set(f64::from(value));
        };
        gauge("in_use", pool.in_use);
        gauge("idle", pool.idle);
        gauge("max", pool.max);
    }
    match handle() {
        Some(handle) => {
            process().collect();
            handle.run_upkeep();
            handle.render()
        }
        None => String::from("# metrics unavailable: another recorder is installed\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::{operation, status_label};

    #[test]
    fn status_labels_are_the_numbers() {
        for status in [200, 204, 302, 400, 404, 418, 431, 503, 599] {
            assert_eq!(status_label(status).as_ref(), status.to_string());
        }
    }

    #[test]
    fn operations_are_a_closed_set() {
        assert_eq!(
            operation("/ownid/getSessionByLoginId", false),
            "getSessionByLoginId"
        );
        assert_eq!(operation("/healthz", false), "healthz");
        assert_eq!(operation("/.well-known/jwks.json", true), "jwks");
        assert_eq!(operation("/ownid/../../etc/passwd", false), "other");
        assert_eq!(operation("/random-path-123", false), "other");
    }
}
