//! Generates the client from the committed OpenAPI document, at every build where it changed.
//!
//! The generator is openapi-to-rust, not progenitor: progenitor 0.15 panics on this document
//! (`assertion failed: response_types.len() <= 1` in `progenitor-impl/src/method.rs`) because it
//! needs every success response, and every error response, of an operation to share one body
//! type, while OwnID's protocol answers an empty 204 next to a JSON 200 and an empty 404 next to
//! JSON errors. See docs/api.md, "Generate a client".
//!
//! The document is used exactly as committed. The generator's output files start with inner
//! attributes (`//!`, `#![allow(..)]`), which `include!` does not accept, so they are parsed
//! and written back without them; `src/lib.rs` puts the equivalent attributes on the modules.

use std::path::{Path, PathBuf};

use openapi_to_rust::{CodeGenerator, GeneratorConfig, SchemaAnalyzer};

const SPEC: &str = "../../openapi/openapi.json";

fn main() {
    println!("cargo::rerun-if-changed={SPEC}");
    println!("cargo::rerun-if-changed=build.rs");
    let text = std::fs::read_to_string(SPEC).unwrap_or_else(|err| panic!("reading {SPEC}: {err}"));
    let spec: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("parsing {SPEC}: {err}"));

    let mut analysis = SchemaAnalyzer::new(spec)
        .and_then(|mut analyzer| analyzer.analyze())
        .unwrap_or_else(|err| panic!("analysing {SPEC}: {err}"));
    let config = GeneratorConfig {
        spec_path: SPEC.into(),
        // Plain request/response client: no server-sent events, no tracing or retry layers.
        enable_sse_client: false,
        tracing_enabled: false,
        retry_config: None,
        ..GeneratorConfig::default()
    };
    let generated = CodeGenerator::new(config)
        .generate_all(&mut analysis)
        .unwrap_or_else(|err| panic!("generating the client from {SPEC}: {err}"));

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    for name in ["types.rs", "client.rs"] {
        let file = generated
            .files
            .iter()
            .find(|file| file.path == Path::new(name))
            .unwrap_or_else(|| panic!("the generator wrote no {name}"));
        let mut ast = syn::parse_file(&file.content)
            .unwrap_or_else(|err| panic!("the generated {name} does not parse: {err}"));
        ast.attrs.clear();
        std::fs::write(out_dir.join(name), prettyplease::unparse(&ast)).unwrap();
    }
}
