//! A pass over a JSON body that refuses duplicate object keys, which serde_json's `Value` would
//! silently resolve to the last one. Malformed JSON is left to the operation's own parser (it
//! answers 400 with a precise message); only well-formed JSON with a repeated key fails here.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// A key that appears twice in one object; the message names it.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct RepeatedKey(serde_json::Error);

/// `Err` naming the repeated key.
pub fn check_unique_keys(body: &[u8]) -> Result<(), RepeatedKey> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    match UniqueKeys.deserialize(&mut deserializer) {
        Ok(()) => Ok(()),
        Err(err) if err.is_data() => Err(RepeatedKey(err)),
        // Syntax, EOF and I/O problems: the operation's parser reports those.
        Err(_) => Ok(()),
    }
}

struct UniqueKeys;

impl<'de> DeserializeSeed<'de> for UniqueKeys {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(UniqueKeys)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!(
                    "the key {key:?} appears twice in one object"
                )));
            }
            map.next_value_seed(UniqueKeys)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::check_unique_keys;

    #[test]
    fn repeated_keys_are_refused_at_any_depth() {
        assert!(check_unique_keys(br#"{"loginId":"a","ownIdData":"b"}"#).is_ok());
        let err = check_unique_keys(br#"{"loginId":"a","loginId":"b"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"loginId\" appears twice"), "{err}");
        assert!(check_unique_keys(br#"{"x":[{"k":1,"k":2}]}"#).is_err());
        // Escapes are decoded before comparing.
        assert!(check_unique_keys(br#"{"loginId":"a","login\u0049d":"b"}"#).is_err());
    }

    #[test]
    fn malformed_json_is_left_to_the_operation() {
        for body in [&b"{"[..], b"", b"not json", b"\xff\xfe", b"[[[[[[[["] {
            assert!(check_unique_keys(body).is_ok());
        }
    }
}
