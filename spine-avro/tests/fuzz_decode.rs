//! The decoder never panics: random bytes, and valid payloads with bytes
//! flipped, cut or appended, all end as a value or a named error.

use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use spine_kafka_avro::registry::{DevRegistry, RegistryClient};
use spine_kafka_avro::{AvroCodec, CodecOptions};
use spine_kafka_core::codec::{CodecError, PayloadCodec, Reader};

const SCHEMA: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"id","type":"string"},
  {"name":"amount","type":"long"},
  {"name":"tags","type":{"type":"array","items":"string"}},
  {"name":"note","type":["null","string"],"default":null},
  {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B"]}},
  {"name":"attrs","type":{"type":"map","values":"double"}}
]}"#;

struct Fixture {
    codec: Arc<AvroCodec>,
    reader: Reader,
    valid: Vec<u8>,
    _runtime: tokio::runtime::Runtime,
    _registry: spine_kafka_avro::registry::DevRegistryHandle,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (registry, codec, valid) = rt.block_on(async {
            let registry = DevRegistry::new()
                .start("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
            let client = RegistryClient::new(&registry.url(), Default::default()).unwrap();
            let codec = Arc::new(AvroCodec::new(
                client,
                CodecOptions {
                    auto_register: true,
                    ..Default::default()
                },
            ));
            let value = serde_json::json!({
                "id": "o-1", "amount": 42, "tags": ["x", "y"], "note": "hi",
                "kind": "B", "attrs": {"w": 1.5}
            });
            let valid = codec
                .encode_value("orders", &value, Some(SCHEMA))
                .await
                .expect("encodes the sample");
            codec
                .prepare(Some(&valid))
                .await
                .expect("fetches the writer schema");
            (registry, codec, valid)
        });
        let reader = codec.reader(Some(SCHEMA)).unwrap();
        Fixture {
            codec,
            reader,
            valid,
            _runtime: rt,
            _registry: registry,
        }
    })
}

fn decode(bytes: &[u8]) -> Result<(), CodecError> {
    let f = fixture();
    f.codec.decode(Some(bytes), &f.reader).map(|_| ())
}

#[test]
fn the_sample_decodes() {
    assert!(decode(&fixture().valid).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn mutated_payloads_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        tail in proptest::collection::vec(any::<u8>(), 0..8),
        mode in 0u8..3,
    ) {
        let mut bytes = fixture().valid.clone();
        match mode {
            0 => for (i, b) in &flips {
                let i = i.index(bytes.len());
                bytes[i] ^= b | 1;
            },
            1 => bytes.truncate(cut.index(bytes.len())),
            _ => bytes.extend_from_slice(&tail),
        }
        match decode(&bytes) {
            Ok(()) => {}
            Err(CodecError::Failed { code, .. }) => prop_assert!(code.starts_with("avro.")),
            // A flipped schema id is unknown until fetched: that is the slow path's job.
            Err(CodecError::NotReady) => {}
            Err(other) => prop_assert!(false, "an error Spine does not know: {other}"),
        }
    }
}
