//! The configuration file's JSON Schema, derived from the configuration types (`JsonSchema`
//! beside `Deserialize` on every section), and the effective configuration as YAML.
//!
//! `ownid-bridge config schema` prints the schema; `config.schema.json` is that output, committed
//! (tests/config_schema.rs fails when it drifts), and config.example.yaml names it for editors
//! (`# yaml-language-server: $schema=...`).

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

use super::Config;

/// What a `${VAR}` reference looks like; the schema accepts one wherever the loader does.
const VAR_REFERENCE: &str = r"\$\{[A-Za-z0-9_]+(:-[^}]*)?\}";

/// The schema, draft-07 (what editors' YAML support understands best).
pub fn json_schema() -> Value {
    let mut schema: Value = SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<Config>()
        .into();
    let object = schema.as_object_mut().expect("a schema object");
    for definition in object
        .get_mut("definitions")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|definitions| definitions.values_mut())
    {
        accept_references(definition);
    }
    accept_references(&mut schema);
    schema
}

/// The schema as the committed file holds it.
pub fn json_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).expect("a schema serializes");
    text.push('\n');
    text
}

/// Every string of the file may hold `${VAR}` references, expanded before the value is typed: a
/// number, a boolean or one of a few names (`backend: ${DB_BACKEND}`) may be written as a
/// reference too. At each place a value stands (a definition, a property, a list's items), a
/// schema that would refuse a string gets a second branch that accepts one holding a reference.
fn accept_references(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    for key in ["properties", "additionalProperties", "items"] {
        match object.get_mut(key) {
            Some(Value::Object(properties)) if key == "properties" => {
                properties.values_mut().for_each(accept_references)
            }
            Some(value) => accept_references(value),
            None => {}
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for branch in object
            .get_mut(key)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            // A branch's own objects hold value places; the branch itself is not one (a
            // reference accepted by two `oneOf` branches would match neither).
            if let Some(properties) = branch.get_mut("properties").and_then(Value::as_object_mut) {
                properties.values_mut().for_each(accept_references);
            }
            if let Some(items) = branch.get_mut("items") {
                accept_references(items);
            }
        }
    }
    if refuses_strings(object) {
        wrap(object);
    }
}

fn refuses_strings(schema: &Map<String, Value>) -> bool {
    if schema.contains_key("$ref") {
        return false;
    }
    let scalar = |kind: &Value| matches!(kind.as_str(), Some("integer" | "number" | "boolean"));
    let typed = match schema.get("type") {
        Some(Value::Array(kinds)) => {
            kinds.iter().any(scalar) && !kinds.iter().any(|kind| kind == "string")
        }
        Some(kind) => scalar(kind),
        None => false,
    };
    typed || schema.contains_key("enum") || schema.contains_key("const") || {
        schema.contains_key("oneOf") || schema.contains_key("anyOf")
    } && !accepts_any_string(
        schema,
    )
}

/// Whether one of the schema's branches is a plain string, or a definition (which accepts a
/// reference itself where it needs to).
fn accepts_any_string(schema: &Map<String, Value>) -> bool {
    ["anyOf", "oneOf"]
        .iter()
        .filter_map(|key| schema.get(*key).and_then(Value::as_array))
        .flatten()
        .any(|branch| {
            branch.get("$ref").is_some()
                || branch.get("type") == Some(&Value::from("string"))
                    && branch.get("enum").is_none()
                    && branch.get("const").is_none()
        })
}

/// `{description, default, anyOf: [the schema's constraints, a string with a reference]}`.
fn wrap(schema: &mut Map<String, Value>) {
    const KEPT: [&str; 4] = ["title", "description", "default", "examples"];
    let (kept, constraints): (Map<String, Value>, Map<String, Value>) = std::mem::take(schema)
        .into_iter()
        .partition(|(key, _)| KEPT.contains(&key.as_str()));
    *schema = kept;
    schema.insert(
        "anyOf".into(),
        serde_json::json!([
            Value::Object(constraints),
            { "type": "string", "pattern": VAR_REFERENCE }
        ]),
    );
}

impl Config {
    /// The configuration as the server uses it, as YAML: every key with its value after the
    /// file, `${VAR}` references and `OWNID_BRIDGE__` overrides, secrets `[redacted]` and
    /// database passwords masked (`config show`).
    pub fn show(&self) -> String {
        serde_yaml::to_string(self).expect("the configuration serializes")
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use serde_json::Value;

    use super::json_schema_text;

    const REGENERATE: &str = "config.schema.json drifted from the configuration types; \
        regenerate it with `cargo run -q -- config schema > config.schema.json`";

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    }

    fn validator() -> jsonschema::Validator {
        let schema: Value = serde_json::from_str(&read(&root().join("config.schema.json")))
            .expect("config.schema.json is JSON");
        jsonschema::draft7::new(&schema).expect("config.schema.json is a draft-07 schema")
    }

    /// The schema's complaints about a YAML document, one line each.
    fn problems(validator: &jsonschema::Validator, yaml: &str) -> Vec<String> {
        let document: Value = match serde_yaml::from_str(yaml) {
            Ok(Value::Null) => Value::Object(Default::default()),
            Ok(document) => document,
            Err(err) => return vec![format!("not YAML: {err}")],
        };
        validator
            .iter_errors(&document)
            .map(|err| format!("{}: {err}", err.instance_path()))
            .collect()
    }

    #[test]
    fn the_committed_schema_is_the_one_the_types_give() {
        assert!(
            read(&root().join("config.schema.json")) == json_schema_text(),
            "{REGENERATE}"
        );
    }

    #[test]
    fn the_example_file_follows_the_schema_and_names_it() {
        let example = read(&root().join("config.example.yaml"));
        assert_eq!(problems(&validator(), &example), Vec::<String>::new());
        assert!(example
            .lines()
            .any(|line| line == "# yaml-language-server: $schema=./config.schema.json"));
    }

    /// Every block fenced as ```yaml in README.md and docs/ is a configuration example (YAML
    /// documents of other kinds are fenced with a second word, e.g. ```yaml compose).
    #[test]
    fn every_yaml_example_in_the_documentation_follows_the_schema() {
        let validator = validator();
        let mut files = vec![root().join("README.md")];
        let mut dirs = vec![root().join("docs")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path: PathBuf = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|ext| ext == "md") {
                    files.push(path);
                }
            }
        }
        let mut checked = 0;
        let mut failures = Vec::new();
        for file in &files {
            let text = read(file);
            let mut lines = text.lines().enumerate();
            while let Some((number, line)) = lines.next() {
                if line.trim_start() != "```yaml" {
                    continue;
                }
                let indent = line.len() - line.trim_start().len();
                let block: Vec<&str> = lines
                    .by_ref()
                    .map(|(_, line)| line)
                    .take_while(|line| line.trim_start() != "```")
                    .map(|line| line.get(indent..).unwrap_or(line.trim_start()))
                    .collect();
                checked += 1;
                for problem in problems(&validator, &block.join("\n")) {
                    failures.push(format!("{}:{}: {problem}", file.display(), number + 1));
                }
            }
        }
        assert!(checked >= 6, "only {checked} YAML examples found");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn the_schema_refuses_what_loading_refuses() {
        let validator = validator();
        for (yaml, why) in [
            ("server: { listne: \"127.0.0.1:8080\" }", "an unknown key"),
            ("storage: { backend: oracle }", "an unknown backend"),
            ("server: { max_connections: many }", "a word for a number"),
            ("ownid: { replay_protection: sometimes }", "an unknown mode"),
            (
                "storage: { users: { claims: { sub: id } } }",
                "a reserved claim",
            ),
        ] {
            assert!(
                !problems(&validator, yaml).is_empty(),
                "{why} passed: {yaml}"
            );
            assert!(
                crate::config::Config::from_yaml(yaml, &[]).is_err(),
                "{why} loaded: {yaml}"
            );
        }
        for yaml in [
            "server: { max_connections: \"${MAX_CONNECTIONS}\" }",
            "storage: { backend: \"${DB_BACKEND:-postgres}\" }",
            "ownid: { replay_protection: true, allowed_networks: \"10.0.0.0/8, 192.168.0.0/16\" }",
            "ownid: { previous_shared_secrets: [{ secret: x, expires: \"2026-12-31T00:00:00Z\" }] }",
        ] {
            assert_eq!(problems(&validator, yaml), Vec::<String>::new(), "{yaml}");
        }
    }

    /// `config show` prints a file the schema accepts, with every secret redacted.
    #[test]
    fn the_shown_configuration_follows_the_schema_and_hides_secrets() {
        let env = [
            (
                "OWNID_BRIDGE__OWNID__SHARED_SECRET",
                "c2hhcmVkLXNlY3JldC0xMjM0NTY=",
            ),
            (
                "OWNID_BRIDGE__SESSION__SECRET",
                "jwt-secret-that-is-long-enough-000",
            ),
            ("DB_PASSWORD", "hunter2"),
        ]
        .map(|(key, value)| (key.to_owned(), value.to_owned()));
        let config = crate::config::Config::from_yaml(
            "storage: { backend: postgres, url: \"postgres://app:${DB_PASSWORD}@db/app\" }\n\
             ownid: { previous_shared_secrets: [b2xkLXNlY3JldC0xMjM0NTY3OA==] }",
            &env,
        )
        .unwrap();
        let shown = config.show();
        for (_, secret) in &env {
            assert!(!shown.contains(secret.as_str()), "{shown}");
        }
        assert!(!shown.contains("b2xkLXNlY3JldC0xMjM0NTY3OA=="), "{shown}");
        assert!(shown.contains("url: postgres://app:***@db/app"), "{shown}");
        assert_eq!(problems(&validator(), &shown), Vec::<String>::new());
    }
}
