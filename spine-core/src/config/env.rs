//! `SPINE_*` environment overrides on top of the file.

use figment::providers::Env;
use figment::Figment;

pub(super) fn with_env(figment: Figment) -> Figment {
    // `SPINE_<SECTION>__<KEY>`; the Kafka properties and the two shorthand
    // variables are applied separately because their keys contain dots.
    figment.merge(
        Env::prefixed("SPINE_")
            .filter(|k| {
                let k = k.as_str().to_ascii_lowercase();
                k.contains("__") && !k.starts_with("kafka__")
            })
            .split("__"),
    )
}
