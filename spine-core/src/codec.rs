//! Payload codecs: how consumed bytes become the handler's payload type, and
//! how outgoing values become bytes.
//!
//! JSON is built in; a missing payload (a tombstone) decodes as JSON `null`,
//! so `Option<T>` payloads see deletions as `None`. Other formats plug in
//! through [`PayloadCodec`] (`spine-avro` implements Avro with a schema
//! registry). A codec's hot-path methods are synchronous and use only cached
//! state; when they answer [`CodecError::NotReady`], the message takes the
//! slow path, which awaits [`PayloadCodec::prepare`] (fetching a schema) and
//! tries again.

use std::any::Any;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;

use crate::error::{Failure, FailureKind};
use crate::record::Record;

/// A payload decoded by a codec (for Avro, an `apache_avro::types::Value`
/// resolved to the handler's schema).
pub trait Decoded: Send + Sync {
    /// The decoded value, for the handler's [`ValueDecoder`].
    fn value(&self) -> &(dyn Any + Send + Sync);
}

/// Turns a codec's decoded value into a handler's payload type `T`, written
/// into `out`, an `Option<T>` (no allocation). `#[on]` generates one per
/// handler, for its payload type.
pub type ValueDecoder = fn(&(dyn Any + Send + Sync), out: &mut dyn Any) -> Result<(), CodecError>;

/// A handler's reader schema, compiled by a codec at startup.
pub type Reader = Arc<dyn Any + Send + Sync>;

/// Why a codec could not do its work.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Something must be fetched first ([`PayloadCodec::prepare`]).
    #[error("the codec is not ready: what it needs must be fetched first")]
    NotReady,
    /// It failed.
    #[error("{message} ({code})")]
    Failed {
        /// Stable code, e.g. `avro.schema_not_found`.
        code: &'static str,
        /// What went wrong.
        message: String,
        /// Whether it may pass (registry down): retried, never dead-lettered.
        transient: bool,
        /// Extra dead-letter headers.
        headers: Vec<(String, String)>,
    },
}

impl CodecError {
    /// A failure that waiting will not mend, with its stable code
    /// (`avro.corrupt`, ...) and no extra dead-letter headers.
    pub fn failed(code: &'static str, message: impl Into<String>) -> CodecError {
        CodecError::Failed {
            code,
            message: message.into(),
            transient: false,
            headers: Vec::new(),
        }
    }

    /// Whether waiting and trying again could help.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CodecError::Failed {
                transient: true,
                ..
            }
        )
    }

    pub(crate) fn into_failure(self, kind: FailureKind) -> Failure {
        self.into_failure_with(|message| Failure::new(kind, message))
    }

    /// The failure `make` builds from the message, with the codec's code and
    /// dead-letter headers.
    pub(crate) fn into_failure_with(self, make: impl FnOnce(String) -> Failure) -> Failure {
        match self {
            CodecError::NotReady => make("codec not ready".into()),
            CodecError::Failed {
                code,
                message,
                headers,
                ..
            } => Failure {
                code: Some(code),
                headers,
                ..make(message)
            },
        }
    }
}

/// A payload format other than JSON. See the module docs for the contract.
pub trait PayloadCodec: Send + Sync + 'static {
    /// The name topics use in `codec = "..."`.
    fn name(&self) -> &'static str;

    /// Compiles a handler's reader schema (`None`: its type declares none).
    /// Called once per handler at startup; an error fails startup.
    fn reader(&self, schema: Option<&str>) -> Result<Reader, CodecError>;

    /// Decodes a payload for `reader`, from cached state only.
    fn decode(
        &self,
        payload: Option<&[u8]>,
        reader: &Reader,
    ) -> Result<Box<dyn Decoded>, CodecError>;

    /// Like [`PayloadCodec::decode`], but lends the value to `sink` instead of
    /// boxing it: the hot path of a single handler.
    fn decode_with(
        &self,
        payload: Option<&[u8]>,
        reader: &Reader,
        sink: &mut dyn FnMut(&(dyn Any + Send + Sync)),
    ) -> Result<(), CodecError> {
        let decoded = self.decode(payload, reader)?;
        sink(decoded.value());
        Ok(())
    }

    /// The record name inside the payload, for the `record` event source.
    fn record_name(&self, payload: Option<&[u8]>) -> Result<String, CodecError>;

    /// Fetches what decoding `payload` needs.
    fn prepare<'a>(&'a self, payload: Option<&'a [u8]>) -> BoxFuture<'a, Result<(), CodecError>>;

    /// Encodes a value for `topic`, from cached state only. `schema` is the
    /// value type's own schema, when the caller knows it.
    fn encode(
        &self,
        topic: &str,
        value: &dyn erased_serde::Serialize,
        schema: Option<&str>,
    ) -> Result<Vec<u8>, CodecError>;

    /// Whether [`PayloadCodec::encode`] for `topic` has what it needs cached.
    fn encoder_ready(&self, topic: &str, schema: Option<&str>) -> bool;

    /// Fetches (or registers) what encoding for `topic` needs.
    fn prepare_encode<'a>(
        &'a self,
        topic: &'a str,
        schema: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), CodecError>>;

    /// The `content-type` header of what it encodes.
    fn content_type(&self) -> &'static str;

    /// Whether what the codec depends on (a schema registry) answers now,
    /// for the readiness probe; `Err` says what does not. Nothing by default.
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

/// Builds a codec from the app's configuration.
pub type CodecFactory =
    Arc<dyn Fn(&crate::Config) -> Result<Arc<dyn PayloadCodec>, crate::Error> + Send + Sync>;

/// A codec's decoded value and the handler's converter for it.
pub(crate) type DecodedPayload<'a> = (&'a (dyn Any + Send + Sync), Option<ValueDecoder>);

/// Converts a decoded value into the handler's payload type `T`.
pub(crate) fn from_decoded<T: 'static>((value, decoder): DecodedPayload<'_>) -> Result<T, Failure> {
    let type_name = std::any::type_name::<T>();
    let Some(decoder) = decoder else {
        return Err(decode_failure(
            type_name,
            "the handler has no decoder for this codec",
        ));
    };
    let mut slot: Option<T> = None;
    decoder(value, &mut slot)
        .map_err(|e| e.into_failure_with(|message| decode_failure(type_name, message)))?;
    slot.ok_or_else(|| {
        decode_failure(
            type_name,
            "the decoder wrote another type (a handler descriptor built by hand?)",
        )
    })
}

/// Decodes the record's payload into `T`.
pub(crate) fn decode<T: DeserializeOwned>(rec: &Record<'_>) -> Result<T, Failure> {
    let bytes = rec.payload.unwrap_or(b"null");
    serde_json::from_slice(bytes).map_err(|e| {
        // Decode again, on the error path only, to name the field at fault.
        let mut de = serde_json::Deserializer::from_slice(bytes);
        match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Err(pe) if !pe.path().to_string().is_empty() && pe.path().to_string() != "." => {
                let mut f = decode_failure(
                    std::any::type_name::<T>(),
                    format_args!("at `{}`: {}", pe.path(), pe.inner()),
                );
                f.headers.push((
                    crate::headers::dead_letter::ERROR_FIELD.to_owned(),
                    pe.path().to_string(),
                ));
                f
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

/// The failure of a payload that does not decode as the handler's type.
pub(crate) fn decode_failure(type_name: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new(
        FailureKind::Decode,
        format!("cannot decode the payload as `{type_name}`: {e}"),
    )
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
