//! `ownid-peer`: the three OwnID endpoints written by hand, as small as a careful engineer would
//! write them, for `scripts/bench.sh peers` to run side by side with ownid-bridge.
//!
//! What it does, and nothing more: the signature check of SPEC §2 (both headers, the clock window,
//! HMAC-SHA256 over the raw body and the timestamp with the decoded secret, a constant-time
//! comparison), one JSON parse, one prepared statement per operation on the demo table `users`
//! (`login_id`, `ownid_data`) through a deadpool-postgres pool, HS256 session tokens with `sub`,
//! `iat`, `exp` and `jti`. No replay guard, logging, metrics, configuration file, retries or
//! exact-match clause: the run compares it with ownid-bridge's replay guard off, and its
//! PostgreSQL database has the C collation, where `=` already compares bytes.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use clap::Parser;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

#[derive(Parser)]
#[command(
    name = "ownid-peer",
    about = "A minimal hand-written OwnID endpoint server"
)]
struct Args {
    /// `host:port` to listen on.
    #[arg(long)]
    listen: String,
    /// `postgres://user@host:port/database` holding the demo table `users`.
    #[arg(long)]
    url: String,
    /// The shared secret, base64, as OwnID's console shows it.
    #[arg(long)]
    secret: String,
    /// The HS256 secret of the session tokens.
    #[arg(long)]
    jwt_secret: String,
    /// Connections in the pool.
    #[arg(long, default_value_t = 32)]
    pool: usize,
    /// The accepted clock skew of `ownid-timestamp`, in seconds (the benchmark pre-signs its
    /// requests, so it is long).
    #[arg(long, default_value_t = 3600)]
    max_skew: u64,
}

struct Peer {
    pool: Pool,
    key: Vec<u8>,
    max_skew_ms: u128,
    jwt_key: jsonwebtoken::EncodingKey,
    jwt_header: jsonwebtoken::Header,
}

#[derive(Deserialize)]
struct LoginRequest {
    #[serde(rename = "loginId")]
    login_id: String,
}

#[derive(Deserialize)]
struct SetRequest {
    #[serde(rename = "loginId")]
    login_id: String,
    #[serde(rename = "ownIdData")]
    ownid_data: String,
}

const GET: &str = "SELECT ownid_data FROM users WHERE login_id = $1";
const SET: &str = "UPDATE users SET ownid_data = $1 WHERE login_id = $2";
const SESSION: &str = "SELECT login_id FROM users WHERE login_id = $1";

/// An error answer: its status and `error` code.
struct Refusal(StatusCode, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn now() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl Peer {
    /// SPEC §2, before the body is parsed.
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), Refusal> {
        let unauthorized = |code| Err(Refusal(StatusCode::UNAUTHORIZED, code));
        let header = |name| headers.get(name).and_then(|value| value.to_str().ok());
        let (Some(signature), Some(timestamp)) =
            (header("ownid-signature"), header("ownid-timestamp"))
        else {
            return unauthorized("missing_signature");
        };
        let Ok(sent) = timestamp.parse::<u128>() else {
            return unauthorized("invalid_signature");
        };
        if now().as_millis().abs_diff(sent) > self.max_skew_ms {
            return unauthorized("stale_timestamp");
        }
        let Ok(provided) = BASE64.decode(signature) else {
            return unauthorized("invalid_signature");
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(body);
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        match mac.verify_slice(&provided) {
            Ok(()) => Ok(()),
            Err(_) => unauthorized("invalid_signature"),
        }
    }

    /// The request, verified and parsed.
    fn request<T: for<'de> Deserialize<'de>>(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<T, Refusal> {
        self.verify(headers, body)?;
        serde_json::from_slice(body)
            .map_err(|_| Refusal(StatusCode::BAD_REQUEST, "invalid_request"))
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, Refusal> {
        self.pool
            .get()
            .await
            .map_err(|_| Refusal(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"))
    }
}

fn internal<E>(_: E) -> Refusal {
    Refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal")
}

async fn get_ownid_data(
    State(peer): State<Arc<Peer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let request: LoginRequest = peer.request(&headers, &body)?;
    let client = peer.client().await?;
    let statement = client.prepare_cached(GET).await.map_err(internal)?;
    let row = client
        .query_opt(&statement, &[&request.login_id])
        .await
        .map_err(internal)?;
    let Some(row) = row else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    let data: Option<String> = row.get(0);
    Ok(match data.filter(|data| !data.is_empty()) {
        Some(data) => Json(serde_json::json!({ "ownIdData": data })).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

async fn set_ownid_data(
    State(peer): State<Arc<Peer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let request: SetRequest = peer.request(&headers, &body)?;
    let client = peer.client().await?;
    let statement = client.prepare_cached(SET).await.map_err(internal)?;
    let updated = client
        .execute(&statement, &[&request.ownid_data, &request.login_id])
        .await
        .map_err(internal)?;
    Ok(match updated {
        0 => StatusCode::NOT_FOUND,
        _ => StatusCode::NO_CONTENT,
    }
    .into_response())
}

async fn get_session(
    State(peer): State<Arc<Peer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let request: LoginRequest = peer.request(&headers, &body)?;
    let client = peer.client().await?;
    let statement = client.prepare_cached(SESSION).await.map_err(internal)?;
    let row = client
        .query_opt(&statement, &[&request.login_id])
        .await
        .map_err(internal)?;
    let Some(row) = row else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    let subject: String = row.get(0);
    let issued = now().as_secs();
    let expires = issued + 3600;
    let claims = serde_json::json!({
        "sub": subject,
        "iat": issued,
        "exp": expires,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    let token = jsonwebtoken::encode(&peer.jwt_header, &claims, &peer.jwt_key).map_err(internal)?;
    Ok(Json(serde_json::json!({ "token": token, "expiresAt": expires })).into_response())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let config: tokio_postgres::Config = args.url.parse()?;
    let manager = Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager).max_size(args.pool).build()?;
    let peer = Arc::new(Peer {
        pool,
        key: BASE64.decode(args.secret.trim())?,
        max_skew_ms: u128::from(args.max_skew) * 1000,
        jwt_key: jsonwebtoken::EncodingKey::from_secret(args.jwt_secret.as_bytes()),
        jwt_header: jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
    });
    let app = Router::new()
        .route("/ownid/getOwnIDDataByLoginId", post(get_ownid_data))
        .route("/ownid/setOwnIDDataByLoginId", post(set_ownid_data))
        .route("/ownid/getSessionByLoginId", post(get_session))
        .with_state(peer);
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("ownid-peer listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
