//! Avro for Spine: the Confluent wire format, a schema registry client with a
//! schema cache, writer-to-reader schema resolution into serde types, subject
//! naming strategies, and a dev schema registry server.
//!
//! Apps use it through the `spine` crate, which installs [`AvroCodec`] for
//! topics marked `codec = "avro"`.
#![warn(missing_docs)]

mod codec;
mod error;
pub mod registry;
pub mod subject;
pub mod wire;

pub use apache_avro;
pub use codec::{codec_factory, value_decoder, AvroCodec, CodecOptions};
pub use error::AvroError;
