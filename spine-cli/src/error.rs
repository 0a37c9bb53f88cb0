//! The CLI's errors: each says what went wrong and what to do next.

use std::path::PathBuf;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// `spine new` was given a name that is not a valid crate name.
    #[error("`{0}` is not a valid crate name: use letters, digits, `-` and `_`, starting with a letter (e.g. `orders-service`)")]
    InvalidName(String),
    /// `spine new` would overwrite something.
    #[error("{} exists and is not empty; choose another name or --path, or remove it first", .0.display())]
    NotEmpty(PathBuf),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A template failed to render (a bug in Spine).
    #[error("template `{name}`: {source}")]
    Template {
        name: String,
        #[source]
        source: minijinja::Error,
    },
    /// The schema registry refused or failed a request.
    #[error("schema registry: {0}")]
    Registry(#[from] spine_kafka_avro::registry::RegistryError),
    /// Some schemas are invalid or incompatible; the table above says which.
    #[error("{0}")]
    Schemas(String),
    /// A Kafka operation failed.
    #[error("kafka: {0}; check --bootstrap-servers (or SPINE_BOOTSTRAP_SERVERS) and that the broker is up")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The request cannot be carried out as asked.
    #[error("{0}")]
    Refused(String),
    /// Spine's configuration could not be loaded.
    #[error("{0}")]
    Config(#[from] spine::Error),
}

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CliError {
    let path = path.into();
    move |source| CliError::Io { path, source }
}
