//! `spine schemas register|check|list`: `.avsc` files against a Confluent
//! schema registry.
//!
//! Named types defined in one file and used by another are inlined where they
//! are first used (so the registry receives a self-contained schema, which
//! every registry accepts, without the `references` API); a file that only
//! defines such shared types is not registered on its own.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use spine_kafka_avro::registry::{Auth, RegistryClient, RegistryError};
use spine_kafka_avro::subject::{subject_name, SubjectStrategy};

use crate::cli::{RegistryArgs, SchemaFiles, Strategy};
use crate::error::{io, CliError};

/// The outcome of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    /// Registered now (or would be, in a dry run or a check).
    New,
    /// Already registered under the subject.
    Unchanged,
    /// The registry's rule refuses it.
    Incompatible(String),
    /// Not a valid Avro schema.
    Invalid(String),
    /// Only defines types other files use; inlined there.
    SharedType(String),
}

struct Row {
    file: String,
    subject: String,
    version: Option<u32>,
    id: Option<u32>,
    status: Status,
}

pub(crate) fn client(r: &RegistryArgs) -> Result<RegistryClient, CliError> {
    let auth = match (&r.username, &r.password, &r.token) {
        (_, _, Some(token)) => Auth::Bearer(token.clone()),
        (Some(u), Some(p), None) => Auth::Basic {
            username: u.clone(),
            password: p.clone(),
        },
        _ => Auth::None,
    };
    let url = match &r.url {
        Some(u) => u.clone(),
        None => registry_from_config(Path::new("spine.toml"))?.ok_or_else(|| {
            CliError::Refused(
                "no schema registry: pass --registry URL, set SPINE_SCHEMA_REGISTRY_URL, or set \
                 [schema_registry] url in ./spine.toml"
                    .into(),
            )
        })?,
    };
    Ok(RegistryClient::new(&url, auth)?)
}

fn registry_from_config(path: &Path) -> Result<Option<String>, CliError> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    Ok(spine::Config::from_toml(&text)?.schema_registry.url)
}

/// Registers (when `write`) or checks every schema file; prints the table.
pub(crate) async fn register(
    files: &SchemaFiles,
    registry: &RegistryArgs,
    write: bool,
) -> Result<(), CliError> {
    let client = client(registry)?;
    let rows = process(files, &client, write).await?;
    let mut table = spine::__private::table(&["file", "subject", "version", "id", "status"]);
    let mut failed = 0;
    for r in &rows {
        let status = match &r.status {
            Status::New if write => "new".to_owned(),
            Status::New => "new (not registered)".to_owned(),
            Status::Unchanged => "unchanged".to_owned(),
            Status::Incompatible(why) => {
                failed += 1;
                format!("incompatible: {why}")
            }
            Status::Invalid(why) => {
                failed += 1;
                format!("invalid: {why}")
            }
            Status::SharedType(users) => format!("shared type, inlined into {users}"),
        };
        let opt = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
        table.add_row(vec![
            r.file.clone(),
            r.subject.clone(),
            opt(r.version),
            opt(r.id),
            status,
        ]);
    }
    println!("{table}");
    if failed > 0 {
        return Err(CliError::Schemas(format!(
            "{failed} of {} schema files cannot be registered (see the table): fix them, or change the \
             subject's compatibility level if the change is intended",
            rows.len()
        )));
    }
    Ok(())
}

/// Lists subjects with their latest version and id.
pub(crate) async fn list(registry: &RegistryArgs) -> Result<(), CliError> {
    let client = client(registry)?;
    let mut subjects = client.subjects().await?;
    subjects.sort();
    let mut table = spine::__private::table(&["subject", "latest version", "id"]);
    for s in &subjects {
        let latest = client.version(s, "latest").await?;
        table.add_row(vec![
            s.clone(),
            latest.version.to_string(),
            latest.id.to_string(),
        ]);
    }
    println!("{table}");
    println!("{} subjects at {}", subjects.len(), client.url());
    Ok(())
}

/// A parsed `.avsc` file.
struct SchemaFile {
    path: PathBuf,
    rel: String,
    json: Result<Value, String>,
}

async fn process(
    files: &SchemaFiles,
    client: &RegistryClient,
    write: bool,
) -> Result<Vec<Row>, CliError> {
    let paths = avsc_files(&files.dir)?;
    if paths.is_empty() {
        return Err(CliError::Refused(format!(
            "no .avsc files under {}; give the directory of your schemas",
            files.dir.display()
        )));
    }
    let mapping = topic_mapping(&files.config)?;
    let parsed: Vec<SchemaFile> = paths
        .iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&files.dir)
                .unwrap_or(p)
                .display()
                .to_string();
            let json = std::fs::read_to_string(p)
                .map_err(|e| e.to_string())
                .and_then(|t| {
                    serde_json::from_str::<Value>(&t).map_err(|e| format!("not JSON: {e}"))
                });
            SchemaFile {
                path: p.clone(),
                rel,
                json,
            }
        })
        .collect();
    // Every named type, by full name, with the file defining it.
    let mut defs: HashMap<String, (usize, Value)> = HashMap::new();
    for (i, f) in parsed.iter().enumerate() {
        if let Ok(v) = &f.json {
            collect_defs(v, None, i, &mut defs);
        }
    }
    // Inline what each file uses from the others.
    let mut inlined: Vec<Result<Value, String>> = Vec::new();
    let mut used_by: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (i, f) in parsed.iter().enumerate() {
        inlined.push(f.json.clone().map(|v| {
            let mut seen = HashSet::new();
            let mut from = HashSet::new();
            let out = inline(&v, None, &defs, i, &mut seen, &mut from);
            for j in from {
                used_by.entry(j).or_default().push(f.rel.clone());
            }
            out
        }));
    }
    let bar = if parsed.len() > 5 {
        let b = ProgressBar::new(parsed.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let mut rows = Vec::new();
    for (i, f) in parsed.iter().enumerate() {
        bar.set_message(f.rel.clone());
        bar.inc(1);
        let mapped = mapping.get(&canonical(&f.path));
        if let (Some(users), None) = (used_by.get(&i), mapped) {
            rows.push(Row {
                file: f.rel.clone(),
                subject: "-".into(),
                version: None,
                id: None,
                status: Status::SharedType(users.join(", ")),
            });
            continue;
        }
        let schema = match &inlined[i] {
            Err(e) => Err(e.clone()),
            Ok(v) => {
                let text = v.to_string();
                apache_avro::Schema::parse_str(&text)
                    .map(|s| (text, s))
                    .map_err(|e| e.to_string())
            }
        };
        let (text, parsed_schema) = match schema {
            Ok(s) => s,
            Err(e) => {
                rows.push(Row {
                    file: f.rel.clone(),
                    subject: "-".into(),
                    version: None,
                    id: None,
                    status: Status::Invalid(e),
                });
                continue;
            }
        };
        let topic = mapped.cloned().unwrap_or_else(|| {
            f.path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let record = parsed_schema.name().map(|n| n.fullname(None));
        let strategy = match files.strategy {
            Strategy::Topic => SubjectStrategy::Topic,
            Strategy::Record => SubjectStrategy::Record,
            Strategy::TopicRecord => SubjectStrategy::TopicRecord,
        };
        let subject = match subject_name(strategy, &topic, record.as_deref()) {
            Some(s) => s,
            None => {
                rows.push(Row {
                    file: f.rel.clone(),
                    subject: "-".into(),
                    version: None,
                    id: None,
                    status: Status::Invalid(
                        "the record strategies need a named type (record, enum or fixed) at the top".into(),
                    ),
                });
                continue;
            }
        };
        rows.push(one(client, &f.rel, &subject, &text, write).await?);
    }
    bar.finish_and_clear();
    Ok(rows)
}

/// Looks the schema up, checks it, registers it if asked.
async fn one(
    client: &RegistryClient,
    file: &str,
    subject: &str,
    schema: &str,
    write: bool,
) -> Result<Row, CliError> {
    let row = |version, id, status| Row {
        file: file.to_owned(),
        subject: subject.to_owned(),
        version,
        id,
        status,
    };
    match client.lookup(subject, schema).await {
        Ok(found) => return Ok(row(Some(found.version), Some(found.id), Status::Unchanged)),
        Err(RegistryError::NotFound { .. }) => {}
        Err(RegistryError::InvalidSchema { message }) => {
            return Ok(row(None, None, Status::Invalid(message)))
        }
        Err(e) => return Err(e.into()),
    }
    match client.check_compatibility(subject, "latest", schema).await {
        Ok(c) if !c.is_compatible => {
            let why = if c.messages.is_empty() {
                "refused by the subject's compatibility level".to_owned()
            } else {
                c.messages.join("; ")
            };
            return Ok(row(None, None, Status::Incompatible(why)));
        }
        Ok(_) | Err(RegistryError::NotFound { .. }) => {}
        Err(RegistryError::InvalidSchema { message }) => {
            return Ok(row(None, None, Status::Invalid(message)))
        }
        Err(e) => return Err(e.into()),
    }
    if !write {
        return Ok(row(None, None, Status::New));
    }
    match client.register(subject, schema).await {
        Ok(_) => {
            let got = client.lookup(subject, schema).await?;
            Ok(row(Some(got.version), Some(got.id), Status::New))
        }
        Err(RegistryError::Incompatible { message }) => {
            Ok(row(None, None, Status::Incompatible(message)))
        }
        Err(RegistryError::InvalidSchema { message }) => {
            Ok(row(None, None, Status::Invalid(message)))
        }
        Err(e) => Err(e.into()),
    }
}

fn avsc_files(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io(&d))? {
            let path = entry.map_err(io(&d))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "avsc") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// `[topics.<t>] schema = "<file>"` of spine.toml, as file → topic.
fn topic_mapping(config: &Path) -> Result<HashMap<PathBuf, String>, CliError> {
    if !config.exists() {
        return Ok(HashMap::new());
    }
    let text = std::fs::read_to_string(config).map_err(io(config))?;
    let cfg = spine::Config::from_toml(&text)?;
    let base = config.parent().unwrap_or(Path::new("."));
    Ok(cfg
        .topics
        .iter()
        .filter_map(|(topic, t)| {
            t.schema
                .as_ref()
                .map(|s| (canonical(&base.join(s)), topic.clone()))
        })
        .collect())
}

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

fn full_name(name: &str, ns: Option<&str>) -> String {
    match ns {
        Some(ns) if !name.contains('.') && !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_owned(),
    }
}

/// The namespace a named type's definition sets for what it contains.
fn own_namespace(obj: &serde_json::Map<String, Value>, ns: Option<&str>) -> Option<String> {
    let name = obj.get("name").and_then(Value::as_str)?;
    match name.rsplit_once('.') {
        Some((n, _)) => Some(n.to_owned()),
        None => obj
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or(ns.map(str::to_owned)),
    }
}

fn collect_defs(
    v: &Value,
    ns: Option<&str>,
    file: usize,
    defs: &mut HashMap<String, (usize, Value)>,
) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect_defs(i, ns, file, defs)),
        Value::Object(obj) => {
            let inner_ns = own_namespace(obj, ns);
            let inner = inner_ns.as_deref().or(ns);
            if let (Some(name), Some(t)) = (
                obj.get("name").and_then(Value::as_str),
                obj.get("type").and_then(Value::as_str),
            ) {
                if matches!(t, "record" | "enum" | "fixed" | "error") {
                    let mut def = obj.clone();
                    if let Some(n) = &inner_ns {
                        def.insert("namespace".into(), Value::String(n.clone()));
                    }
                    defs.entry(full_name(name, inner))
                        .or_insert((file, Value::Object(def)));
                }
            }
            for key in ["type", "items", "values"] {
                if let Some(child) = obj.get(key) {
                    collect_defs(child, inner, file, defs);
                }
            }
            if let Some(Value::Array(fields)) = obj.get("fields") {
                for f in fields {
                    if let Some(t) = f.get("type") {
                        collect_defs(t, inner, file, defs);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Replaces the first use of each type defined in another file by its
/// definition. `seen`: names already defined in the output; `from`: the files
/// whose types were inlined.
fn inline(
    v: &Value,
    ns: Option<&str>,
    defs: &HashMap<String, (usize, Value)>,
    file: usize,
    seen: &mut HashSet<String>,
    from: &mut HashSet<usize>,
) -> Value {
    match v {
        Value::String(s) if !PRIMITIVES.contains(&s.as_str()) => {
            let full = full_name(s, ns);
            if seen.contains(&full) {
                return v.clone();
            }
            match defs.get(&full) {
                Some((f, def)) if *f != file => {
                    from.insert(*f);
                    inline(def, ns, defs, file, seen, from)
                }
                _ => v.clone(),
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| inline(i, ns, defs, file, seen, from))
                .collect(),
        ),
        Value::Object(obj) => {
            let inner_ns = own_namespace(obj, ns);
            let inner = inner_ns.as_deref().or(ns);
            if let Some(name) = obj.get("name").and_then(Value::as_str) {
                if obj
                    .get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| matches!(t, "record" | "enum" | "fixed" | "error"))
                {
                    seen.insert(full_name(name, inner));
                }
            }
            let mut out = obj.clone();
            for key in ["type", "items", "values"] {
                if let Some(child) = obj.get(key) {
                    out.insert(key.into(), inline(child, inner, defs, file, seen, from));
                }
            }
            if let Some(Value::Array(fields)) = obj.get("fields") {
                let fields = fields
                    .iter()
                    .map(|f| {
                        let mut f = f.clone();
                        if let Some(t) = f.get("type").cloned() {
                            f["type"] = inline(&t, inner, defs, file, seen, from);
                        }
                        f
                    })
                    .collect();
                out.insert("fields".into(), Value::Array(fields));
            }
            Value::Object(out)
        }
        _ => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_type_from_another_file_is_inlined_once() {
        let address = json!({"type": "record", "name": "Address", "namespace": "shop",
            "fields": [{"name": "city", "type": "string"}]});
        let order = json!({"type": "record", "name": "Order", "namespace": "shop", "fields": [
            {"name": "ship_to", "type": "Address"},
            {"name": "bill_to", "type": "shop.Address"},
        ]});
        let mut defs = HashMap::new();
        collect_defs(&address, None, 0, &mut defs);
        collect_defs(&order, None, 1, &mut defs);
        let (mut seen, mut from) = (HashSet::new(), HashSet::new());
        let out = inline(&order, None, &defs, 1, &mut seen, &mut from);
        assert_eq!(out["fields"][0]["type"]["name"], "Address");
        assert_eq!(out["fields"][0]["type"]["fields"][0]["name"], "city");
        assert_eq!(
            out["fields"][1]["type"], "shop.Address",
            "second use stays a name"
        );
        assert_eq!(from, HashSet::from([0]));
        apache_avro::Schema::parse_str(&out.to_string()).expect("a self-contained schema");
    }
}
