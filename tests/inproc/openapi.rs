//! The committed OpenAPI files are what the code generates and what the server serves.

use crate::common::*;
use ownid_bridge::cli::{openapi_document, SpecFormat};
use serde_json::Value;

const REGENERATE: &str = "the committed openapi/ files drifted from the code; regenerate with \
    `cargo run -- openapi --format yaml --output openapi/openapi.yaml` and \
    `cargo run -- openapi --format json --output openapi/openapi.json`";

fn committed(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("openapi")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

#[test]
fn committed_files_match_the_code() {
    assert!(
        committed("openapi.yaml") == openapi_document(SpecFormat::Yaml),
        "{REGENERATE}"
    );
    assert!(
        committed("openapi.json") == openapi_document(SpecFormat::Json),
        "{REGENERATE}"
    );
}

#[tokio::test]
async fn the_server_serves_the_committed_document() {
    let app = spawn(&[]).await;
    let json = app.get("/openapi.json").await;
    assert_eq!(json.status, 200);
    assert!(json.body == committed("openapi.json"), "{REGENERATE}");
    let yaml = app.get("/openapi.yaml").await;
    assert_eq!(yaml.status, 200);
    assert!(yaml.body == committed("openapi.yaml"), "{REGENERATE}");
}

#[tokio::test]
async fn the_servers_entry_follows_the_configured_base_path() {
    let app = spawn(&[("OWNID_BRIDGE__SERVER__BASE_PATH", "/auth/ownid/")]).await;
    let document = app.get("/openapi.json").await.json();
    assert_eq!(document["servers"][0]["url"], "/auth/ownid");
    app.get_data("nobody@example.com").await.assert_empty(404);
}

#[test]
fn every_operation_declares_every_status_it_can_return() {
    let document: Value = serde_json::from_str(&committed("openapi.json")).unwrap();
    let errors = ["400", "401", "403", "408", "413", "500", "503"];
    for (path, own) in [
        ("/setOwnIDDataByLoginId", vec!["204", "404", "409"]),
        ("/getOwnIDDataByLoginId", vec!["200", "204", "404"]),
        ("/getSessionByLoginId", vec!["200", "404"]),
    ] {
        let operation = &document["paths"][path]["post"];
        assert_eq!(operation["operationId"], path.trim_start_matches('/'));
        let responses = operation["responses"].as_object().unwrap();
        let mut declared: Vec<&str> = responses.keys().map(String::as_str).collect();
        declared.sort();
        let mut expected: Vec<&str> = own.iter().chain(errors.iter()).copied().collect();
        expected.sort();
        assert_eq!(declared, expected, "{path}");
        for status in errors {
            let json = &responses[status]["content"]["application/json"];
            assert_eq!(
                json["schema"]["$ref"], "#/components/schemas/ErrorBody",
                "{path} {status}"
            );
            // Each status shows a body it is answered with.
            let code = json["example"]["error"].as_str().unwrap_or_default();
            let expected = match status {
                "400" => "invalid_request",
                "401" => "invalid_signature",
                "403" => "forbidden",
                "408" => "request_timeout",
                "413" => "payload_too_large",
                "500" => "internal",
                _ => "storage_unavailable",
            };
            assert_eq!(code, expected, "{path} {status}");
        }
        assert!(responses["503"]["headers"]
            .as_object()
            .unwrap()
            .keys()
            .any(|name| name.eq_ignore_ascii_case("retry-after")));
        let request = &operation["requestBody"]["content"]["application/json"]["schema"]["$ref"];
        assert!(
            request.is_string(),
            "{path}: no application/json request body"
        );
        // Both signature headers are required together: one requirement naming both.
        assert_eq!(
            operation["security"],
            serde_json::json!([{ "ownidSignature": [], "ownidTimestamp": [] }]),
            "{path}"
        );
    }
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["ownidSignature"]["name"], "ownid-signature");
    assert_eq!(schemes["ownidTimestamp"]["name"], "ownid-timestamp");
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_binary_with_the_finished_document() {
    // The in-process client has no address, which the default (loopback) refuses; who gets the
    // page: tests/inproc/network.rs.
    let app = spawn(&[("OWNID_BRIDGE__DOCS__ALLOWED_NETWORKS", "")]).await;
    let reply = app.get("/docs").await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("SwaggerUIBundle"));
    assert!(reply.body.contains("\"ownidTimestamp\": []"));
    assert!(
        !reply.body.contains("<script src=\"http"),
        "the UI loads assets from elsewhere"
    );
    assert!(!reply.body.contains("<link rel=\"stylesheet\" href=\"http"));
    // The page signs Try-it-out requests itself, once a secret is entered (clients/typescript
    // drives it in Chromium).
    assert!(reply.body.contains("requestInterceptor: ownidSign,"));
    assert!(reply.body.contains("id=\"ownid-secret\""));
    assert!(reply.body.contains("<title>ownid-bridge API</title>"));
}

/// The committed document is the standard response mode's: what generators see types each
/// success as its own body (a generator given the legacy union typed a stored set as the legacy
/// body), in formats every generator knows.
#[test]
fn the_committed_document_lists_standard_answers_in_standard_formats() {
    let text = committed("openapi.json");
    for absent in [
        "LegacyError",
        "OwnIdDataResult",
        "SessionResult",
        "uint16",
        "uint32",
        "uint64",
    ] {
        assert!(!text.contains(absent), "{absent} in openapi/openapi.json");
    }
    let document: Value = serde_json::from_str(&text).unwrap();
    let schema = |path: &str| {
        document["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
            ["$ref"]
            .clone()
    };
    assert_eq!(
        schema("/getOwnIDDataByLoginId"),
        "#/components/schemas/OwnIdData"
    );
    assert_eq!(
        schema("/getSessionByLoginId"),
        "#/components/schemas/SessionToken"
    );
    let expires = &document["components"]["schemas"]["SessionToken"]["properties"]["expiresAt"];
    assert_eq!(expires["format"], "int64");
    assert_eq!(expires["minimum"], 0);
}

/// With `ownid.responses: legacy`, `openapi` and the server give the legacy document: an unknown
/// user is a 200 with the legacy body on every operation, and there is no 404 (nor a 204 on
/// getOwnIDDataByLoginId).
#[tokio::test]
async fn the_legacy_mode_document_lists_the_legacy_answers() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("legacy.yaml");
    std::fs::write(&config, "ownid: { responses: legacy }\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ownid-bridge"))
        .args(["openapi", "--format", "json", "--config"])
        .arg(&config)
        .env_remove("OWNID_BRIDGE_CONFIG")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let app = spawn(&[("OWNID_BRIDGE__OWNID__RESPONSES", "legacy")]).await;
    let served = app.get("/openapi.json").await.json();
    assert_eq!(printed, served);
    for (path, statuses, schema) in [
        (
            "/setOwnIDDataByLoginId",
            vec!["200", "204", "409"],
            "LegacyError",
        ),
        ("/getOwnIDDataByLoginId", vec!["200"], "OwnIdDataResult"),
        ("/getSessionByLoginId", vec!["200"], "SessionResult"),
    ] {
        let responses = served["paths"][path]["post"]["responses"]
            .as_object()
            .unwrap();
        let mut success: Vec<&str> = responses
            .keys()
            .map(String::as_str)
            .filter(|status| status.starts_with('2') || *status == "404" || *status == "409")
            .collect();
        success.sort();
        assert_eq!(success, statuses, "{path}");
        assert_eq!(
            responses["200"]["content"]["application/json"]["schema"]["$ref"],
            format!("#/components/schemas/{schema}"),
            "{path}"
        );
    }
    // And the server answers as its document says.
    let reply = app.get_data("nobody@example.com").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["errorCode"], 404);
}

/// The page where staff type the production secret keeps to itself: only its own inline scripts
/// and styles run (by hash: no 'unsafe-inline', no 'unsafe-eval'), it talks to its own origin
/// only, no other site may frame it, and no browser or proxy keeps a copy.
#[tokio::test]
async fn swagger_ui_is_served_with_a_strict_content_security_policy() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let app = spawn(&[("OWNID_BRIDGE__DOCS__ALLOWED_NETWORKS", "")]).await;
    let response = app.client.get("/docs").send().await;
    let header = |name: &str| {
        response
            .0
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let csp = header("content-security-policy");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("x-frame-options"), "DENY");
    let body = read(response).await.body;
    let directives: std::collections::HashMap<&str, Vec<&str>> = csp
        .split(';')
        .filter_map(|directive| {
            let mut words = directive.split_whitespace();
            Some((words.next()?, words.collect()))
        })
        .collect();
    assert_eq!(directives["default-src"], ["'none'"], "{csp}");
    assert_eq!(directives["frame-ancestors"], ["'none'"], "{csp}");
    assert_eq!(directives["connect-src"], ["'self'"], "{csp}");
    assert_eq!(directives["base-uri"], ["'none'"], "{csp}");
    assert_eq!(directives["form-action"], ["'none'"], "{csp}");
    // Every inline script and stylesheet of the page is allowed by its hash, and nothing else.
    // (Element by element: the script bundle's text spells `<script` and `<style` itself.)
    let mut expected: std::collections::HashMap<&str, Vec<String>> = Default::default();
    let mut rest = body.as_str();
    while let Some((at, tag)) = ["script", "style"]
        .into_iter()
        .filter_map(|tag| rest.find(&format!("<{tag}")).map(|at| (at, tag)))
        .min()
    {
        let element = &rest[at..];
        let start = element.find('>').unwrap() + 1;
        let end = element.find(&format!("</{tag}>")).unwrap();
        let digest = sha2::Sha256::digest(&element.as_bytes()[start..end]);
        expected.entry(tag).or_default().push(format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ));
        rest = &element[end..];
    }
    // Swagger UI's bundle and start-up script and the signing panel's; their two stylesheets.
    assert_eq!(expected["script"].len(), 3, "{csp}");
    assert_eq!(expected["style"].len(), 2, "{csp}");
    assert_eq!(directives["script-src"], expected["script"], "{csp}");
    assert_eq!(directives["style-src"], expected["style"], "{csp}");
    let icon = app.get("/docs/favicon.svg").await;
    assert_eq!(icon.status, 200);
    assert!(icon.body.starts_with("<svg"), "{}", icon.body);
    assert!(body.contains("<link rel=\"icon\" type=\"image/svg+xml\" href=\"/docs/favicon.svg\">"));
}
