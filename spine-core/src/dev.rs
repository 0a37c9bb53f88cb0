//! A broker for a first run with nothing installed: librdkafka's in-process
//! mock cluster. It speaks the Kafka protocol on loopback ports, supports
//! consumer groups and offset commits, and lives as long as the value.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::error::Error;

/// An in-process Kafka cluster (librdkafka's mock). For examples, demos and
/// `spine dev`; tests of the framework itself use a real broker.
pub struct MockKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl MockKafka {
    /// Starts a mock cluster with `brokers` brokers.
    pub fn start(brokers: i32) -> Result<MockKafka, Error> {
        Ok(MockKafka {
            cluster: MockCluster::new(brokers)?,
        })
    }

    /// The `bootstrap.servers` list of the cluster.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Creates a topic (the mock does not support the CreateTopics admin API).
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), Error> {
        self.cluster.create_topic(name, partitions, 1)?;
        Ok(())
    }
}

impl std::fmt::Debug for MockKafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockKafka")
            .field("bootstrap_servers", &self.bootstrap_servers())
            .finish()
    }
}
