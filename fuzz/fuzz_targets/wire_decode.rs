//! Any bytes, decoded as a Confluent-framed Avro payload, end as a value or a
//! named error; never a panic, a hang or unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spine_kafka_core::codec::CodecError;

fuzz_target!(|data: &[u8]| {
    match spine_fuzz::decode(data) {
        Ok(()) | Err(CodecError::NotReady) => {}
        Err(CodecError::Failed { code, .. }) => {
            assert!(
                code.starts_with("avro."),
                "an error code outside avro.*: {code}"
            )
        }
        Err(other) => panic!("an error Spine does not know: {other}"),
    }
});
