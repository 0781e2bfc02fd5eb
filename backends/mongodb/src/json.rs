//! BSON field values as JSON, for token claims.

use mongodb::bson::{spec::BinarySubtype, Bson};

/// A field value as JSON for a token claim: plain JSON where the BSON type has an obvious one
/// (an ObjectId as its hex string, a date as RFC 3339, a UUID as its canonical text), relaxed
/// extended JSON otherwise.
pub(crate) fn to_json(value: Bson) -> serde_json::Value {
    match value {
        Bson::Null | Bson::Undefined => serde_json::Value::Null,
        Bson::String(text) => serde_json::Value::String(text),
        Bson::Boolean(flag) => serde_json::Value::Bool(flag),
        Bson::Int32(number) => number.into(),
        Bson::Int64(number) => number.into(),
        Bson::ObjectId(id) => serde_json::Value::String(id.to_hex()),
        Bson::Decimal128(number) => serde_json::Value::String(number.to_string()),
        Bson::DateTime(date) => match date.try_to_rfc3339_string() {
            Ok(text) => serde_json::Value::String(text),
            Err(_) => Bson::DateTime(date).into_relaxed_extjson(),
        },
        Bson::Binary(binary) if binary.subtype == BinarySubtype::Uuid => match binary.to_uuid() {
            Ok(uuid) => serde_json::Value::String(uuid.to_string()),
            Err(_) => Bson::Binary(binary).into_relaxed_extjson(),
        },
        Bson::Array(items) => items.into_iter().map(to_json).collect(),
        Bson::Document(fields) => fields
            .into_iter()
            .map(|(name, value)| (name, to_json(value)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        other => other.into_relaxed_extjson(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;
    use mongodb::bson::oid::ObjectId;

    #[test]
    fn bson_values_become_plain_json_where_they_can() {
        let id = ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").unwrap();
        assert_eq!(to_json(Bson::ObjectId(id)), "65a1b2c3d4e5f60718293a4b");
        assert_eq!(to_json(Bson::Int64(42)), 42);
        assert_eq!(to_json(Bson::Boolean(true)), true);
        assert_eq!(to_json(Bson::Null), serde_json::Value::Null);
        assert_eq!(
            to_json(Bson::Array(vec![
                Bson::String("admin".into()),
                Bson::Int32(1)
            ])),
            serde_json::json!(["admin", 1])
        );
        assert_eq!(
            to_json(Bson::Document(doc! { "org": id })),
            serde_json::json!({ "org": "65a1b2c3d4e5f60718293a4b" })
        );
        assert_eq!(
            to_json(Bson::DateTime(mongodb::bson::DateTime::from_millis(0))),
            "1970-01-01T00:00:00Z"
        );
    }
}
