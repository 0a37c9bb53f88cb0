//! Schema compatibility by the Avro specification's "Schema Resolution" rules:
//! whether data written with one schema can be read with another, and the
//! registry's compatibility levels built on that. The registry checks it on
//! registration; the codec checks it once per (writer, reader) pair at decode
//! time.
//!
//! Written here rather than taken from apache-avro's
//! `SchemaCompatibility::can_read`, for two reasons found against Confluent's
//! `AvroCompatibilityChecker`:
//! - it answers `Ok(Compatibility::Partial)` when a writer's union branch or
//!   enum symbol has no match in the reader, which reads as "compatible" to a
//!   caller that checks `is_ok()` (the registry must refuse such a change, while
//!   decoding may still read the records that do not carry the missing branch);
//! - it compares named types by unqualified name only and ignores the reader's
//!   aliases, so renaming a record with an alias of the old name is refused.
//!
//! Logical types resolve as their underlying types, as in Confluent's checker,
//! except that two decimals must agree on precision and scale.

use std::collections::{HashMap, HashSet};
use std::fmt;

use apache_avro::schema::{Aliases, Name, RecordSchema, ResolvedSchema, UnionSchema};
use apache_avro::Schema;

use super::types::CompatibilityLevel;

/// Which resolution rule a schema change breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// The writer's type cannot be read, nor promoted, as the reader's type.
    TypeMismatch,
    /// A reader field the writer does not write has no default.
    MissingDefault,
    /// A branch of the writer's union matches no branch of the reader's.
    UnionBranch,
    /// A writer enum symbol is not in the reader's enum, which has no default.
    EnumSymbol,
    /// Named types whose names differ, with no reader alias for the writer's name.
    NameMismatch,
    /// Fixed types of different sizes.
    FixedSize,
    /// Decimals of different precision or scale.
    DecimalScale,
}

impl Rule {
    /// The rule's name, as messages give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::TypeMismatch => "type mismatch",
            Rule::MissingDefault => "missing default",
            Rule::UnionBranch => "missing union branch",
            Rule::EnumSymbol => "missing enum symbol",
            Rule::NameMismatch => "name mismatch",
            Rule::FixedSize => "fixed size mismatch",
            Rule::DecimalScale => "decimal precision or scale mismatch",
        }
    }
}

/// One way in which a reader cannot read what a writer wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    /// The rule broken.
    pub rule: Rule,
    /// The field at fault, as a dotted path from the top record, if any.
    pub field: Option<String>,
    /// What exactly does not match, naming the branch, symbol or type.
    pub detail: String,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule.as_str(), self.detail)
    }
}

/// How data written with a writer schema reads with a reader schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Every datum the writer can write is readable.
    Full,
    /// Most data is readable, but a datum that carries one of these writer
    /// union branches or enum symbols is not (the specification signals an
    /// error for that datum only).
    Partial(Vec<Incompatibility>),
}

/// Resolves `writer` against `reader`. `Err` when no datum of the writer can
/// be read (a type, name, size or default the reader cannot get past);
/// [`Resolution::Partial`] when only data carrying some union branches or enum
/// symbols cannot.
pub fn resolve(writer: &Schema, reader: &Schema) -> Result<Resolution, Incompatibility> {
    let mut checker = Checker {
        writer_names: names(writer),
        reader_names: names(reader),
        in_progress: HashSet::new(),
        path: Vec::new(),
        gaps: Vec::new(),
    };
    checker.check(writer, reader)?;
    Ok(if checker.gaps.is_empty() {
        Resolution::Full
    } else {
        Resolution::Partial(checker.gaps)
    })
}

/// Whether every datum written with `writer` can be read with `reader`, as a
/// registry judges a schema change: a partial resolution is a refusal, with
/// its first gap.
pub fn can_read(writer: &Schema, reader: &Schema) -> Result<(), Incompatibility> {
    match resolve(writer, reader)? {
        Resolution::Full => Ok(()),
        Resolution::Partial(mut gaps) => Err(gaps.swap_remove(0)),
    }
}

/// Checks `new` against the `existing` versions of a subject (oldest first)
/// under `level`. Returns one message per violation; empty means compatible.
pub fn check(level: CompatibilityLevel, new: &Schema, existing: &[(u32, Schema)]) -> Vec<String> {
    if level == CompatibilityLevel::None || existing.is_empty() {
        return Vec::new();
    }
    let against: &[(u32, Schema)] = if level.transitive() {
        existing
    } else {
        &existing[existing.len() - 1..]
    };
    let mut messages = Vec::new();
    for (version, old) in against {
        if level.backward() {
            if let Err(e) = can_read(old, new) {
                messages.push(describe(
                    "BACKWARD",
                    format!("the new schema cannot read data written with version {version}"),
                    &e,
                ));
            }
        }
        if level.forward() {
            if let Err(e) = can_read(new, old) {
                messages.push(describe(
                    "FORWARD",
                    format!(
                        "readers of version {version} cannot read data written with the new schema"
                    ),
                    &e,
                ));
            }
        }
    }
    messages
}

fn describe(kind: &str, what: String, e: &Incompatibility) -> String {
    let field = e
        .field
        .as_ref()
        .map(|f| format!(" (field `{f}`)"))
        .unwrap_or_default();
    format!("{kind}: {what}{field}: {e}")
}

/// Every named type a schema defines, to follow references by name.
fn names(schema: &Schema) -> HashMap<Name, &Schema> {
    ResolvedSchema::try_from(schema)
        .map(|r| r.get_names().clone())
        .unwrap_or_default()
}

struct Checker<'w, 'r> {
    writer_names: HashMap<Name, &'w Schema>,
    reader_names: HashMap<Name, &'r Schema>,
    /// Pairs of named types being checked, so that recursive types end.
    in_progress: HashSet<(String, String)>,
    /// Fields from the top record down to the current one.
    path: Vec<String>,
    /// Writer branches and symbols the reader lacks (a partial resolution).
    gaps: Vec<Incompatibility>,
}

impl<'w, 'r> Checker<'w, 'r> {
    fn error(&self, rule: Rule, detail: String) -> Incompatibility {
        Incompatibility {
            rule,
            field: (!self.path.is_empty()).then(|| self.path.join(".")),
            detail,
        }
    }

    fn check(&mut self, writer: &'w Schema, reader: &'r Schema) -> Result<(), Incompatibility> {
        let writer = follow(writer, &self.writer_names);
        let reader = follow(reader, &self.reader_names);
        match (writer, reader) {
            (Schema::Union(w), _) => self.writer_union(w, reader),
            (_, Schema::Union(r)) => self.reader_union(writer, r),
            (Schema::Record(w), Schema::Record(r)) => {
                self.same_name(&w.name, &r.name, &r.aliases)?;
                let key = (w.name.fullname(None), r.name.fullname(None));
                if !self.in_progress.insert(key.clone()) {
                    return Ok(());
                }
                let result = self.fields(w, r);
                self.in_progress.remove(&key);
                result
            }
            (Schema::Enum(w), Schema::Enum(r)) => {
                self.same_name(&w.name, &r.name, &r.aliases)?;
                if r.default.is_some() {
                    return Ok(());
                }
                let missing: Vec<&str> = w
                    .symbols
                    .iter()
                    .filter(|s| !r.symbols.contains(s))
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() && missing.len() == w.symbols.len() {
                    return Err(self.error(
                        Rule::EnumSymbol,
                        format!(
                            "none of the writer's symbols of enum `{}` is in the reader's, which \
                             has no default",
                            w.name
                        ),
                    ));
                }
                for symbol in missing {
                    let gap = self.error(
                        Rule::EnumSymbol,
                        format!(
                            "the writer's symbol `{symbol}` of enum `{}` is not in the reader's, \
                             which has no default",
                            w.name
                        ),
                    );
                    self.gaps.push(gap);
                }
                Ok(())
            }
            (Schema::Array(w), Schema::Array(r)) => self.check(&w.items, &r.items),
            (Schema::Map(w), Schema::Map(r)) => self.check(&w.types, &r.types),
            (Schema::Decimal(w), Schema::Decimal(r))
                if (w.precision, w.scale) != (r.precision, r.scale) =>
            {
                Err(self.error(
                    Rule::DecimalScale,
                    format!(
                        "the writer's decimal({}, {}) is read as decimal({}, {})",
                        w.precision, w.scale, r.precision, r.scale
                    ),
                ))
            }
            _ => self.scalar(writer, reader),
        }
    }

    /// Every reader field is written, or has a default; a written field's
    /// type resolves against the reader's.
    fn fields(&mut self, w: &'w RecordSchema, r: &'r RecordSchema) -> Result<(), Incompatibility> {
        for field in &r.fields {
            let written = std::iter::once(&field.name)
                .chain(&field.aliases)
                .find_map(|n| w.fields.iter().find(|wf| &wf.name == n));
            self.path.push(field.name.clone());
            let result = match written {
                Some(wf) => self.check(&wf.schema, &field.schema),
                None if field.default.is_some() => Ok(()),
                None => Err(self.error(
                    Rule::MissingDefault,
                    format!(
                        "the reader's field `{}` of record `{}` has no default, and the writer \
                         does not write it",
                        field.name, r.name
                    ),
                )),
            };
            self.path.pop();
            result?;
        }
        Ok(())
    }

    /// Each branch of the writer's union must resolve against the reader; a
    /// branch that does not is a gap, and all of them failing is an error.
    fn writer_union(
        &mut self,
        w: &'w UnionSchema,
        reader: &'r Schema,
    ) -> Result<(), Incompatibility> {
        let before = self.gaps.len();
        let mut readable = 0;
        let mut last_error = None;
        for branch in w.variants() {
            match self.trial(branch, reader) {
                Ok(()) => readable += 1,
                Err(e) => {
                    let gap = self.error(
                        Rule::UnionBranch,
                        format!(
                            "the writer's union branch `{}` cannot be read as the reader's `{}` \
                             ({e})",
                            type_name(branch),
                            type_name(reader)
                        ),
                    );
                    self.gaps.push(gap.clone());
                    last_error = Some(gap);
                }
            }
        }
        match last_error {
            Some(e) if readable == 0 => {
                self.gaps.truncate(before);
                Err(e)
            }
            _ => Ok(()),
        }
    }

    /// A non-union writer must resolve against some branch of the reader's
    /// union: the first that resolves fully, else the first that resolves.
    fn reader_union(
        &mut self,
        writer: &'w Schema,
        r: &'r UnionSchema,
    ) -> Result<(), Incompatibility> {
        let mut partial = None;
        for branch in r.variants() {
            let before = self.gaps.len();
            match self.trial(writer, branch) {
                Ok(()) if self.gaps.len() == before => return Ok(()),
                Ok(()) => {
                    let gaps = self.gaps.split_off(before);
                    partial.get_or_insert(gaps);
                }
                Err(_) => {}
            }
        }
        match partial {
            Some(gaps) => {
                self.gaps.extend(gaps);
                Ok(())
            }
            None => Err(self.error(
                Rule::TypeMismatch,
                format!(
                    "the writer's `{}` matches no branch of the reader's union {}",
                    type_name(writer),
                    union_name(r)
                ),
            )),
        }
    }

    /// Checks a pair, keeping its gaps only if it resolves.
    fn trial(&mut self, writer: &'w Schema, reader: &'r Schema) -> Result<(), Incompatibility> {
        let before = self.gaps.len();
        let result = self.check(writer, reader);
        if result.is_err() {
            self.gaps.truncate(before);
        }
        result
    }

    /// Named types match by unqualified name, or by a reader alias of the
    /// writer's full name.
    fn same_name(
        &self,
        writer: &Name,
        reader: &Name,
        aliases: &Aliases,
    ) -> Result<(), Incompatibility> {
        let written = writer.fullname(None);
        let aliased = aliases
            .iter()
            .flatten()
            .any(|a| a.fullname(reader.namespace()) == written);
        if writer.name() == reader.name() || aliased {
            return Ok(());
        }
        Err(self.error(
            Rule::NameMismatch,
            format!(
                "the writer's `{written}` is read as `{}`, which has no alias `{written}`",
                reader.fullname(None)
            ),
        ))
    }

    /// Primitive, fixed and logical types, by the specification's promotions.
    fn scalar(&self, writer: &Schema, reader: &Schema) -> Result<(), Incompatibility> {
        use Base::*;
        let (w, r) = (base(writer), base(reader));
        let ok = match (w, r) {
            (Fixed(ws), Fixed(rs)) => {
                if let (Some(wn), Some(rn)) = (writer.name(), reader.name()) {
                    self.same_name(wn, rn, fixed_aliases(reader))?;
                }
                if ws != rs {
                    return Err(self.error(
                        Rule::FixedSize,
                        format!("the writer's fixed size {ws} is read as size {rs}"),
                    ));
                }
                true
            }
            (Int, Long | Float | Double) | (Long, Float | Double) | (Float, Double) => true,
            (String, Bytes) | (Bytes, String) => true,
            _ => w == r && w != Other,
        };
        if ok {
            Ok(())
        } else {
            Err(self.error(
                Rule::TypeMismatch,
                format!(
                    "the writer's `{}` cannot be read as `{}`",
                    type_name(writer),
                    type_name(reader)
                ),
            ))
        }
    }
}

/// A reference to a named type, replaced by the type it names.
fn follow<'a>(schema: &'a Schema, names: &HashMap<Name, &'a Schema>) -> &'a Schema {
    match schema {
        Schema::Ref { name } => names.get(name).copied().unwrap_or(schema),
        _ => schema,
    }
}

fn fixed_aliases(schema: &Schema) -> &Aliases {
    static NONE: Aliases = None;
    match schema {
        Schema::Fixed(f) | Schema::Duration(f) => &f.aliases,
        _ => &NONE,
    }
}

/// The type data is encoded as, which is what resolution compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed(usize),
    Other,
}

fn base(schema: &Schema) -> Base {
    use apache_avro::schema::{DecimalSchema, InnerDecimalSchema, UuidSchema};
    match schema {
        Schema::Null => Base::Null,
        Schema::Boolean => Base::Boolean,
        Schema::Int | Schema::Date | Schema::TimeMillis => Base::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Base::Long,
        Schema::Float => Base::Float,
        Schema::Double => Base::Double,
        Schema::Bytes
        | Schema::BigDecimal
        | Schema::Uuid(UuidSchema::Bytes)
        | Schema::Decimal(DecimalSchema {
            inner: InnerDecimalSchema::Bytes,
            ..
        }) => Base::Bytes,
        Schema::String | Schema::Uuid(UuidSchema::String) => Base::String,
        Schema::Fixed(f) | Schema::Duration(f) | Schema::Uuid(UuidSchema::Fixed(f)) => {
            Base::Fixed(f.size)
        }
        Schema::Decimal(DecimalSchema {
            inner: InnerDecimalSchema::Fixed(f),
            ..
        }) => Base::Fixed(f.size),
        _ => Base::Other,
    }
}

/// A schema's name in messages: the full name of a named type, else its type.
fn type_name(schema: &Schema) -> String {
    if let Some(name) = schema.name() {
        return name.fullname(None);
    }
    match schema {
        Schema::Array(a) => format!("array<{}>", type_name(&a.items)),
        Schema::Map(m) => format!("map<{}>", type_name(&m.types)),
        Schema::Union(u) => union_name(u),
        // Primitive and logical types: the encoded type, as in `"int"`.
        other => other.canonical_form().trim_matches('"').to_owned(),
    }
}

fn union_name(u: &UnionSchema) -> String {
    let branches: Vec<String> = u.variants().iter().map(type_name).collect();
    format!("[{}]", branches.join(", "))
}
