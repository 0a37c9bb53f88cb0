//! Schema compatibility by Avro's resolution rules, as the registry checks it
//! on registration and as Spine reports it when a writer schema cannot be read
//! as a handler's type.

use apache_avro::error::CompatibilityError;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;

use super::types::CompatibilityLevel;

/// Whether data written with `writer` can be read with `reader`; on failure,
/// the rule broken and the field at fault (dotted path), when there is one.
pub fn can_read(writer: &Schema, reader: &Schema) -> Result<(), (String, Option<String>)> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(_) => Ok(()),
        Err(e) => Err((e.to_string(), field_at_fault(&e))),
    }
}

/// The field a compatibility error is about, following nested records.
pub fn field_at_fault(e: &CompatibilityError) -> Option<String> {
    match e {
        CompatibilityError::FieldTypeMismatch(field, inner) => Some(match field_at_fault(inner) {
            Some(rest) => format!("{field}.{rest}"),
            None => field.clone(),
        }),
        CompatibilityError::MissingDefaultValue(field) => Some(field.clone()),
        _ => None,
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
            if let Err((rule, field)) = can_read(old, new) {
                messages.push(describe(
                    "BACKWARD",
                    *version,
                    "the new schema cannot read data written with version",
                    &rule,
                    field,
                ));
            }
        }
        if level.forward() {
            if let Err((rule, field)) = can_read(new, old) {
                messages.push(describe(
                    "FORWARD",
                    *version,
                    "readers of version",
                    &rule,
                    field,
                ));
            }
        }
    }
    messages
}

fn describe(kind: &str, version: u32, what: &str, rule: &str, field: Option<String>) -> String {
    let field = field.map(|f| format!(" (field `{f}`)")).unwrap_or_default();
    let what = if kind == "FORWARD" {
        format!("{what} {version} cannot read data written with the new schema")
    } else {
        format!("{what} {version}")
    };
    format!("{kind}: {what}{field}: {rule}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &str) -> Schema {
        Schema::parse_str(&format!(
            r#"{{"type":"record","name":"Order","namespace":"shop","fields":[{fields}]}}"#
        ))
        .unwrap()
    }

    #[test]
    fn added_field_with_default_is_backward_but_not_forward_breaking() {
        let v1 = schema(r#"{"name":"id","type":"string"}"#);
        let v2 =
            schema(r#"{"name":"id","type":"string"},{"name":"note","type":"string","default":""}"#);
        let existing = vec![(1, v1.clone())];
        assert!(check(CompatibilityLevel::Backward, &v2, &existing).is_empty());
        assert!(check(CompatibilityLevel::Forward, &v2, &existing).is_empty());
        assert!(check(CompatibilityLevel::Full, &v2, &existing).is_empty());
    }

    #[test]
    fn added_field_without_default_breaks_backward_and_names_the_field() {
        let v1 = schema(r#"{"name":"id","type":"string"}"#);
        let v2 = schema(r#"{"name":"id","type":"string"},{"name":"amount","type":"long"}"#);
        let existing = vec![(1, v1)];
        let m = check(CompatibilityLevel::Backward, &v2, &existing);
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(
            m[0].starts_with("BACKWARD") && m[0].contains("field `amount`"),
            "{m:?}"
        );
        assert!(check(CompatibilityLevel::Forward, &v2, &existing).is_empty());
        assert_eq!(check(CompatibilityLevel::Full, &v2, &existing).len(), 1);
        assert!(check(CompatibilityLevel::None, &v2, &existing).is_empty());
    }

    #[test]
    fn promotions_follow_the_resolution_rules() {
        let int = schema(r#"{"name":"n","type":"int"}"#);
        let long = schema(r#"{"name":"n","type":"long"}"#);
        assert!(can_read(&int, &long).is_ok(), "int promotes to long");
        let (rule, field) = can_read(&long, &int).unwrap_err();
        assert_eq!(field.as_deref(), Some("n"), "{rule}");
    }

    #[test]
    fn transitive_levels_check_every_version() {
        let v1 = schema(r#"{"name":"id","type":"string"}"#);
        let v2 = schema(r#"{"name":"id","type":"string"},{"name":"x","type":"int","default":0}"#);
        // v3 drops `id` and adds `y` without a default: it can read neither
        // earlier version, and readers of both need the `id` it stopped writing.
        let v3 = schema(r#"{"name":"x","type":"int","default":0},{"name":"y","type":"int"}"#);
        let existing = vec![(1, v1), (2, v2)];
        assert_eq!(check(CompatibilityLevel::Backward, &v3, &existing).len(), 1);
        assert_eq!(
            check(CompatibilityLevel::BackwardTransitive, &v3, &existing).len(),
            2
        );
        let m = check(CompatibilityLevel::ForwardTransitive, &v3, &existing);
        assert_eq!(
            m.len(),
            2,
            "old readers need `id`, which v3 no longer writes: {m:?}"
        );
        assert!(m.iter().all(|x| x.contains("field `id`")), "{m:?}");
        assert_eq!(
            check(CompatibilityLevel::FullTransitive, &v3, &existing).len(),
            4
        );
    }
}
