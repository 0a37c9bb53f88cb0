//! The Confluent wire format: a magic byte `0`, the writer schema's registry
//! id as 4 big-endian bytes, then the Avro binary body.

use crate::error::AvroError;

/// The first byte of every framed payload.
pub const MAGIC: u8 = 0;

/// Bytes before the Avro body.
pub const HEADER_LEN: usize = 5;

/// Splits a framed payload into its schema id and Avro body.
pub fn split(payload: &[u8]) -> Result<(u32, &[u8]), AvroError> {
    if payload.len() < HEADER_LEN {
        return Err(AvroError::TooShort { len: payload.len() });
    }
    if payload[0] != MAGIC {
        return Err(AvroError::WrongMagic { found: payload[0] });
    }
    let id = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);
    Ok((id, &payload[HEADER_LEN..]))
}

/// Frames an Avro body written with schema `id`.
pub fn frame(id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_what_it_frames() {
        let framed = frame(0x01020304, b"body");
        assert_eq!(&framed[..5], &[0, 1, 2, 3, 4]);
        assert_eq!(split(&framed).unwrap(), (0x01020304, &b"body"[..]));
    }

    #[test]
    fn names_what_is_wrong() {
        assert!(matches!(
            split(b"\x00\x00\x01"),
            Err(AvroError::TooShort { len: 3 })
        ));
        assert!(matches!(split(b""), Err(AvroError::TooShort { len: 0 })));
        assert!(matches!(
            split(b"{\"json\":1}"),
            Err(AvroError::WrongMagic { found: b'{' })
        ));
        assert_eq!(split(&[0, 0, 0, 0, 7]).unwrap(), (7, &[][..]));
    }

    proptest! {
        #[test]
        fn never_panics(bytes: Vec<u8>) {
            let _ = split(&bytes);
        }

        #[test]
        fn round_trips(id: u32, body: Vec<u8>) {
            let framed = frame(id, &body);
            let (got, rest) = split(&framed).unwrap();
            prop_assert_eq!(got, id);
            prop_assert_eq!(rest, &body[..]);
        }
    }
}
