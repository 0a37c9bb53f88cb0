//! A borrowed view of one consumed Kafka record, the same for a message straight
//! from librdkafka and for a detached copy.

use rdkafka::message::{BorrowedHeaders, BorrowedMessage, Headers, Message, OwnedMessage};

use crate::headers::{CE_CORRELATION_ID, CE_ID};

/// One consumed record, borrowed. Cheap to build: nothing is copied.
#[derive(Clone, Copy)]
pub(crate) struct Record<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) payload: Option<&'a [u8]>,
    /// Where headers and the timestamp are read from, on demand: librdkafka
    /// parses a message's headers (allocating) the first time they are asked
    /// for, so a route that does not need them never pays for them.
    pub(crate) source: Source<'a>,
}

/// The message behind a [`Record`].
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    Borrowed(&'a BorrowedMessage<'a>),
    Owned(&'a OwnedMessage),
    #[cfg(test)]
    None,
}

impl<'a> Record<'a> {
    /// A view of a message from librdkafka; `topic` is its topic's name,
    /// passed in because reading it from librdkafka costs a `strlen` and a
    /// UTF-8 check per message.
    pub(crate) fn borrowed(m: &'a BorrowedMessage<'a>, topic: &'a str) -> Self {
        Record {
            topic,
            partition: m.partition(),
            offset: m.offset(),
            key: m.key(),
            payload: m.payload(),
            source: Source::Borrowed(m),
        }
    }

    pub(crate) fn owned(m: &'a OwnedMessage) -> Self {
        Record {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key(),
            payload: m.payload(),
            source: Source::Owned(m),
        }
    }

    fn headers(&self) -> Option<&'a BorrowedHeaders> {
        match self.source {
            Source::Borrowed(m) => m.headers(),
            Source::Owned(m) => m.headers().map(|h| h.as_borrowed()),
            #[cfg(test)]
            Source::None => None,
        }
    }

    /// Milliseconds since the epoch, when the message has a timestamp.
    pub(crate) fn timestamp(&self) -> Option<i64> {
        match self.source {
            Source::Borrowed(m) => m.timestamp().to_millis(),
            Source::Owned(m) => m.timestamp().to_millis(),
            #[cfg(test)]
            Source::None => None,
        }
    }

    /// The last value of header `name`.
    pub(crate) fn header(&self, name: &str) -> Option<&'a [u8]> {
        let headers = self.headers()?;
        let mut found = None;
        for i in 0..headers.count() {
            if let Some(h) = headers.try_get(i) {
                if h.key == name {
                    found = h.value;
                }
            }
        }
        found
    }

    pub(crate) fn header_str(&self, name: &str) -> Option<&'a str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every header, copied.
    pub(crate) fn headers_vec(&self) -> Vec<(String, Vec<u8>)> {
        let Some(headers) = self.headers() else {
            return Vec::new();
        };
        (0..headers.count())
            .filter_map(|i| headers.try_get(i))
            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
            .collect()
    }

    /// The event id: `ce_id`, or `topic/partition/offset` when the publisher sent none.
    pub(crate) fn event_id(&self) -> String {
        match self.header_str(CE_ID) {
            Some(id) => id.to_owned(),
            None => format!("{}/{}/{}", self.topic, self.partition, self.offset),
        }
    }

    /// The correlation id: `ce_correlationid`, else the event id (this event starts the conversation).
    pub(crate) fn correlation_id(&self) -> String {
        match self.header_str(CE_CORRELATION_ID) {
            Some(id) => id.to_owned(),
            None => self.event_id(),
        }
    }

    /// A detached copy that can outlive the consumer's buffer.
    pub(crate) fn detach(&self) -> OwnedMessage {
        OwnedMessage::new(
            self.payload.map(<[u8]>::to_vec),
            self.key.map(<[u8]>::to_vec),
            self.topic.to_owned(),
            match self.timestamp() {
                Some(ms) => rdkafka::Timestamp::CreateTime(ms),
                None => rdkafka::Timestamp::NotAvailable,
            },
            self.partition,
            self.offset,
            self.headers().map(|h| h.detach()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::CE_TYPE;
    use rdkafka::message::{Header, OwnedHeaders};

    fn message(headers: OwnedHeaders) -> OwnedMessage {
        OwnedMessage::new(
            Some(b"{}".to_vec()),
            Some(b"k".to_vec()),
            "orders".into(),
            rdkafka::Timestamp::CreateTime(7),
            2,
            41,
            Some(headers),
        )
    }

    #[test]
    fn reads_headers_and_ids() {
        let h = OwnedHeaders::new()
            .insert(Header {
                key: CE_TYPE,
                value: Some("first"),
            })
            .insert(Header {
                key: CE_TYPE,
                value: Some("order.placed"),
            })
            .insert(Header {
                key: CE_ID,
                value: Some("abc"),
            });
        let m = message(h);
        let r = Record::owned(&m);
        assert_eq!(
            r.header_str(CE_TYPE),
            Some("order.placed"),
            "last value wins"
        );
        assert_eq!(r.event_id(), "abc");
        assert_eq!(r.correlation_id(), "abc");
        assert_eq!(r.header("missing"), None);
        assert_eq!(r.headers_vec().len(), 3);
        let d = r.detach();
        assert_eq!(Record::owned(&d).header_str(CE_ID), Some("abc"));
        assert_eq!(d.offset(), 41);
    }

    #[test]
    fn synthesises_an_id_when_none_was_sent() {
        let m = message(OwnedHeaders::new());
        let r = Record::owned(&m);
        assert_eq!(r.event_id(), "orders/2/41");
    }
}
