//! The command line: clap definitions, each with an example in its help, and
//! the dispatch to the modules that do the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::CliError;

/// Spine: typed Kafka event handlers for Rust.
#[derive(Debug, Parser)]
#[command(name = "spine", version, about, long_about = None)]
#[command(
    after_help = "Your first service:\n  spine new orders-service && cd orders-service\n  spine dev &\n  cargo run"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Generates a new service crate from a template.
    #[command(
        after_help = "Examples:\n  spine new orders-service\n  spine new text-pipeline --template pipeline --path ~/src\n  spine new payments --template avro --spine-path ~/src/spine\n  spine new billing --spine-version 0.1.0"
    )]
    New(NewArgs),
    /// Registers, checks and lists Avro schemas in a schema registry.
    #[command(subcommand)]
    Schemas(SchemasCommand),
    /// Consumer-group offsets.
    #[command(subcommand)]
    Offsets(OffsetsCommand),
    /// Publishes one event (JSON, or Avro through the registry for Avro topics).
    #[command(
        after_help = "Examples:\n  spine send orders order.placed '{\"order_id\": \"o-1\", \"amount_cents\": 100}' --key o-1\n  spine send orders order.placed '{\"order_id\": \"o-1\", \"amount_cents\": 100}' --avro --registry http://127.0.0.1:8081"
    )]
    Send(SendArgs),
    /// Prints the records arriving on a topic (Avro decoded through the registry).
    #[command(
        after_help = "Examples:\n  spine tail orders.accepted\n  spine tail orders.accepted --from-beginning --count 1 --timeout 30s"
    )]
    Tail(TailArgs),
    /// Starts a local Kafka (librdkafka's mock cluster) and a dev schema registry.
    #[command(
        after_help = "Examples:\n  spine dev\n  spine dev --broker-port 19092 --registry-port 18081 --topic orders:3 --register schemas\n\nCtrl-C stops both."
    )]
    Dev(DevArgs),
    /// Consumer settings held in a database (`[app] config_source`): lists,
    /// shows and changes rows of `spine_consumer_configs`. Running services
    /// take a change within seconds.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `spine config`.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Prints every consumer's row as a table.
    #[command(after_help = "Example:\n  spine config list --db sqlite://spine.db")]
    List(ConfigDb),
    /// Prints one consumer's row, column by column.
    #[command(
        after_help = "Example:\n  spine config get orders --db postgres://postgres@127.0.0.1/orders"
    )]
    Get {
        /// The consumer's name (the app's `[app] name`, or a named consumer's).
        name: String,
        #[command(flatten)]
        db: ConfigDb,
    },
    /// Sets one column of a consumer's row (creating the row), after
    /// checking the value. `null` clears a column: the service's file then
    /// decides.
    #[command(
        after_help = "Columns: topics_input, topics_output (a,b or a JSON array), metadata (a JSON object), bootstrap_servers (host:port,...), timeout (30s), max_in_flight (a number), enabled (true/false).\n\nExamples:\n  spine config set orders max_in_flight 64 --db sqlite://spine.db\n  spine config set orders topics_input orders,orders.retry --db sqlite://spine.db\n  spine config set orders metadata '{\"region\": \"eu\"}' --db sqlite://spine.db\n  spine config set orders enabled false --db sqlite://spine.db"
    )]
    Set {
        /// The consumer's name.
        name: String,
        /// The column.
        key: String,
        /// Its new value.
        value: String,
        #[command(flatten)]
        db: ConfigDb,
    },
}

/// The database of `spine config`.
#[derive(Debug, Args)]
pub(crate) struct ConfigDb {
    /// The database: `sqlite://<file>` or `postgres://...` (the services'
    /// `[app] config_source`).
    #[arg(long, env = "SPINE_APP__CONFIG_SOURCE")]
    pub(crate) db: String,
}

/// The templates of `spine new`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Template {
    /// A JSON handler with a reply.
    Json,
    /// An Avro handler with a reply, its schemas in `schemas/`.
    Avro,
    /// A `#[pipeline]` that publishes its result.
    Pipeline,
}

#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// The crate's name (also its directory's).
    pub(crate) name: String,
    /// What the service starts with.
    #[arg(long, value_enum, default_value = "json")]
    pub(crate) template: Template,
    /// The directory to create the crate in.
    #[arg(long, default_value = ".")]
    pub(crate) path: PathBuf,
    /// Depend on a local checkout of Spine (by path). Without this flag or
    /// --spine-version, the crate depends on the checkout this `spine` was
    /// built from, if it still exists, and on the published `spine-kafka`
    /// otherwise.
    #[arg(long, value_name = "DIR", conflicts_with = "spine_version")]
    pub(crate) spine_path: Option<PathBuf>,
    /// Depend on this version of the published `spine-kafka` crate.
    #[arg(long, value_name = "VERSION")]
    pub(crate) spine_version: Option<String>,
}

/// How the registry is reached. Secrets come from flags or the environment
/// and are never printed.
#[derive(Debug, Clone, Args)]
pub(crate) struct RegistryArgs {
    /// The schema registry's URL (default: `[schema_registry] url` of ./spine.toml).
    #[arg(
        long = "registry",
        env = "SPINE_SCHEMA_REGISTRY_URL",
        value_name = "URL"
    )]
    pub(crate) url: Option<String>,
    /// Basic-auth user name.
    #[arg(long, env = "SPINE_SCHEMA_REGISTRY_USERNAME", requires = "password")]
    pub(crate) username: Option<String>,
    /// Basic-auth password.
    #[arg(long, env = "SPINE_SCHEMA_REGISTRY_PASSWORD", hide_env_values = true)]
    pub(crate) password: Option<String>,
    /// Bearer token (instead of basic auth).
    #[arg(
        long,
        env = "SPINE_SCHEMA_REGISTRY_TOKEN",
        hide_env_values = true,
        conflicts_with = "username"
    )]
    pub(crate) token: Option<String>,
}

/// Confluent's subject name strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Strategy {
    /// `<topic>-value`; the topic is the file's name, or `[topics.<t>] schema = "<file>"` in spine.toml.
    Topic,
    /// `<record full name>`.
    Record,
    /// `<topic>-<record full name>`.
    TopicRecord,
}

#[derive(Debug, Args)]
pub(crate) struct SchemaFiles {
    /// The directory of `.avsc` files (searched recursively).
    #[arg(default_value = "schemas")]
    pub(crate) dir: PathBuf,
    /// How subjects are named.
    #[arg(long, value_enum, default_value = "topic")]
    pub(crate) strategy: Strategy,
    /// The service's spine.toml, for `[topics.<t>] schema = "..."` mappings.
    #[arg(long, default_value = "spine.toml")]
    pub(crate) config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SchemasCommand {
    /// Registers every `.avsc` file, after checking compatibility.
    #[command(
        after_help = "Examples:\n  spine schemas register --registry http://127.0.0.1:8081\n  spine schemas register schemas/ --strategy record --dry-run\n\nExits non-zero if a schema is invalid or incompatible; the table names the file, the field and the rule."
    )]
    Register {
        #[command(flatten)]
        files: SchemaFiles,
        #[command(flatten)]
        registry: RegistryArgs,
        /// Check and report, register nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Reports whether every `.avsc` file could be registered (for CI).
    #[command(
        after_help = "Example:\n  spine schemas check schemas/ --registry $SPINE_SCHEMA_REGISTRY_URL"
    )]
    Check {
        #[command(flatten)]
        files: SchemaFiles,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Lists the registry's subjects with their latest version and id.
    #[command(after_help = "Example:\n  spine schemas list --registry http://127.0.0.1:8081")]
    List {
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum OffsetsCommand {
    /// Moves a consumer group's committed offsets on a topic.
    #[command(
        after_help = "Examples:\n  spine offsets reset --group orders-service --topic orders --to earliest\n  spine offsets reset --group orders-service --topic orders --to 2026-11-24T09:00:00Z\n  spine offsets reset --group orders-service --topic orders --to 1200 --force\n\nRefuses while the group has active members. --force skips that check; a broker that checks commits against the group's members (Kafka does) then refuses the commit itself."
    )]
    Reset(ResetArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ResetArgs {
    /// The consumer group.
    #[arg(long)]
    pub(crate) group: String,
    /// The topic.
    #[arg(long)]
    pub(crate) topic: String,
    /// `earliest`, `latest`, an offset, or an RFC 3339 time.
    #[arg(long, value_name = "WHERE")]
    pub(crate) to: String,
    /// Skip the check for active members (a broker that checks commits
    /// against the group's members, as Kafka does, still refuses them).
    #[arg(long)]
    pub(crate) force: bool,
    /// The brokers.
    #[arg(
        long,
        env = "SPINE_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub(crate) bootstrap_servers: String,
}

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// The topic.
    pub(crate) topic: String,
    /// The event name (`ce_type`).
    pub(crate) event: String,
    /// The payload, as JSON.
    pub(crate) json: String,
    /// The key.
    #[arg(long)]
    pub(crate) key: Option<String>,
    /// Encode as Avro with the subject's latest schema (also when spine.toml says `codec = "avro"`).
    #[arg(long)]
    pub(crate) avro: bool,
    #[command(flatten)]
    pub(crate) target: Target,
}

#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// The topic.
    pub(crate) topic: String,
    /// Start from the beginning instead of the end.
    #[arg(long)]
    pub(crate) from_beginning: bool,
    /// Stop after this many records.
    #[arg(long)]
    pub(crate) count: Option<usize>,
    /// Give up after this long (e.g. `30s`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) timeout: Option<std::time::Duration>,
    /// Decode as Avro (also when spine.toml says `codec = "avro"`).
    #[arg(long)]
    pub(crate) avro: bool,
    #[command(flatten)]
    pub(crate) target: Target,
}

/// Where `send` and `tail` find the brokers, the registry and the topics' codecs.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// The schema registry, for Avro.
    #[arg(long, env = "SPINE_SCHEMA_REGISTRY_URL", value_name = "URL")]
    pub(crate) registry: Option<String>,
    /// The brokers.
    #[arg(
        long,
        env = "SPINE_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub(crate) bootstrap_servers: String,
    /// The service's spine.toml (for topic codecs and the registry).
    #[arg(long, default_value = "spine.toml")]
    pub(crate) config: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct DevArgs {
    /// The port clients bootstrap on.
    #[arg(long, default_value_t = 9092)]
    pub(crate) broker_port: u16,
    /// The dev schema registry's port.
    #[arg(long, default_value_t = 8081)]
    pub(crate) registry_port: u16,
    /// Topics to create, as NAME or NAME:PARTITIONS, besides those of ./spine.toml
    /// (`[topics.<name>]` and `[app] topics`, 3 partitions each).
    #[arg(long = "topic", value_name = "NAME[:PARTITIONS]")]
    pub(crate) topics: Vec<String>,
    /// Registers the `.avsc` files of this directory at startup.
    #[arg(long, value_name = "DIR")]
    pub(crate) register: Option<PathBuf>,
}

pub(crate) async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::New(args) => crate::new::run(&args),
        Command::Schemas(SchemasCommand::Register {
            files,
            registry,
            dry_run,
        }) => crate::schemas::register(&files, &registry, !dry_run).await,
        Command::Schemas(SchemasCommand::Check { files, registry }) => {
            crate::schemas::register(&files, &registry, false).await
        }
        Command::Schemas(SchemasCommand::List { registry }) => {
            crate::schemas::list(&registry).await
        }
        Command::Offsets(OffsetsCommand::Reset(args)) => crate::offsets::reset(&args).await,
        Command::Send(args) => crate::events::send(&args).await,
        Command::Tail(args) => crate::events::tail(&args).await,
        Command::Dev(args) => crate::dev::run(&args).await,
        Command::Config(command) => crate::settings::run(command).await,
    }
}
