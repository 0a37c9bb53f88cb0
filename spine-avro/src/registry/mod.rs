//! The schema registry: a client for the Confluent REST API, and a small
//! in-process registry server speaking the same API, for tests and `spine dev`.

mod client;
pub mod compat;
#[cfg(feature = "dev-registry")]
mod server;
mod types;

pub use client::{Auth, RegistryClient, RegistryError};
#[cfg(feature = "dev-registry")]
pub use server::{DevRegistry, DevRegistryHandle};
pub use types::{
    CompatibilityLevel, CompatibilityResult, ErrorBody, RegisteredSchema, SchemaBody, SchemaById,
};
