//! The application's small routes (health, readiness, static documents) and the request log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ownid_bridge_store::UserStore;
use poem::web::Json;
use poem::{handler, Endpoint, IntoResponse, Request, Response};

use crate::error::ApiError;
use crate::network::NetworkPolicy;
use crate::signature::SignatureRejected;

pub(super) fn static_body(
    body: String,
    content_type: &'static str,
) -> impl Endpoint<Output = Response> {
    poem::endpoint::make_sync(move |_| {
        Response::builder()
            .content_type(content_type)
            .body(body.clone())
    })
}

/// Swagger UI's page and icon: for callers inside `docs.allowed_networks` only (the page is
/// where staff type a shared secret), with headers that keep the page to itself: its CSP (see
/// `spec::swagger_ui_csp`), no framing, no MIME sniffing, no referrer, no caching.
pub(super) fn docs_page(
    body: String,
    content_type: &'static str,
    csp: Arc<str>,
    policy: Arc<NetworkPolicy>,
) -> impl Endpoint<Output = Response> {
    poem::endpoint::make_sync(move |req| {
        // The rule of /metrics: a reverse proxy on this host connects from loopback too, so a
        // forwarded request counts only from a trusted proxy.
        if !policy.allows_metrics(&req) {
            return crate::network::forbidden();
        }
        Response::builder()
            .content_type(content_type)
            .header("content-security-policy", &*csp)
            .header("x-frame-options", "DENY")
            .header("x-content-type-options", "nosniff")
            .header("referrer-policy", "no-referrer")
            .header("cache-control", "no-store")
            .header("cross-origin-opener-policy", "same-origin")
            .body(body.clone())
    })
}

#[handler]
pub(super) fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Every application's store, for `/readyz`.
#[derive(Clone)]
pub(super) struct Readiness(pub(super) Arc<[(&'static str, Arc<dyn UserStore>)]>);

/// Ready when every application's store answers within 5 s: `{"status": "ready", "storage":
/// backend}` for one application, `{"status": "ready", "apps": {name: backend, ...}}` for
/// several.
#[handler]
pub(super) async fn readyz(stores: poem::web::Data<&Readiness>) -> Response {
    let stores = &stores.0 .0;
    let pings = stores.iter().map(|(app, store)| async move {
        match tokio::time::timeout(Duration::from_secs(5), store.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                tracing::warn!(app, error = %err, "readiness check failed");
                false
            }
            Err(_) => {
                tracing::warn!(app, "readiness check timed out after 5s");
                false
            }
        }
    });
    if !futures_util::future::join_all(pings)
        .await
        .into_iter()
        .all(|ready| ready)
    {
        return ApiError::unavailable().into_response();
    }
    match &stores[..] {
        [(_, store)] => Json(serde_json::json!({ "status": "ready", "storage": store.backend() }))
            .into_response(),
        apps => {
            let backends: serde_json::Map<String, serde_json::Value> = apps
                .iter()
                .map(|(app, store)| ((*app).to_owned(), store.backend().into()))
                .collect();
            Json(serde_json::json!({ "status": "ready", "apps": backends })).into_response()
        }
    }
}

/// The configured paths the request log needs to name a route.
pub(super) struct LoggedPaths {
    /// Every application's `session.jwks_path`.
    pub(super) jwks: Vec<String>,
    /// Every application's base path with a trailing `/`.
    pub(super) bases: Vec<String>,
}

/// One log line per request: operation, status, latency and a request id (taken from
/// `x-request-id` when the caller sends one, and echoed back). Bodies, signatures, tokens and
/// ownIdData are never logged.
pub(super) async fn log_request<E: Endpoint>(
    next: E,
    req: Request,
    paths: Arc<LoggedPaths>,
) -> poem::Result<Response> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .filter(|value| {
            !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut response = match next.call(req).await {
        Ok(response) => response.into_response(),
        Err(err) => crate::error::error_response(err),
    };
    let status = response.status();
    let elapsed = started.elapsed().as_secs_f64();
    let latency_ms = elapsed * 1000.0;
    // An OwnID operation names itself; other routes (and requests refused before an operation
    // ran) are named by their path.
    let operation = match response.data::<poem_openapi::OperationId>() {
        Some(poem_openapi::OperationId(id)) => *id,
        None => crate::metrics::operation(&path, paths.jwks.contains(&path)),
    };
    // Set by the application that answered (`metrics::in_app`); none for the shared routes,
    // whose log lines leave the field out and whose metrics have an empty `app` label.
    let app = response
        .data::<crate::metrics::AppName>()
        .map(|crate::metrics::AppName(name)| *name);
    let rejected = response
        .data::<SignatureRejected>()
        .map(|SignatureRejected(reason)| reason.code());
    crate::metrics::record_request(app.unwrap_or(""), operation, status.as_u16(), elapsed);
    if let Some(reason) = rejected {
        crate::metrics::record_signature_failure(app.unwrap_or(""), reason);
    }
    if status.is_server_error() {
        tracing::warn!(%request_id, %method, app, operation, status = status.as_u16(), latency_ms, rejected, "request");
    } else {
        tracing::info!(%request_id, %method, app, operation, status = status.as_u16(), latency_ms, rejected, "request");
    }
    if let Ok(value) = request_id.parse() {
        response.headers_mut().insert("x-request-id", value);
    }
    if status == poem::http::StatusCode::METHOD_NOT_ALLOWED {
        // RFC 9110: a 405 names the methods the resource has. The OwnID operations take POST;
        // every other route of this server is GET.
        let allow = if paths.bases.iter().any(|base| path.starts_with(base)) {
            "POST"
        } else {
            "GET"
        };
        response.headers_mut().insert(
            poem::http::header::ALLOW,
            poem::http::HeaderValue::from_static(allow),
        );
    }
    Ok(response)
}
