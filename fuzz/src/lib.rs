//! What the fuzz target decodes against: a dev registry (the project's own,
//! serving the Confluent REST API in-process) holding two writer schemas of
//! an order, and the codec with a reader compiled from the newer one. Schema
//! id 1 decodes directly; id 2 (an older writer, without `note`) goes
//! through Avro schema resolution; any other id is unknown.

use std::sync::{Arc, OnceLock};

use spine_kafka_avro::registry::{DevRegistry, DevRegistryHandle, RegistryClient};
use spine_kafka_avro::{AvroCodec, CodecOptions};
use spine_kafka_core::codec::{CodecError, PayloadCodec, Reader};

/// The reader schema, also the writer schema of id 1.
pub const SCHEMA: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"id","type":"string"},
  {"name":"amount","type":"long"},
  {"name":"tags","type":{"type":"array","items":"string"}},
  {"name":"note","type":["null","string"],"default":null},
  {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B"]}},
  {"name":"attrs","type":{"type":"map","values":"double"}},
  {"name":"lines","type":{"type":"array","items":{"type":"record","name":"Line",
    "fields":[{"name":"sku","type":"string"},{"name":"qty","type":"int"},
              {"name":"price","type":["null","float","double"]}]}}}
]}"#;

/// An older writer: no `note`, `qty` written as an int the reader promotes.
pub const OLD_SCHEMA: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"id","type":"string"},
  {"name":"amount","type":"int"},
  {"name":"tags","type":{"type":"array","items":"string"}},
  {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B"]}},
  {"name":"attrs","type":{"type":"map","values":"float"}},
  {"name":"lines","type":{"type":"array","items":{"type":"record","name":"Line",
    "fields":[{"name":"sku","type":"string"},{"name":"qty","type":"int"},
              {"name":"price","type":["null","float","double"]}]}}}
]}"#;

/// The codec, its reader, and valid payloads of both writers.
pub struct Fixture {
    pub codec: Arc<AvroCodec>,
    pub reader: Reader,
    pub samples: Vec<Vec<u8>>,
    _runtime: tokio::runtime::Runtime,
    _registry: DevRegistryHandle,
}

/// Built once per process.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let (registry, codec, samples) = rt.block_on(async {
            let registry = DevRegistry::new()
                .start("127.0.0.1:0".parse().unwrap())
                .await
                .expect("dev registry");
            let client = RegistryClient::new(&registry.url(), Default::default()).unwrap();
            let codec = Arc::new(AvroCodec::new(
                client,
                CodecOptions {
                    auto_register: true,
                    ..Default::default()
                },
            ));
            let line = serde_json::json!({"sku": "s-1", "qty": 2, "price": 9.5});
            let new = serde_json::json!({
                "id": "o-1", "amount": 42, "tags": ["x", "y"], "note": "hi",
                "kind": "B", "attrs": {"w": 1.5}, "lines": [line, line]
            });
            let old = serde_json::json!({
                "id": "o-2", "amount": 7, "tags": [], "kind": "A",
                "attrs": {}, "lines": [{"sku": "s-2", "qty": 1, "price": null}]
            });
            let mut samples = Vec::new();
            for (topic, value, schema) in [("orders", &new, SCHEMA), ("legacy", &old, OLD_SCHEMA)] {
                let bytes = codec
                    .encode_value(topic, value, Some(schema))
                    .await
                    .expect("encodes the sample");
                codec
                    .prepare(Some(&bytes))
                    .await
                    .expect("fetches the writer schema");
                samples.push(bytes);
            }
            (registry, codec, samples)
        });
        let reader = codec.reader(Some(SCHEMA)).expect("reader");
        Fixture {
            codec,
            reader,
            samples,
            _runtime: rt,
            _registry: registry,
        }
    })
}

/// Decodes `bytes` as a consumer would: wire header, cached writer schema,
/// resolution into the reader.
pub fn decode(bytes: &[u8]) -> Result<(), CodecError> {
    let f = fixture();
    f.codec.decode(Some(bytes), &f.reader).map(|_| ())
}
