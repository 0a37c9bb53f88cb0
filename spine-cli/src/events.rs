//! `spine send` and `spine tail`: publish one event and watch a topic, JSON or
//! Avro (through the schema registry), with CloudEvents headers.

use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use spine::Publisher;

use crate::cli::{SendArgs, TailArgs, Target};
use crate::error::CliError;

/// spine.toml if present (for codecs and the registry), with the command's
/// bootstrap servers and registry.
fn config(t: &Target) -> Result<spine::Config, CliError> {
    let mut c = if t.config.exists() {
        spine::Config::from_file(&t.config)?
    } else {
        spine::Config::default()
    };
    c.set_kafka("bootstrap.servers", &t.bootstrap_servers);
    if let Some(r) = &t.registry {
        c.schema_registry.url = Some(r.clone());
    }
    if c.app.name == spine::config::AppConfig::default().name {
        c.app.name = "spine-cli".into();
    }
    Ok(c)
}

fn is_avro(c: &spine::Config, topic: &str, flag: bool) -> bool {
    flag || c.codec(topic) == Some("avro")
}

pub(crate) async fn send(args: &SendArgs) -> Result<(), CliError> {
    let value: serde_json::Value = serde_json::from_str(&args.json).map_err(|e| {
        CliError::Refused(format!(
            "the payload is not JSON ({e}); quote it: '{{\"order_id\": \"o-1\"}}'"
        ))
    })?;
    let c = config(&args.target)?;
    let publisher = Publisher::new(&c)?;
    if is_avro(&c, &args.topic, args.avro) {
        if c.schema_registry.url.is_none() {
            return Err(CliError::Refused(format!(
                "topic `{}` is Avro: pass --registry URL (or set SPINE_SCHEMA_REGISTRY_URL)",
                args.topic
            )));
        }
        let codec = spine_kafka_avro::codec_factory(&c)?;
        codec
            .prepare_encode(&args.topic, None)
            .await
            .map_err(|e| CliError::Refused(format!("no schema for `{}`: {e:?}", args.topic)))?;
        let bytes = codec.encode(&args.topic, &value, None).map_err(|e| {
            CliError::Refused(format!("the payload does not fit the schema: {e:?}"))
        })?;
        publisher
            .publish_bytes(
                &args.topic,
                &args.event,
                args.key.as_deref().map(str::as_bytes),
                &bytes,
                codec.content_type(),
            )
            .await
            .map_err(|e| CliError::Refused(e.to_string()))?;
    } else {
        publisher
            .publish(&args.topic, &args.event, args.key.as_deref(), &value)
            .await
            .map_err(|e| CliError::Refused(e.to_string()))?;
    }
    println!("Sent `{}` to {}.", args.event, args.topic);
    Ok(())
}

pub(crate) async fn tail(args: &TailArgs) -> Result<(), CliError> {
    let c = config(&args.target)?;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.target.bootstrap_servers)
        .set("group.id", "spine-cli-tail")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50")
        .create()?;
    let md = consumer.fetch_metadata(Some(&args.topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .find(|t| t.name() == args.topic)
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if partitions.is_empty() {
        return Err(CliError::Refused(format!(
            "topic `{}` does not exist",
            args.topic
        )));
    }
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let start = if args.from_beginning {
            Offset::Beginning
        } else {
            Offset::End
        };
        tpl.add_partition_offset(&args.topic, p, start)?;
    }
    consumer.assign(&tpl)?;
    let registry = match (&c.schema_registry.url, is_avro(&c, &args.topic, args.avro)) {
        (Some(url), true) => Some(spine_kafka_avro::registry::RegistryClient::new(
            url,
            Default::default(),
        )?),
        _ => None,
    };
    let deadline = args.timeout.map(|t| Instant::now() + t);
    let mut seen = 0;
    let mut stream = consumer.stream();
    while args.count.is_none_or(|n| seen < n) {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), stream.next()).await {
                Ok(n) => n,
                Err(_) => {
                    return Err(CliError::Refused(format!(
                        "timed out after {} record(s)",
                        seen
                    )))
                }
            },
            None => stream.next().await,
        };
        let Some(item) = next else { break };
        let m = item?;
        let event = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "ce_type").and_then(|h| h.value))
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| "-".into());
        let payload = m.payload().unwrap_or_default();
        let body = match &registry {
            Some(r) => decode_avro(r, payload).await,
            None => String::from_utf8_lossy(payload).into_owned(),
        };
        let key = m
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        println!(
            "{}[{}]@{} {event} key={key} {body}",
            m.topic(),
            m.partition(),
            m.offset()
        );
        seen += 1;
    }
    Ok(())
}

/// Avro in the Confluent wire format, as JSON text.
async fn decode_avro(
    registry: &spine_kafka_avro::registry::RegistryClient,
    payload: &[u8],
) -> String {
    use spine_kafka_avro::apache_avro::{self, Schema};
    let Ok((id, body)) = spine_kafka_avro::wire::split(payload) else {
        return format!("(not Avro wire format: {} bytes)", payload.len());
    };
    let schema = match registry.schema_by_id(id).await {
        Ok(s) => s,
        Err(e) => return format!("(schema {id}: {e})"),
    };
    let decoded = Schema::parse_str(&schema.schema)
        .map_err(|e| e.to_string())
        .and_then(|s| {
            apache_avro::reader::datum::GenericDatumReader::builder(&s)
                .build()
                .and_then(|r| r.read_value(&mut &body[..]))
                .map_err(|e| e.to_string())
        })
        .and_then(|v| apache_avro::from_value::<serde_json::Value>(&v).map_err(|e| e.to_string()));
    match decoded {
        Ok(v) => v.to_string(),
        Err(e) => format!("(cannot decode with schema {id}: {e})"),
    }
}
