//! Several applications in one server (`apps`), in process: tests/inproc/apps.rs and
//! tests/backends/apps.rs.

use std::sync::Arc;
use std::time::Duration;

use ownid_bridge::app::App;
use ownid_bridge::config::Config;
use ownid_bridge::signature::SignatureVerifier;
use ownid_bridge::storage;
use ownid_bridge_store::UserStore;
use poem::test::TestClient;
use poem::EndpointExt as _;
use serde_json::Value;

use super::{fresh_timestamp, read, Reply};

/// The admin application's shared secret (the customer application uses the test vector's).
pub const ADMIN_SECRET: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

pub fn sign_with(secret: &str, body: &str, timestamp: &str) -> String {
    SignatureVerifier::new(
        &ownid_bridge::secret::Secret::new(secret),
        Duration::from_secs(60),
    )
    .unwrap()
    .sign(body.as_bytes(), timestamp)
}

pub struct Apps {
    pub client: TestClient<poem::endpoint::BoxEndpoint<'static>>,
    pub stores: Vec<Arc<dyn UserStore>>,
}

impl Apps {
    pub async fn start(mut config: Config) -> Apps {
        // The in-process client has no address, which the default for /docs (loopback) refuses;
        // who gets the page: tests/inproc/network.rs.
        config.docs.allowed_networks.clear();
        let mut stores = Vec::new();
        for app in config.apps() {
            let store = storage::open(&app.config.storage, true).await.unwrap();
            store
                .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
                .await
                .unwrap();
            stores.push(store);
        }
        let app = App::with_stores(config, stores.clone()).expect("the applications");
        Apps {
            client: TestClient::new(app.endpoint().boxed()),
            stores,
        }
    }

    /// POST `body` to `path`, signed now with `secret`.
    pub async fn signed(&self, path: &str, secret: &str, body: &Value) -> Reply {
        let body = body.to_string();
        let timestamp = fresh_timestamp();
        let signature = sign_with(secret, &body, &timestamp);
        let request = self
            .client
            .post(path)
            .header("content-type", "application/json")
            .header("ownid-timestamp", &timestamp)
            .header("ownid-signature", signature)
            .body(body);
        read(request.send().await).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        read(self.client.get(path).send().await).await
    }
}
