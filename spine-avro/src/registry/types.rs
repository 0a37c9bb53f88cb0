//! The JSON bodies of the Confluent Schema Registry REST API.

use serde::{Deserialize, Serialize};

/// `GET /schemas/ids/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaById {
    /// The schema text.
    pub schema: String,
    /// `AVRO` when absent.
    #[serde(
        rename = "schemaType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub schema_type: Option<String>,
}

/// A schema as registered under a subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredSchema {
    /// The subject.
    pub subject: String,
    /// Its version under the subject, from 1.
    pub version: u32,
    /// The global schema id.
    pub id: u32,
    /// The schema text.
    pub schema: String,
    /// `AVRO` when absent.
    #[serde(
        rename = "schemaType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub schema_type: Option<String>,
}

/// The body of register, lookup and compatibility requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchemaBody {
    /// The schema text.
    pub schema: String,
    /// `AVRO` when absent.
    #[serde(
        rename = "schemaType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub schema_type: Option<String>,
}

impl SchemaBody {
    pub(crate) fn avro(schema: &str) -> SchemaBody {
        SchemaBody {
            schema: schema.to_owned(),
            schema_type: None,
        }
    }
}

/// An error response: `{"error_code": 40401, "message": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Confluent's error code (40401, 40402, 40403, 409, 42201, ...).
    pub error_code: u32,
    /// What went wrong.
    pub message: String,
}

/// `POST /compatibility/...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompatibilityResult {
    /// Whether the schema may be registered.
    pub is_compatible: bool,
    /// Why not, when it may not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
}

/// A subject's compatibility rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompatibilityLevel {
    /// Consumers of the new schema can read data written with the previous one
    /// (Confluent's default).
    #[default]
    Backward,
    /// ... with every earlier one.
    BackwardTransitive,
    /// Consumers of the previous schema can read data written with the new one.
    Forward,
    /// ... every earlier one can.
    ForwardTransitive,
    /// Both backward and forward, with the previous schema.
    Full,
    /// Both, with every earlier schema.
    FullTransitive,
    /// No check.
    None,
}

impl CompatibilityLevel {
    /// Whether the rule is checked against every earlier version.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    /// Whether the new schema must read the old data.
    pub fn backward(self) -> bool {
        matches!(
            self,
            Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    /// Whether the old schema must read the new data.
    pub fn forward(self) -> bool {
        matches!(
            self,
            Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive
        )
    }
}
