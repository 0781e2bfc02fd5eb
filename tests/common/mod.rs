//! A `TestApp` per test: a fresh SQLite file, the real `App` endpoint, and one helper per kind of
//! request. Signed requests are signed exactly like OwnID signs them.

#![allow(dead_code)] // each test binary uses a different subset

use std::sync::Arc;

use ownid_bridge::app::App;
use ownid_bridge::config::Config;
use ownid_bridge::secret::Secret;
use ownid_bridge::signature::{now_ms, SignatureVerifier};
use ownid_bridge::storage;
use ownid_bridge_store::UserStore;
use poem::endpoint::BoxEndpoint;
use poem::test::TestClient;
use poem::EndpointExt;
use serde_json::Value;

/// SPEC §2's test vector secret.
pub const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
pub const JWT_SECRET: &str = "integration-test-jwt-secret-32-bytes-or-more";

pub struct TestApp {
    pub client: TestClient<BoxEndpoint<'static>>,
    pub store: Arc<dyn UserStore>,
    pub config: Config,
    pub dir: tempfile::TempDir,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: poem::http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {:?}", self.body))
    }

    /// Asserts an error response of SPEC §1: the status, a JSON body with `error` and a
    /// non-empty `message`, and nothing else.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.body);
        let body = self.json();
        assert_eq!(body["error"], code, "body: {}", self.body);
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "no message: {}",
            self.body
        );
        assert_eq!(
            body.as_object().unwrap().len(),
            2,
            "extra fields: {}",
            self.body
        );
        let content_type = self.headers.get("content-type").unwrap().to_str().unwrap();
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
    }

    pub fn assert_empty(&self, status: u16) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.body, "", "expected an empty body");
    }
}

/// Config for tests: the vector's secret, a fixed JWT secret, SQLite in `dir`, then `overrides`
/// as `OWNID_BRIDGE__...` environment pairs.
pub fn test_config(dir: &std::path::Path, overrides: &[(&str, &str)]) -> Config {
    let yaml = format!(
        "ownid: {{ shared_secret: \"{SECRET}\" }}\n\
         session: {{ secret: \"{JWT_SECRET}\" }}\n\
         storage: {{ url: \"sqlite://{}\" }}\n",
        dir.join("test.db").display()
    );
    let env: Vec<(String, String)> = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_yaml(&yaml, &env).expect("test config")
}

pub async fn spawn(overrides: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), overrides);
    let store = storage::open(&config.storage, true)
        .await
        .expect("open store");
    store.apply_schema(true).await.expect("schema");
    spawn_with_store(config, store, dir)
}

pub fn spawn_with_store(
    config: Config,
    store: Arc<dyn UserStore>,
    dir: tempfile::TempDir,
) -> TestApp {
    let (app, _) = App::new(config.clone(), store.clone()).expect("app");
    TestApp {
        client: TestClient::new(app.endpoint().boxed()),
        store,
        config,
        dir,
    }
}

pub fn verifier() -> SignatureVerifier {
    SignatureVerifier::new(&Secret::new(SECRET), std::time::Duration::from_secs(60)).unwrap()
}

pub fn sign(body: &str, timestamp: &str) -> String {
    verifier().sign(body.as_bytes(), timestamp)
}

impl TestApp {
    pub fn path(&self, operation: &str) -> String {
        format!("{}/{operation}", self.config.server.base_path)
    }

    /// POST with the given headers and raw body.
    pub async fn post(&self, operation: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.client.post(self.path(operation)).body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(request.send().await).await
    }

    /// POST signed now with the right secret, as OwnID would.
    pub async fn signed(&self, operation: &str, body: &str) -> Reply {
        let timestamp = now_ms().to_string();
        let signature = sign(body, &timestamp);
        self.post(
            operation,
            body,
            &[
                ("content-type", "application/json"),
                ("ownid-timestamp", &timestamp),
                ("ownid-signature", &signature),
            ],
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        read(self.client.get(path).send().await).await
    }

    pub async fn set_data(&self, login_id: &str, data: &str) -> Reply {
        let body = serde_json::json!({ "loginId": login_id, "ownIdData": data }).to_string();
        self.signed("setOwnIDDataByLoginId", &body).await
    }

    pub async fn get_data(&self, login_id: &str) -> Reply {
        let body = serde_json::json!({ "loginId": login_id }).to_string();
        self.signed("getOwnIDDataByLoginId", &body).await
    }

    pub async fn session(&self, login_id: &str) -> Reply {
        let body = serde_json::json!({ "loginId": login_id }).to_string();
        self.signed("getSessionByLoginId", &body).await
    }

    pub async fn add_user(&self, login_id: &str) {
        assert!(self.store.create_user(login_id).await.unwrap());
    }
}

pub async fn read(response: poem::test::TestResponse) -> Reply {
    let response = response.0;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().into_string().await.unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

/// Config for `backend` at `url`, on a fresh table `<prefix>_<uuid>` created as the demo table,
/// then `overrides`.
pub fn backend_config(
    backend: &str,
    url: &str,
    prefix: &str,
    overrides: &[(&str, &str)],
) -> Config {
    let table = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let env: Vec<(String, String)> = [
        ("OWNID_BRIDGE__STORAGE__BACKEND", backend),
        ("OWNID_BRIDGE__STORAGE__URL", url),
        ("OWNID_BRIDGE__STORAGE__USERS__TABLE", &table),
        ("OWNID_BRIDGE__STORAGE__CREATE_DEMO_TABLE", "true"),
    ]
    .iter()
    .chain(overrides)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let yaml = format!(
        "ownid: {{ shared_secret: \"{SECRET}\" }}\nsession: {{ secret: \"{JWT_SECRET}\" }}\n"
    );
    Config::from_yaml(&yaml, &env).expect("config")
}

/// Serves the app over TCP on the config's `server.listen` (use port 0), with its connection
/// limits (`server.*`) and a 1 s shutdown timeout.
pub async fn serve_tcp(
    config: Config,
    store: Arc<dyn UserStore>,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    use poem::listener::Acceptor as _;
    let (app, _) = App::new(config, store).expect("app");
    let acceptor = ownid_bridge::app::bind(&app.config.server.listen)
        .await
        .expect("bind");
    let addr = *acceptor.local_addr()[0].as_socket_addr().expect("a socket");
    let server = ownid_bridge::config::ServerConfig {
        shutdown_timeout: std::time::Duration::from_secs(1),
        ..app.config.server.clone()
    };
    let endpoint = app.endpoint();
    let task = tokio::spawn(async move {
        ownid_bridge::app::serve_configured(acceptor, endpoint, &server).await
    });
    (addr, task)
}
