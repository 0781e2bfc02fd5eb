//! The poem middleware that checks each OwnID request's headers, clock, body and signature
//! (and, with replay protection, reserves the signature) before the operation sees it.

use std::sync::Arc;
use std::time::Duration;

use ownid_bridge_store::StoreError;
use poem::error::ReadBodyError;
use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use super::shared::{SharedGuard, SharedRefusal, SharedReservation, HANDLER_DEADLINE};
use super::{
    now_ms, ReplayGuard, ReplayRefusal, Reservation, SignatureError, SignatureVerifier,
    SignedOperation, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use crate::error::ApiError;

/// Where accepted signatures are remembered: this process, or the database all instances share.
#[derive(Clone)]
pub enum Replays {
    Memory(Arc<ReplayGuard>),
    Shared(Arc<SharedGuard>),
}

/// A verified request's hold on its signature, from either guard.
enum Held {
    Memory(Reservation),
    Shared(SharedReservation),
}

/// The middleware: wraps the three OwnID operations.
#[derive(Clone)]
pub struct SignatureCheck {
    verifier: Arc<SignatureVerifier>,
    max_body_bytes: usize,
    body_timeout: Duration,
    replays: Option<Replays>,
}

impl SignatureCheck {
    pub fn new(
        verifier: Arc<SignatureVerifier>,
        max_body_bytes: usize,
        body_timeout: Duration,
    ) -> Self {
        SignatureCheck {
            verifier,
            max_body_bytes,
            body_timeout,
            replays: None,
        }
    }

    /// Accepts each signed request once within its skew window.
    pub fn with_replay_protection(mut self, replays: Replays) -> Self {
        self.replays = Some(replays);
        self
    }
}

impl<E: Endpoint> Middleware<E> for SignatureCheck {
    type Output = SignatureEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        SignatureEndpoint {
            inner,
            check: self.clone(),
        }
    }
}

pub struct SignatureEndpoint<E> {
    inner: E,
    check: SignatureCheck,
}

/// A marker the request log reads to count signature failures by reason.
#[derive(Clone, Copy, Debug)]
pub struct SignatureRejected(pub SignatureError);

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
}

impl<E: Endpoint> SignatureEndpoint<E> {
    /// Checks the request; on success, the signature's reservation in the replay guard (when
    /// replay protection is on).
    async fn verify(&self, req: &mut Request) -> Result<Option<Held>, Response> {
        let reject = |reason: SignatureError| {
            let mut response = reason.into_api_error().into_response();
            response.set_data(SignatureRejected(reason));
            response
        };
        let (Some(signature), Some(timestamp)) =
            (header(req, SIGNATURE_HEADER), header(req, TIMESTAMP_HEADER))
        else {
            return Err(reject(SignatureError::Missing));
        };
        // A header sent twice: the first line would count here, and a proxy or log that reads
        // the last one would see another request than the one verified.
        if [SIGNATURE_HEADER, TIMESTAMP_HEADER]
            .iter()
            .any(|name| req.headers().get_all(*name).iter().nth(1).is_some())
        {
            return Err(reject(SignatureError::Invalid));
        }
        let (signature, timestamp) = (signature.to_owned(), timestamp.to_owned());
        // Refused before its body is waited for when already out of the window.
        self.check
            .verifier
            .check_timestamp(&timestamp, now_ms())
            .map_err(reject)?;

        let declared = header(req, "content-length").and_then(|len| len.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.check.max_body_bytes as u64) {
            return Err(too_large(self.check.max_body_bytes));
        }
        let read = req.take_body().into_bytes_limit(self.check.max_body_bytes);
        let Ok(read) = tokio::time::timeout(self.check.body_timeout, read).await else {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request body did not arrive within {:?}",
                    self.check.body_timeout
                ),
            )
            .into_response());
        };
        let body = match read {
            Ok(body) => body,
            Err(ReadBodyError::PayloadTooLarge) => {
                return Err(too_large(self.check.max_body_bytes))
            }
            Err(err) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("the request body could not be read: {err}"),
                )
                .into_response())
            }
        };
        // And again once the body is here, which may be `server.body_timeout` later: this one
        // reading decides the window, the key's expiry and what the replay guard forgets. A copy
        // whose head came inside the window must not be judged by that earlier time, when the
        // guard may since have forgotten the signature's first use.
        let now = now_ms();
        self.check
            .verifier
            .check_timestamp(&timestamp, now)
            .map_err(reject)?;
        let mac = self
            .check
            .verifier
            .verified_mac(&body, &timestamp, &signature, now)
            .map_err(reject)?;
        let operation = SignedOperation::of(req.uri().path());
        // Checked only after the signature verifies: forged requests cannot fill the guard or
        // block a genuine one.
        let sent: i128 = timestamp.parse().unwrap_or_default();
        let expires = sent + self.check.verifier.max_skew.as_millis() as i128;
        let reservation = match &self.check.replays {
            None => None,
            Some(Replays::Memory(replays)) => {
                match replays.reserve(&mac, expires, now, operation) {
                    Ok(reservation) => Some(Held::Memory(reservation)),
                    Err(ReplayRefusal::Replayed) => return Err(reject(SignatureError::Replayed)),
                    Err(ReplayRefusal::Stale) => return Err(reject(SignatureError::Stale)),
                    Err(ReplayRefusal::Full) => {
                        tracing::warn!(
                            capacity = replays.capacity,
                            "the replay guard is full; refusing new signed requests (503) until \
                         entries expire: see ownid.replay_max_entries"
                        );
                        return Err(ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "replay_capacity",
                            "too many signed requests inside the clock-skew window; retry shortly",
                        )
                        .into_response());
                    }
                }
            }
            Some(Replays::Shared(replays)) => {
                match replays.reserve(&mac, expires, now, operation).await {
                    Ok(reservation) => Some(Held::Shared(reservation)),
                    Err(SharedRefusal::Replayed) => return Err(reject(SignatureError::Replayed)),
                    Err(SharedRefusal::Stale) => return Err(reject(SignatureError::Stale)),
                    Err(SharedRefusal::InFlight) => {
                        return Err(ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "request_in_flight",
                            "a request with this signature is being answered; retry shortly",
                        )
                        .into_response())
                    }
                    Err(SharedRefusal::Store(err)) => return Err(replay_store_error(err)),
                }
            }
        };
        // A JSON object with a key twice is ambiguous (which one did the signer mean?); refuse it
        // rather than let the parser pick the last.
        if let Err(err) = crate::json::check_unique_keys(&body) {
            return Err(ApiError::bad_request(err.to_string()).into_response());
        }
        // `Bytes` is reference-counted: the operation parses the very buffer that was verified.
        req.set_body(body);
        Ok(reservation)
    }
}

fn too_large(limit: usize) -> Response {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body is larger than {limit} bytes"),
    )
    .into_response()
}

/// The ledger could not be read or written: the request is not answered (fail closed).
fn replay_store_error(err: StoreError) -> Response {
    ApiError::from(err).into_response()
}

impl<E: Endpoint> Endpoint for SignatureEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let held = match self.verify(&mut req).await {
            Ok(held) => held,
            Err(response) => return Ok(response),
        };
        // If this future is dropped here (the client went away), the reservation is dropped with
        // it and the signature released.
        let result = match &held {
            Some(Held::Shared(_)) => {
                // Bounded, so that a reservation's lease outlives its request (see shared.rs).
                match tokio::time::timeout(HANDLER_DEADLINE, self.inner.call(req)).await {
                    Ok(result) => result.map(IntoResponse::into_response),
                    Err(_) => Ok(ApiError::from(StoreError::Unavailable(format!(
                        "the operation did not finish within {HANDLER_DEADLINE:?}"
                    )))
                    .into_response()),
                }
            }
            _ => self.inner.call(req).await.map(IntoResponse::into_response),
        };
        let status = match &result {
            Ok(response) => response.status(),
            Err(err) => err.status(),
        };
        match held {
            None => result,
            // A 5xx drops it: released, OwnID may retry with the same signature.
            Some(Held::Memory(reservation)) => {
                if !status.is_server_error() {
                    reservation.used();
                }
                result
            }
            Some(Held::Shared(reservation)) if status.is_server_error() => {
                reservation.release().await;
                result
            }
            Some(Held::Shared(reservation)) => match reservation.used().await {
                Ok(true) => result,
                Ok(false) => Ok(replay_store_error(StoreError::Unavailable(
                    "the signature's reservation passed to another request".into(),
                ))),
                Err(err) => Ok(replay_store_error(err)),
            },
        }
    }
}
