//! The client generated from the committed OpenAPI document, against the real server served over
//! TCP in process on a fresh SQLite file. Every call goes through the generated client; a
//! reqwest-middleware layer signs each request exactly as OwnID does, over the body bytes the
//! generated code put into the request.

use std::sync::Arc;
use std::time::Duration;

use ownid_bridge::app::{self, MissingSecrets};
use ownid_bridge::config::Config;
use ownid_bridge::secret::Secret;
use ownid_bridge::signature::{now_ms, SignatureVerifier};
use ownid_bridge::storage;
use ownid_bridge_client_tests::{
    ApiError, ApiOpError, GetOwnIdDataByLoginIdApiError, GetOwnIdDataRequest,
    GetSessionByLoginIdApiError, GetSessionRequest, HttpClient, SessionTypeParam,
    SetOwnIdDataByLoginIdApiError, SetOwnIdDataRequest,
};
use reqwest_middleware::{ClientBuilder, Middleware, Next};

/// SPEC §2's test vector secret, as in the root crate's tests.
const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// Another valid secret: signatures made with it must not verify.
const WRONG_SECRET: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
const JWT_SECRET: &str = "client-test-jwt-secret-of-32-bytes-or-more";

const ALICE: &str = "alice@example.com";
const NOBODY: &str = "nobody@example.com";
const DATA: &str = "eyJkZXZpY2VzIjpbeyJpZCI6ImFiYyJ9XX0=";

/// Signs each request the way OwnID does: `ownid-timestamp` is Unix milliseconds now, and
/// `ownid-signature` is base64(HMAC-SHA256(base64-decoded secret, body + "." + timestamp)) over
/// the body bytes exactly as the generated client serialized them.
/// Timestamps are strictly increasing: two identical bodies sent within one millisecond would
/// otherwise carry identical signatures, which the server's replay protection (on by default)
/// rightly refuses.
struct OwnIdSigner {
    verifier: SignatureVerifier,
    last: std::sync::Mutex<i128>,
}

#[async_trait::async_trait]
impl Middleware for OwnIdSigner {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let body = match request.body() {
            None => &[][..],
            Some(body) => body
                .as_bytes()
                .expect("the generated client sends buffered JSON bodies"),
        };
        let timestamp = {
            let mut last = self.last.lock().unwrap();
            *last = now_ms().max(*last + 1);
            last.to_string()
        };
        let signature = self.verifier.sign(body, &timestamp);
        let headers = request.headers_mut();
        headers.insert("ownid-timestamp", timestamp.parse().unwrap());
        headers.insert("ownid-signature", signature.parse().unwrap());
        next.run(request, extensions).await
    }
}

/// The running server and what the tests need from it.
struct Server {
    /// The base URL of the operations: the spec's server URL (`/ownid`) on the bound address.
    base_url: String,
    store: Arc<dyn ownid_bridge_store::UserStore>,
    _server: app::Ready,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "server: {{ listen: \"127.0.0.1:0\" }}\n\
             ownid: {{ shared_secret: \"{SECRET}\" }}\n\
             session: {{ secret: \"{JWT_SECRET}\" }}\n\
             storage: {{ url: \"sqlite://{}\" }}\n",
            dir.path().join("client.db").display()
        );
        let config = Config::from_yaml(&yaml, &[]).expect("test config");
        storage::open(&config.storage, true)
            .await
            .expect("open store")
            .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
            .await
            .expect("schema");
        // As `serve` starts: the one composition root, which opens the store itself.
        let server = app::start(config, MissingSecrets::Refuse)
            .await
            .expect("start")
            .open()
            .await
            .expect("open")
            .expect("not stopped");
        assert_eq!(server.app().config.server.base_path, "/ownid");
        Server {
            base_url: format!("{}/ownid", server.base_url()),
            store: server.app().apps[0].store.clone(),
            _server: server,
            _dir: dir,
        }
    }

    /// A generated client that signs with `secret`.
    fn client_signing_with(&self, secret: &str) -> HttpClient {
        let verifier =
            SignatureVerifier::new(&Secret::new(secret), Duration::from_secs(60)).unwrap();
        let http = ClientBuilder::new(reqwest::Client::new())
            .with(OwnIdSigner {
                verifier,
                last: Default::default(),
            })
            .build();
        HttpClient::with_middleware_client(http).with_base_url(&self.base_url)
    }

    /// A generated client that signs as OwnID does, with the configured shared secret.
    fn client(&self) -> HttpClient {
        self.client_signing_with(SECRET)
    }

    /// A generated client as generated: no signature headers.
    fn unsigned_client(&self) -> HttpClient {
        HttpClient::new().with_base_url(&self.base_url)
    }
}

fn get_data(login_id: &str) -> GetOwnIdDataRequest {
    GetOwnIdDataRequest {
        login_id: login_id.into(),
    }
}

fn set_data(login_id: &str, data: &str) -> SetOwnIdDataRequest {
    SetOwnIdDataRequest {
        login_id: login_id.into(),
        own_id_data: data.into(),
    }
}

fn get_session(login_id: &str) -> GetSessionRequest {
    GetSessionRequest {
        login_id: login_id.into(),
        // Optional and nullable: absent (None), null (Some(None)) or a value.
        session_type: Some(Some(SessionTypeParam::Browser)),
    }
}

/// The envelope of a response the generated method did not return as its success type.
fn api_error<T: std::fmt::Debug, E: std::fmt::Debug>(
    result: Result<T, ApiOpError<E>>,
) -> ApiError<E> {
    match result {
        Err(ApiOpError::Api(error)) => error,
        other => panic!("expected a response other than the 200, got {other:?}"),
    }
}

/// An empty response with `status`: the protocol's 204 and 404. The generated methods return
/// the 200 body as success, so these arrive as `ApiOpError::Api` with no typed body.
fn assert_empty<T: std::fmt::Debug, E: std::fmt::Debug>(
    result: Result<T, ApiOpError<E>>,
    status: u16,
) {
    let error = api_error(result);
    assert_eq!(error.status, status, "{error}");
    assert!(error.raw_body.is_empty(), "expected no body: {error}");
    assert!(error.typed.is_none(), "{error}");
}

#[tokio::test]
async fn the_three_operations_answer_as_documented() {
    let server = Server::start().await;
    assert!(server.store.create_user(ALICE).await.unwrap());
    let client = server.client();

    // A user without data: 204, empty body.
    assert_empty(
        client.get_own_id_data_by_login_id(get_data(ALICE)).await,
        204,
    );

    // Storing: 204, empty body, the operation's only success (the standard-mode document lists
    // no 200 for it), so the generated method returns it as success.
    client
        .set_own_id_data_by_login_id(set_data(ALICE, DATA))
        .await
        .expect("204: stored");

    // Reading it back: 200 with the value exactly as stored.
    let data = client
        .get_own_id_data_by_login_id(get_data(ALICE))
        .await
        .expect("200 with the data");
    assert_eq!(data.own_id_data, DATA);

    // A session: 200 with a JWT and its expiry, in the future.
    let session = client
        .get_session_by_login_id(get_session(ALICE))
        .await
        .expect("200 with a session");
    assert_eq!(session.token.split('.').count(), 3, "{}", session.token);
    let now_s = now_ms() / 1000;
    assert!(i128::from(session.expires_at) > now_s, "{session:?}");
}

#[tokio::test]
async fn an_unknown_user_is_404_with_an_empty_body_on_all_three() {
    let server = Server::start().await;
    let client = server.client();

    assert_empty(
        client.get_own_id_data_by_login_id(get_data(NOBODY)).await,
        404,
    );
    assert_empty(
        client
            .set_own_id_data_by_login_id(set_data(NOBODY, DATA))
            .await,
        404,
    );
    assert_empty(
        client.get_session_by_login_id(get_session(NOBODY)).await,
        404,
    );
    // The failed set created nobody.
    assert_empty(
        client.get_own_id_data_by_login_id(get_data(NOBODY)).await,
        404,
    );
}

#[tokio::test]
async fn unsigned_requests_are_401_missing_signature_on_all_three() {
    let server = Server::start().await;
    assert!(server.store.create_user(ALICE).await.unwrap());
    let client = server.unsigned_client();

    let error = api_error(client.get_own_id_data_by_login_id(get_data(ALICE)).await);
    assert_eq!(error.status, 401, "{error}");
    match error.typed {
        Some(GetOwnIdDataByLoginIdApiError::Status401(ref body)) => {
            assert_eq!(body.error, "missing_signature", "{error}");
            assert!(!body.message.is_empty(), "{error}");
        }
        ref other => panic!("expected the typed 401 body, got {other:?} ({error})"),
    }

    let error = api_error(
        client
            .set_own_id_data_by_login_id(set_data(ALICE, DATA))
            .await,
    );
    match error.typed {
        Some(SetOwnIdDataByLoginIdApiError::Status401(ref body)) => {
            assert_eq!(body.error, "missing_signature", "{error}")
        }
        ref other => panic!("expected the typed 401 body, got {other:?} ({error})"),
    }

    let error = api_error(client.get_session_by_login_id(get_session(ALICE)).await);
    match error.typed {
        Some(GetSessionByLoginIdApiError::Status401(ref body)) => {
            assert_eq!(body.error, "missing_signature", "{error}")
        }
        ref other => panic!("expected the typed 401 body, got {other:?} ({error})"),
    }

    // Nothing was stored by the refused set.
    assert_empty(
        server
            .client()
            .get_own_id_data_by_login_id(get_data(ALICE))
            .await,
        204,
    );
}

#[tokio::test]
async fn a_signature_made_with_another_secret_is_401_invalid_signature() {
    let server = Server::start().await;
    assert!(server.store.create_user(ALICE).await.unwrap());
    let client = server.client_signing_with(WRONG_SECRET);

    let error = api_error(client.get_own_id_data_by_login_id(get_data(ALICE)).await);
    match error.typed {
        Some(GetOwnIdDataByLoginIdApiError::Status401(ref body)) => {
            assert_eq!(body.error, "invalid_signature", "{error}")
        }
        ref other => panic!("expected the typed 401 body, got {other:?} ({error})"),
    }
}
