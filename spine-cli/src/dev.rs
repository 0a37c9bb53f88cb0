//! `spine dev`: librdkafka's mock cluster and the dev schema registry, on
//! fixed local ports, until Ctrl-C.
//!
//! The mock binds ephemeral ports; clients bootstrap through a small TCP
//! forwarder on the fixed port (written here: a copy loop per connection is
//! all it needs), then follow the metadata to the mock's own ports.

use std::net::SocketAddr;

use spine::avro::DevRegistry;
use spine::dev::MockKafka;
use tokio::net::{TcpListener, TcpStream};

use crate::cli::{DevArgs, RegistryArgs, SchemaFiles, Strategy};
use crate::error::{io, CliError};

pub(crate) async fn run(args: &DevArgs) -> Result<(), CliError> {
    let mock = MockKafka::start(1)?;
    // The topics spine.toml names (3 partitions each), then --topic.
    let mut topics: Vec<String> = Vec::new();
    let toml = std::path::Path::new("spine.toml");
    if toml.exists() {
        let c = spine::Config::from_file(toml)?;
        for t in c.topics.keys().chain(&c.app.topics) {
            topics.push(format!("{t}:3"));
        }
    }
    topics.extend(args.topics.iter().cloned());
    for t in &topics {
        let (name, partitions) = match t.split_once(':') {
            Some((n, p)) => (
                n,
                p.parse::<i32>().map_err(|_| {
                    CliError::Refused(format!(
                        "--topic {t}: partitions must be a number, e.g. orders:3"
                    ))
                })?,
            ),
            None => (t.as_str(), 1),
        };
        mock.create_topic(name, partitions)?;
    }
    let target = mock.bootstrap_servers();
    let broker_addr: SocketAddr = ([127, 0, 0, 1], args.broker_port).into();
    let listener = TcpListener::bind(broker_addr).await.map_err(|e| {
        CliError::Refused(format!(
            "cannot listen on {broker_addr} ({e}); is another broker running? pick another --broker-port"
        ))
    })?;
    let registry_addr: SocketAddr = ([127, 0, 0, 1], args.registry_port).into();
    let registry = DevRegistry::new().start(registry_addr).await.map_err(|e| {
        CliError::Refused(format!(
            "cannot listen on {registry_addr} ({e}); pick another --registry-port"
        ))
    })?;
    let forward_to = target.clone();
    let forwarder = tokio::spawn(async move {
        loop {
            let Ok((inbound, _)) = listener.accept().await else {
                continue;
            };
            let to = forward_to.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(to.as_str()).await {
                    let mut inbound = inbound;
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    if let Some(dir) = &args.register {
        let files = SchemaFiles {
            dir: dir.clone(),
            strategy: Strategy::Topic,
            config: "spine.toml".into(),
        };
        let reg = RegistryArgs {
            url: Some(registry.url()),
            username: None,
            password: None,
            token: None,
        };
        crate::schemas::register(&files, &reg, true).await?;
    }
    if !topics.is_empty() {
        println!("Topics: {}", topics.join(", "));
    }
    println!("Kafka (librdkafka mock cluster): {broker_addr} (forwarding to {target})");
    println!("Schema registry (dev):           {}", registry.url());
    println!();
    println!("spine.toml:");
    println!("  [kafka]\n  \"bootstrap.servers\" = \"{broker_addr}\"\n\n  [schema_registry]\n  url = \"{}\"", registry.url());
    println!();
    println!(
        "or: export SPINE_BOOTSTRAP_SERVERS={broker_addr} SPINE_SCHEMA_REGISTRY_URL={}",
        registry.url()
    );
    println!("Ready. Ctrl-C stops.");
    wait_for_signal().await.map_err(io("signal handlers"))?;
    println!("Stopping.");
    forwarder.abort();
    registry.stop().await;
    drop(mock);
    Ok(())
}

async fn wait_for_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
