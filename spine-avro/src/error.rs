//! What can go wrong with Avro payloads and the schema registry, each case
//! named, and each mapped to an outcome: dead-letter it, or retry later.

use crate::registry::RegistryError;

/// An Avro decoding or encoding failure.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AvroError {
    /// The payload does not start with the Confluent magic byte `0`.
    #[error("wrong magic byte {found:#04x}: not a Confluent-framed Avro payload (expected 0x00)")]
    WrongMagic {
        /// The first byte found.
        found: u8,
    },
    /// The payload is shorter than the 5-byte header.
    #[error("payload of {len} bytes is shorter than the 5-byte Confluent header")]
    TooShort {
        /// Its length.
        len: usize,
    },
    /// The body does not decode with its writer schema.
    #[error("the Avro body does not decode with writer schema {schema_id}: {reason}")]
    Corrupt {
        /// The writer schema id in the header.
        schema_id: u32,
        /// apache-avro's explanation.
        reason: String,
    },
    /// The registry has no schema with that id (HTTP 404).
    #[error("schema id {schema_id} is unknown to the schema registry: {message}")]
    SchemaNotFound {
        /// The id from the payload header.
        schema_id: u32,
        /// The registry's message.
        message: String,
    },
    /// The writer schema cannot be read as the handler's type.
    #[error(
        "writer schema {writer_fingerprint} (id {schema_id}) cannot be read as the handler's schema \
         {reader_fingerprint}{}: {reason}",
        field.as_deref().map(|f| format!(" (field `{f}`)")).unwrap_or_default()
    )]
    Incompatible {
        /// The writer schema id.
        schema_id: u32,
        /// Rabin fingerprint of the writer schema, hex.
        writer_fingerprint: String,
        /// Rabin fingerprint of the reader schema, hex.
        reader_fingerprint: String,
        /// The field at fault, when the resolution rules name one.
        field: Option<String>,
        /// The resolution rule broken.
        reason: String,
    },
    /// The decoded value does not fit the handler's Rust type.
    #[error("the Avro value does not deserialize into the handler's type: {0}")]
    Deserialize(String),
    /// A value could not be encoded with the subject's schema.
    #[error("cannot encode as Avro for subject `{subject}`: {reason}")]
    Encode {
        /// The subject whose schema was used.
        subject: String,
        /// Why.
        reason: String,
    },
    /// The schema registry failed in a way that may pass.
    #[error("schema registry unavailable: {0}")]
    RegistryUnavailable(String),
    /// The schema registry refused a request for good.
    #[error("schema registry: {0}")]
    Registry(String),
}

impl AvroError {
    /// Whether trying again later could succeed (the registry being down).
    pub fn is_transient(&self) -> bool {
        matches!(self, AvroError::RegistryUnavailable(_))
    }

    /// A stable code, carried in dead-letter headers and metric labels.
    pub fn code(&self) -> &'static str {
        match self {
            AvroError::WrongMagic { .. } => "avro.wrong_magic",
            AvroError::TooShort { .. } => "avro.too_short",
            AvroError::Corrupt { .. } => "avro.corrupt",
            AvroError::SchemaNotFound { .. } => "avro.schema_not_found",
            AvroError::Incompatible { .. } => "avro.incompatible",
            AvroError::Deserialize(_) => "avro.deserialize",
            AvroError::Encode { .. } => "avro.encode",
            AvroError::RegistryUnavailable(_) => "avro.registry_unavailable",
            AvroError::Registry(_) => "avro.registry",
        }
    }

    pub(crate) fn from_registry(schema_id: Option<u32>, e: RegistryError) -> AvroError {
        match e {
            RegistryError::NotFound { message, .. } if schema_id.is_some() => {
                AvroError::SchemaNotFound {
                    schema_id: schema_id.unwrap_or_default(),
                    message,
                }
            }
            e if e.is_transient() => AvroError::RegistryUnavailable(e.to_string()),
            e => AvroError::Registry(e.to_string()),
        }
    }
}
