//! `spine config list | get | set`: the rows of `spine_consumer_configs`,
//! through `spine::settings::ConsumerConfigs` (which checks a value before
//! writing it).

use spine::settings::{ConsumerConfigRow, ConsumerConfigs};

use crate::cli::ConfigCommand;
use crate::error::CliError;

pub(crate) async fn run(command: ConfigCommand) -> Result<(), CliError> {
    match command {
        ConfigCommand::List(db) => {
            let configs = ConsumerConfigs::open(&db.db).await?;
            let rows = configs.list().await?;
            if rows.is_empty() {
                println!(
                    "no consumer configs in {}; add one with `spine config set NAME KEY VALUE --db ...`",
                    configs.shown()
                );
                return Ok(());
            }
            let mut t = spine::__private::table(&[
                "consumer",
                "enabled",
                "topics_input",
                "topics_output",
                "max_in_flight",
                "timeout",
                "bootstrap_servers",
                "metadata",
                "check",
            ]);
            for r in &rows {
                t.add_row(vec![
                    r.consumer_name.clone(),
                    r.enabled.to_string(),
                    shown(&r.topics_input),
                    shown(&r.topics_output),
                    r.max_in_flight.map_or("-".to_owned(), |n| n.to_string()),
                    shown(&r.timeout),
                    shown(&r.bootstrap_servers),
                    shown(&r.metadata),
                    check(r),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        ConfigCommand::Get { name, db } => {
            let configs = ConsumerConfigs::open(&db.db).await?;
            let Some(row) = configs.get(&name).await? else {
                return Err(CliError::Refused(format!(
                    "no consumer config named `{name}` in {}; `spine config list --db ...` shows them, `spine config set {name} KEY VALUE --db ...` adds it",
                    configs.shown()
                )));
            };
            print_row(&row);
            Ok(())
        }
        ConfigCommand::Set {
            name,
            key,
            value,
            db,
        } => {
            let configs = ConsumerConfigs::open(&db.db).await?;
            let row = configs.set(&name, &key, &value).await?;
            print_row(&row);
            Ok(())
        }
    }
}

fn print_row(r: &ConsumerConfigRow) {
    let mut t = spine::__private::table(&["column", "value"]);
    let updated = std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.updated_at as u64);
    for (column, value) in [
        ("consumer_name", r.consumer_name.clone()),
        ("topics_input", shown(&r.topics_input)),
        ("topics_output", shown(&r.topics_output)),
        ("metadata", shown(&r.metadata)),
        ("bootstrap_servers", shown(&r.bootstrap_servers)),
        ("timeout", shown(&r.timeout)),
        (
            "max_in_flight",
            r.max_in_flight.map_or("-".to_owned(), |n| n.to_string()),
        ),
        ("enabled", r.enabled.to_string()),
        (
            "updated_at",
            humantime::format_rfc3339_seconds(updated).to_string(),
        ),
        ("check", check(r)),
    ] {
        t.add_row(vec![column.to_owned(), value]);
    }
    println!("{t}");
}

/// NULL shows as `-`: the service's file decides.
fn shown(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".to_owned())
}

fn check(r: &ConsumerConfigRow) -> String {
    match r.settings() {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("invalid: {} {}", e.column, e.reason),
    }
}
