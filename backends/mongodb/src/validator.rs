//! A collection's `$jsonSchema` validator as the store meets it: whether its property for the
//! login-id or ownIdData field admits OwnID's string, and `check`'s lines about it, each refusal
//! with the `collMod` that fixes it.

use mongodb::bson::{doc, Bson, Document};
use ownid_bridge_store::{checks, SchemaReport, UsersMapping, MIN_OWNID_DATA_CHARS};

use crate::schema::{number, shell};

/// The line about the collection's validator as a whole (required fields that created users
/// lack, query operators that are not read).
pub const VALIDATOR_CHECK: &str = "collection validator";

/// Why a `$jsonSchema` property refuses OwnID's string (`what the schema says`), if it does:
/// `bsonType`/`type` without "string", an `enum`, a `maxLength` under `min_length`.
fn refusal(property: &Document, min_length: Option<u64>) -> Option<String> {
    let admits_string = |value: &Bson| match value {
        Bson::String(kind) => kind == "string",
        Bson::Array(kinds) => kinds
            .iter()
            .any(|kind| matches!(kind, Bson::String(kind) if kind == "string")),
        _ => true,
    };
    for key in ["bsonType", "type"] {
        if let Some(value) = property.get(key).filter(|value| !admits_string(value)) {
            return Some(format!("{key}: {}", shell(value.clone())));
        }
    }
    if let Some(values) = property.get("enum") {
        return Some(format!("enum: {}", shell(values.clone())));
    }
    let max = number(property.get("maxLength"));
    if let (Some(max), Some(min)) = (max, min_length) {
        if max < min as i64 {
            return Some(format!("maxLength: {max}"));
        }
    }
    None
}

/// `property` changed so that it admits OwnID's string: "string" added to `bsonType`/`type`,
/// `enum` removed, a short `maxLength` removed.
fn admitting(property: &Document, min_length: Option<u64>) -> Document {
    let mut fixed = property.clone();
    for key in ["bsonType", "type"] {
        match fixed.get(key).cloned() {
            Some(Bson::String(kind)) if kind != "string" => {
                fixed.insert(key, vec![Bson::String(kind), "string".into()]);
            }
            Some(Bson::Array(mut kinds))
                if !kinds
                    .iter()
                    .any(|k| matches!(k, Bson::String(k) if k == "string")) =>
            {
                kinds.push("string".into());
                fixed.insert(key, kinds);
            }
            _ => {}
        }
    }
    fixed.remove("enum");
    if let (Some(max), Some(min)) = (number(fixed.get("maxLength")), min_length) {
        if max < min as i64 {
            fixed.remove("maxLength");
        }
    }
    fixed
}

/// What the collection's validator does to one field the store writes.
#[derive(Debug, PartialEq)]
struct Refusal {
    field: String,
    /// What the schema says: `bsonType: "int"`, `additionalProperties: false without it`.
    says: String,
    /// The refusal is about the length (`maxLength`), not the type.
    length: bool,
}

/// The collection's validator as the store meets it.
#[derive(Debug, Default, PartialEq)]
struct ValidatorReading {
    refusals: Vec<Refusal>,
    /// Fields `required` other than the login id and ownIdData: a document that
    /// `create_missing_users` inserts lacks them.
    required: Vec<String>,
    /// Top-level query operators next to (or instead of) `$jsonSchema`, which are not read.
    unread: Vec<String>,
    /// The validator with every refusal fixed, for `collMod`.
    fixed: Option<Document>,
    /// Writes are refused (not `validationAction: "warn"` or `validationLevel: "off"`).
    enforced: bool,
}

/// Reads `options.validator` (a `listCollections` entry's options) for the login-id and
/// ownIdData fields.
fn read_validator(options: &Document, login_id: &str, ownid_data: &str) -> ValidatorReading {
    let Ok(validator) = options.get_document("validator") else {
        return ValidatorReading::default();
    };
    let enforced = options.get_str("validationAction").unwrap_or("error") != "warn"
        && options.get_str("validationLevel").unwrap_or("strict") != "off";
    let mut reading = ValidatorReading {
        enforced,
        ..ValidatorReading::default()
    };
    reading.unread = validator
        .keys()
        .filter(|key| key.as_str() != "$jsonSchema")
        .cloned()
        .collect();
    let Ok(schema) = validator.get_document("$jsonSchema") else {
        return reading;
    };
    let mut fixed_schema = schema.clone();
    let properties = schema.get_document("properties").ok();
    let closed = schema.get_bool("additionalProperties") == Ok(false);
    let fields = [
        (ownid_data, Some(MIN_OWNID_DATA_CHARS)),
        (login_id, None::<u64>),
    ];
    let mut fixed_properties = properties.cloned().unwrap_or_default();
    for (field, min_length) in fields {
        match properties.and_then(|p| p.get_document(field).ok()) {
            Some(property) => {
                if let Some(says) = refusal(property, min_length) {
                    reading.refusals.push(Refusal {
                        field: field.to_owned(),
                        length: says.starts_with("maxLength"),
                        says,
                    });
                    fixed_properties.insert(field, admitting(property, min_length));
                }
            }
            None if closed => {
                reading.refusals.push(Refusal {
                    field: field.to_owned(),
                    says: "additionalProperties: false, and no property for it".into(),
                    length: false,
                });
                fixed_properties.insert(field, doc! { "bsonType": "string" });
            }
            None => {}
        }
    }
    if let Ok(required) = schema.get_array("required") {
        reading.required = required
            .iter()
            .filter_map(|name| name.as_str())
            .filter(|name| *name != login_id && *name != ownid_data && *name != "_id")
            .map(str::to_owned)
            .collect();
    }
    if !reading.refusals.is_empty() {
        fixed_schema.insert("properties", fixed_properties);
        let mut fixed = validator.clone();
        fixed.insert("$jsonSchema", fixed_schema);
        reading.fixed = Some(fixed);
    }
    reading
}

/// The lines about the fields the store writes, as the collection's validator treats them.
pub(crate) fn report_validator(report: &mut SchemaReport, m: &UsersMapping, options: &Document) {
    let name = m.table.to_string();
    let reading = read_validator(options, m.login_id.as_str(), m.ownid_data.as_str());
    let validated = options.contains_key("validator");
    let fix = reading.fixed.as_ref().map(|fixed| {
        format!(
            "db.runCommand({{\"collMod\": {}, \"validator\": {}}})",
            shell(name.as_str()),
            shell(fixed.clone())
        )
    });
    let unenforced = if reading.enforced {
        ""
    } else {
        " (the validator only logs: validationAction \"warn\" or validationLevel \"off\"; \
         writes are not refused)"
    };
    for (check, field) in [
        (checks::LOGIN_ID_COLUMN, &m.login_id),
        (checks::OWNID_DATA_COLUMN, &m.ownid_data),
    ] {
        let refused = reading
            .refusals
            .iter()
            .find(|r| r.field == field.as_str() && !r.length);
        match refused {
            Some(refusal) => {
                let detail = format!(
                    "{field}: the collection's $jsonSchema validator says {}, which refuses \
                     OwnID's string{unenforced}",
                    refusal.says
                );
                if reading.enforced {
                    report.fail(check, detail, fix.clone());
                } else {
                    report.warn(check, detail, fix.clone());
                }
            }
            None if validated => report.pass(
                check,
                format!("{field}: the collection's validator admits a string"),
            ),
            None => report.pass(
                check,
                format!("{field}: documents are schemaless, no column to check"),
            ),
        }
    }
    match reading
        .refusals
        .iter()
        .find(|r| r.field == m.ownid_data.as_str() && r.length)
    {
        Some(refusal) => {
            let detail = format!(
                "{}: the collection's $jsonSchema validator says {}, under the \
                 {MIN_OWNID_DATA_CHARS} characters OwnID needs{unenforced}",
                m.ownid_data, refusal.says
            );
            if reading.enforced {
                report.fail(checks::OWNID_DATA_WIDTH, detail, fix.clone());
            } else {
                report.warn(checks::OWNID_DATA_WIDTH, detail, fix.clone());
            }
        }
        None => report.pass(checks::OWNID_DATA_WIDTH, "BSON strings hold up to 16 MB"),
    }
    if !reading.required.is_empty() && reading.enforced {
        report.warn_unless_creating(
            VALIDATOR_CHECK,
            format!(
                "the validator requires {}, which a user created by create_missing_users \
                 (a document of {} and {} only) lacks: such creations would be refused",
                reading.required.join(", "),
                m.login_id,
                m.ownid_data
            ),
            Some(format!(
                "drop them from the validator's `required` (db.runCommand({{\"collMod\": \
                 {}, \"validator\": ...}})), or leave ownid.create_missing_users off",
                shell(name.as_str())
            )),
        );
    }
    if !reading.unread.is_empty() && reading.enforced {
        report.warn(
            VALIDATOR_CHECK,
            format!(
                "the validator has query expressions ({}) that ownid-bridge does not read: \
                 make sure they admit a string in {} and {}, or writes they refuse answer \
                 500",
                reading.unread.join(", "),
                m.login_id,
                m.ownid_data
            ),
            Some(format!(
                "express the rules on these fields as $jsonSchema properties \
                 (db.runCommand({{\"collMod\": {}, \"validator\": {{\"$jsonSchema\": ...}}}}))",
                shell(name.as_str())
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validated(schema: Document) -> Document {
        doc! { "validator": { "$jsonSchema": schema } }
    }

    #[test]
    fn a_validator_that_refuses_strings_is_named_with_its_fix() {
        let options = validated(doc! {
            "bsonType": "object",
            "properties": {
                "ownid_data": { "bsonType": "object", "description": "profile" },
                "login_id": { "bsonType": ["int", "long"] },
            },
        });
        let reading = read_validator(&options, "login_id", "ownid_data");
        assert!(reading.enforced);
        assert_eq!(
            reading.refusals,
            [
                Refusal {
                    field: "ownid_data".into(),
                    says: "bsonType: \"object\"".into(),
                    length: false
                },
                Refusal {
                    field: "login_id".into(),
                    says: "bsonType: [\"int\",\"long\"]".into(),
                    length: false
                },
            ]
        );
        let fixed = reading.fixed.unwrap();
        let properties = fixed
            .get_document("$jsonSchema")
            .unwrap()
            .get_document("properties")
            .unwrap();
        assert_eq!(
            properties.get_document("ownid_data").unwrap(),
            &doc! { "bsonType": ["object", "string"], "description": "profile" }
        );
        assert_eq!(
            properties.get_document("login_id").unwrap(),
            &doc! { "bsonType": ["int", "long", "string"] }
        );
        // The fixed validator refuses nothing.
        let again = read_validator(&doc! { "validator": fixed }, "login_id", "ownid_data");
        assert!(again.refusals.is_empty(), "{again:?}");
    }

    #[test]
    fn enums_short_max_lengths_and_closed_schemas_refuse_too() {
        let cases = [
            (
                doc! { "properties": { "ownid_data": { "enum": ["a", "b"] } } },
                "enum: [\"a\",\"b\"]",
                false,
            ),
            (
                doc! { "properties": { "ownid_data": { "type": "string", "maxLength": 255 } } },
                "maxLength: 255",
                true,
            ),
            (
                doc! { "properties": { "ownid_data": { "type": "number" } } },
                "type: \"number\"",
                false,
            ),
            (
                doc! { "additionalProperties": false,
                "properties": { "_id": {}, "login_id": { "bsonType": "string" } } },
                "additionalProperties: false, and no property for it",
                false,
            ),
        ];
        for (schema, says, length) in cases {
            let reading = read_validator(&validated(schema.clone()), "login_id", "ownid_data");
            assert_eq!(
                reading.refusals,
                [Refusal {
                    field: "ownid_data".into(),
                    says: says.into(),
                    length
                }],
                "{schema}"
            );
            let fixed = reading.fixed.unwrap();
            let again = read_validator(&doc! { "validator": fixed }, "login_id", "ownid_data");
            assert!(again.refusals.is_empty(), "{schema}: {again:?}");
        }
    }

    #[test]
    fn validators_that_admit_strings_or_only_warn_are_not_refusals() {
        let admitting = [
            doc! { "properties": { "ownid_data": { "bsonType": ["string", "null"] } } },
            doc! { "properties": { "ownid_data": { "type": "string", "maxLength": 100000 } } },
            doc! { "properties": { "email": { "bsonType": "string" } } },
            doc! { "additionalProperties": true, "properties": {} },
        ];
        for schema in admitting {
            let reading = read_validator(&validated(schema.clone()), "login_id", "ownid_data");
            assert!(reading.refusals.is_empty(), "{schema}: {reading:?}");
            assert!(reading.fixed.is_none());
        }
        let mut warn_only =
            validated(doc! { "properties": { "ownid_data": { "bsonType": "int" } } });
        warn_only.insert("validationAction", "warn");
        let reading = read_validator(&warn_only, "login_id", "ownid_data");
        assert!(!reading.enforced);
        assert_eq!(reading.refusals.len(), 1);
        let mut off = validated(doc! {});
        off.insert("validationLevel", "off");
        assert!(!read_validator(&off, "login_id", "ownid_data").enforced);
        let mut moderate = validated(doc! {});
        moderate.insert("validationLevel", "moderate");
        assert!(read_validator(&moderate, "login_id", "ownid_data").enforced);
        assert_eq!(
            read_validator(&doc! {}, "login_id", "ownid_data"),
            ValidatorReading::default()
        );
    }

    #[test]
    fn required_fields_and_query_operators_are_reported() {
        let options = doc! { "validator": {
            "$jsonSchema": { "required": ["_id", "login_id", "tenant", "ownid_data", "created"] },
            "status": { "$in": ["active", "locked"] },
        } };
        let reading = read_validator(&options, "login_id", "ownid_data");
        assert_eq!(reading.required, ["tenant", "created"]);
        assert_eq!(reading.unread, ["status"]);
        assert!(reading.refusals.is_empty());
    }

    /// The lines `check` prints for a validator, settled as `check` settles them.
    fn validator_lines(options: &Document, create_missing_users: bool) -> String {
        let mut report = SchemaReport::default();
        report_validator(&mut report, &UsersMapping::demo(), options);
        report.settle(create_missing_users).to_string()
    }

    #[test]
    fn check_fails_on_a_validator_that_refuses_strings_and_warns_when_it_only_logs() {
        let refusing = validated(doc! { "properties": { "ownid_data": { "bsonType": "object" } } });
        let lines = validator_lines(&refusing, false);
        assert_eq!(
            lines,
            "ok   login_id column: login_id: the collection's validator admits a string\n\
             FAIL ownid_data column: ownid_data: the collection's $jsonSchema validator says \
             bsonType: \"object\", which refuses OwnID's string\n     \
             fix: db.runCommand({\"collMod\": \"users\", \"validator\": {\"$jsonSchema\":\
             {\"properties\":{\"ownid_data\":{\"bsonType\":[\"object\",\"string\"]}}}}})\n\
             ok   ownid_data width: BSON strings hold up to 16 MB\n"
        );
        let mut logged = refusing.clone();
        logged.insert("validationAction", "warn");
        let lines = validator_lines(&logged, true);
        assert!(
            lines.contains(
                "warn ownid_data column: ownid_data: the collection's $jsonSchema validator says \
                 bsonType: \"object\", which refuses OwnID's string (the validator only logs"
            ),
            "{lines}"
        );
        assert!(!lines.contains("FAIL"), "{lines}");

        let short = validated(doc! { "properties": { "ownid_data": { "maxLength": 255 } } });
        let lines = validator_lines(&short, false);
        assert!(
            lines.contains(
                "FAIL ownid_data width: ownid_data: the collection's $jsonSchema validator says \
                 maxLength: 255, under the 5000 characters OwnID needs"
            ),
            "{lines}"
        );
        assert!(lines.contains("ok   ownid_data column"), "{lines}");

        let without_validator = validator_lines(&doc! {}, true);
        assert_eq!(
            without_validator,
            "ok   login_id column: login_id: documents are schemaless, no column to check\n\
             ok   ownid_data column: ownid_data: documents are schemaless, no column to check\n\
             ok   ownid_data width: BSON strings hold up to 16 MB\n"
        );
    }

    #[test]
    fn required_fields_fail_only_when_creating_users() {
        let options = validated(doc! { "required": ["login_id", "tenant"] });
        let safe = validator_lines(&options, false);
        assert!(
            safe.contains("warn collection validator: the validator requires tenant")
                && safe.contains("(safe while ownid.create_missing_users is off)"),
            "{safe}"
        );
        let unsafe_ = validator_lines(&options, true);
        assert!(
            unsafe_.contains("FAIL collection validator: the validator requires tenant"),
            "{unsafe_}"
        );
    }
}
