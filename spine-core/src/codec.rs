//! Payload codecs: how consumed bytes become the handler's payload type.
//! JSON is the built-in codec; a missing payload (a tombstone) decodes as JSON
//! `null`, so `Option<T>` payloads see deletions as `None`.

use serde::de::DeserializeOwned;

use crate::error::Failure;
use crate::handler::decode_failure;
use crate::record::Record;

/// Decodes the record's payload into `T`.
pub(crate) fn decode<T: DeserializeOwned>(rec: &Record<'_>) -> Result<T, Failure> {
    let bytes = rec.payload.unwrap_or(b"null");
    serde_json::from_slice(bytes).map_err(|e| {
        // Decode again, on the error path only, to name the field at fault.
        let mut de = serde_json::Deserializer::from_slice(bytes);
        match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Err(pe) if !pe.path().to_string().is_empty() && pe.path().to_string() != "." => {
                decode_failure(
                    std::any::type_name::<T>(),
                    format_args!("at `{}`: {}", pe.path(), pe.inner()),
                )
            }
            _ => decode_failure(std::any::type_name::<T>(), e),
        }
    })
}

/// Reads one top-level string field of a JSON object without decoding the rest.
/// Used by the `field:<name>` event source.
pub(crate) fn json_field<'a>(payload: &'a [u8], field: &str) -> Option<std::borrow::Cow<'a, str>> {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
    use std::borrow::Cow;
    use std::fmt;

    struct Seek<'f>(&'f str);

    impl<'de> DeserializeSeed<'de> for Seek<'_> {
        type Value = Option<Cow<'de, str>>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Seek<'_> {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                if key == self.0 && found.is_none() {
                    found = map.next_value::<Option<Cow<'de, str>>>().ok().flatten();
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }

    let mut de = serde_json::Deserializer::from_slice(payload);
    Seek(field).deserialize(&mut de).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Order {
        id: String,
        lines: Vec<Line>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Line {
        qty: u32,
    }

    fn rec(payload: &[u8]) -> Record<'_> {
        Record {
            topic: "t",
            partition: 0,
            offset: 0,
            key: None,
            payload: Some(payload),
            source: crate::record::Source::None,
        }
    }

    #[test]
    fn decode_errors_name_the_type_and_the_field() {
        let e =
            decode::<Order>(&rec(br#"{"id":"o","lines":[{"qty":1},{"qty":"x"}]}"#)).unwrap_err();
        assert!(e.message.contains("Order"), "{}", e.message);
        assert!(e.message.contains("at `lines[1].qty`"), "{}", e.message);
        let e = decode::<Order>(&rec(b"{not json")).unwrap_err();
        assert!(e.message.contains("key must be a string"), "{}", e.message);
        let e = decode::<Order>(&rec(br#"{"id":"o"}"#)).unwrap_err();
        assert!(e.message.contains("missing field `lines`"), "{}", e.message);
    }

    #[test]
    fn json_field_finds_top_level_strings_only() {
        let p = br#"{"a":{"type":"inner"},"type":"order.placed","n":1}"#;
        assert_eq!(json_field(p, "type").as_deref(), Some("order.placed"));
        assert_eq!(json_field(p, "n"), None, "not a string");
        assert_eq!(json_field(p, "missing"), None);
        assert_eq!(json_field(b"[1,2]", "type"), None);
        assert_eq!(
            json_field(b"{\"type\":\"esc\\\"aped\"}", "type").as_deref(),
            Some("esc\"aped")
        );
        assert_eq!(json_field(b"{\"type\":", "type"), None, "truncated input");
    }

    proptest::proptest! {
        #[test]
        fn json_field_never_panics(bytes: Vec<u8>, name in "[a-z]{1,4}") {
            let _ = json_field(&bytes, &name);
        }
    }
}
