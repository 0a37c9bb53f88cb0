//! The compatibility checker, by a table of schema changes: each change and
//! its mirror image, in all seven levels, transitive ones against a history
//! in which only the older version breaks. Expected verdicts follow the Avro
//! specification's resolution rules, as Confluent's `AvroCompatibilityChecker`
//! applies them; the rows marked "issue 15" were wrong before.

use apache_avro::Schema;
use spine_kafka_avro::registry::compat::{self, Resolution, Rule};
use spine_kafka_avro::registry::CompatibilityLevel as L;

/// A change v1 → v2: whether v2 reads v1's data (backward) and v1 reads
/// v2's (forward), and for a refusal, the rule and the words the message
/// must hold (the field, branch or symbol).
struct Case {
    name: &'static str,
    v1: &'static str,
    v2: &'static str,
    backward: Verdict,
    forward: Verdict,
}

#[derive(Clone, Copy)]
enum Verdict {
    Ok,
    Refused(Rule, &'static [&'static str]),
}

use Verdict::{Ok as Yes, Refused as No};

fn record(fields: &str) -> String {
    format!(r#"{{"type":"record","name":"T","namespace":"ex","fields":[{fields}]}}"#)
}

fn cases() -> Vec<Case> {
    const A: &str = r#"{"name":"a","type":"int"}"#;
    vec![
        // issue 15
        Case {
            name: "drop_nullable",
            v1: r#"{"name":"a","type":["null","int"],"default":null}"#,
            v2: A,
            backward: No(Rule::UnionBranch, &["field `a`", "`null`"]),
            forward: Yes,
        },
        Case {
            name: "make_nullable",
            v1: A,
            v2: r#"{"name":"a","type":["null","int"],"default":null}"#,
            backward: Yes,
            forward: No(Rule::UnionBranch, &["field `a`", "`null`"]),
        },
        Case {
            name: "union_widen",
            v1: r#"{"name":"u","type":["int","string"]}"#,
            v2: r#"{"name":"u","type":["int","string","boolean"]}"#,
            backward: Yes,
            forward: No(Rule::UnionBranch, &["field `u`", "`boolean`"]),
        },
        Case {
            name: "union_narrow",
            v1: r#"{"name":"u","type":["int","string","boolean"]}"#,
            v2: r#"{"name":"u","type":["int","string"]}"#,
            backward: No(Rule::UnionBranch, &["field `u`", "`boolean`"]),
            forward: Yes,
        },
        Case {
            name: "enum_add_symbol",
            v1: r#"{"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y"]}}"#,
            v2: r#"{"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y","Z"]}}"#,
            backward: Yes,
            forward: No(Rule::EnumSymbol, &["field `e`", "`Z`"]),
        },
        Case {
            name: "enum_remove_symbol",
            v1: r#"{"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y","Z"]}}"#,
            v2: r#"{"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y"]}}"#,
            backward: No(Rule::EnumSymbol, &["field `e`", "`Z`"]),
            forward: Yes,
        },
        Case {
            name: "remove_field_no_default",
            v1: r#"{"name":"a","type":"int"},{"name":"b","type":"int"}"#,
            v2: A,
            backward: Yes,
            forward: No(Rule::MissingDefault, &["field `b`"]),
        },
        // Agreed before: the rules around the cases above.
        Case {
            name: "add_field_with_default",
            v1: A,
            v2: r#"{"name":"a","type":"int"},{"name":"b","type":"int","default":0}"#,
            backward: Yes,
            forward: Yes,
        },
        Case {
            name: "add_field_without_default",
            v1: A,
            v2: r#"{"name":"a","type":"int"},{"name":"b","type":"int"}"#,
            backward: No(Rule::MissingDefault, &["field `b`"]),
            forward: Yes,
        },
        Case {
            name: "promote_int_to_long",
            v1: A,
            v2: r#"{"name":"a","type":"long"}"#,
            backward: Yes,
            forward: No(Rule::TypeMismatch, &["field `a`", "`long`"]),
        },
        Case {
            name: "int_to_string",
            v1: A,
            v2: r#"{"name":"a","type":"string"}"#,
            backward: No(Rule::TypeMismatch, &["field `a`"]),
            forward: No(Rule::TypeMismatch, &["field `a`"]),
        },
        Case {
            name: "string_to_bytes",
            v1: r#"{"name":"a","type":"string"}"#,
            v2: r#"{"name":"a","type":"bytes"}"#,
            backward: Yes,
            forward: Yes,
        },
        Case {
            name: "union_reorder",
            v1: r#"{"name":"u","type":["int","string"]}"#,
            v2: r#"{"name":"u","type":["string","int"]}"#,
            backward: Yes,
            forward: Yes,
        },
        Case {
            name: "enum_add_symbol_with_default",
            v1: r#"{"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y"],"default":"X"}}"#,
            v2: r#"{"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y","Z"],"default":"X"}}"#,
            backward: Yes,
            forward: Yes,
        },
        Case {
            name: "fixed_size",
            v1: r#"{"name":"f","type":{"type":"fixed","name":"F","size":4}}"#,
            v2: r#"{"name":"f","type":{"type":"fixed","name":"F","size":8}}"#,
            backward: No(Rule::FixedSize, &["field `f`"]),
            forward: No(Rule::FixedSize, &["field `f`"]),
        },
        Case {
            name: "nested_field_without_default",
            v1: r#"{"name":"n","type":{"type":"record","name":"N","fields":[{"name":"x","type":"int"}]}}"#,
            v2: r#"{"name":"n","type":{"type":"record","name":"N","fields":[{"name":"x","type":"int"},{"name":"y","type":"int"}]}}"#,
            backward: No(Rule::MissingDefault, &["field `n.y`"]),
            forward: Yes,
        },
        Case {
            name: "array_items_promote",
            v1: r#"{"name":"xs","type":{"type":"array","items":"int"}}"#,
            v2: r#"{"name":"xs","type":{"type":"array","items":"long"}}"#,
            backward: Yes,
            forward: No(Rule::TypeMismatch, &["field `xs`"]),
        },
        Case {
            name: "map_values_promote",
            v1: r#"{"name":"m","type":{"type":"map","values":"float"}}"#,
            v2: r#"{"name":"m","type":{"type":"map","values":"double"}}"#,
            backward: Yes,
            forward: No(Rule::TypeMismatch, &["field `m`"]),
        },
    ]
}

/// Whole-schema changes (not a change of one field of `ex.T`).
fn schema_cases() -> Vec<Case> {
    vec![
        // issue 15
        Case {
            name: "record_to_union_with_record",
            v1: r#"{"type":"record","name":"T","namespace":"ex","fields":[{"name":"a","type":"int"}]}"#,
            v2: r#"["null",{"type":"record","name":"T","namespace":"ex","fields":[{"name":"a","type":"int"}]}]"#,
            backward: Yes,
            forward: No(Rule::UnionBranch, &["`null`"]),
        },
        Case {
            name: "rename_record_with_alias",
            v1: r#"{"type":"record","name":"T","namespace":"ex","fields":[{"name":"a","type":"int"}]}"#,
            v2: r#"{"type":"record","name":"T2","namespace":"ex","aliases":["ex.T"],"fields":[{"name":"a","type":"int"}]}"#,
            backward: Yes,
            forward: No(Rule::NameMismatch, &["`ex.T2`"]),
        },
        // Agreed before.
        Case {
            name: "rename_record_without_alias",
            v1: r#"{"type":"record","name":"T","namespace":"ex","fields":[{"name":"a","type":"int"}]}"#,
            v2: r#"{"type":"record","name":"T2","namespace":"ex","fields":[{"name":"a","type":"int"}]}"#,
            backward: No(Rule::NameMismatch, &["`ex.T`"]),
            forward: No(Rule::NameMismatch, &["`ex.T2`"]),
        },
        Case {
            name: "change_namespace",
            v1: r#"{"type":"record","name":"T","namespace":"ex","fields":[{"name":"a","type":"int"}]}"#,
            v2: r#"{"type":"record","name":"T","namespace":"other","fields":[{"name":"a","type":"int"}]}"#,
            backward: Yes,
            forward: Yes,
        },
    ]
}

fn parse(text: &str) -> Schema {
    Schema::parse_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Every case, its mirror image (v2 → v1, directions swapped), parsed.
fn all() -> Vec<(String, Schema, Schema, Verdict, Verdict)> {
    let mut out = Vec::new();
    let field_cases = cases().into_iter().map(|c| Case {
        v1: Box::leak(record(c.v1).into_boxed_str()),
        v2: Box::leak(record(c.v2).into_boxed_str()),
        ..c
    });
    for c in field_cases.chain(schema_cases()) {
        let (v1, v2) = (parse(c.v1), parse(c.v2));
        out.push((
            c.name.to_owned(),
            v1.clone(),
            v2.clone(),
            c.backward,
            c.forward,
        ));
        out.push((
            format!("{} (mirror)", c.name),
            v2,
            v1,
            c.forward,
            c.backward,
        ));
    }
    out
}

fn expect(name: &str, level: &str, messages: &[String], verdicts: &[(&str, Verdict)]) {
    let refusals: Vec<_> = verdicts
        .iter()
        .filter_map(|(kind, v)| match v {
            Verdict::Ok => None,
            Verdict::Refused(rule, words) => Some((*kind, *rule, *words)),
        })
        .collect();
    assert_eq!(
        messages.len(),
        refusals.len(),
        "{name} under {level}: expected {} refusal(s), got {messages:#?}",
        refusals.len()
    );
    for (kind, rule, words) in refusals {
        let m = messages
            .iter()
            .find(|m| m.starts_with(kind))
            .unwrap_or_else(|| panic!("{name} under {level}: no {kind} refusal in {messages:#?}"));
        assert!(
            m.contains(rule.as_str()),
            "{name} under {level}: the message names the rule `{}`: {m}",
            rule.as_str()
        );
        for w in words {
            assert!(
                m.contains(w),
                "{name} under {level}: the message names {w}: {m}"
            );
        }
    }
}

/// The refusals `level` should make, given the case's two directions.
fn verdicts(level: L, backward: Verdict, forward: Verdict) -> Vec<(&'static str, Verdict)> {
    [
        level.backward().then_some(("BACKWARD", backward)),
        level.forward().then_some(("FORWARD", forward)),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[test]
fn every_case_and_its_mirror_in_all_seven_levels() {
    let mut checked = 0;
    for (name, v1, v2, backward, forward) in all() {
        let latest = vec![(1, v1.clone())];
        // The history [v1, v2']: v2' reads and is read by v2, so only a
        // transitive level sees v1.
        let history = vec![(1, v1.clone()), (2, v2.clone())];
        for (level, label) in [
            (L::None, "NONE"),
            (L::Backward, "BACKWARD"),
            (L::Forward, "FORWARD"),
            (L::Full, "FULL"),
        ] {
            let verdicts = verdicts(level, backward, forward);
            expect(&name, label, &compat::check(level, &v2, &latest), &verdicts);
            expect(&name, label, &compat::check(level, &v2, &history), &[]);
            checked += 1;
        }
        for (level, label) in [
            (L::BackwardTransitive, "BACKWARD_TRANSITIVE"),
            (L::ForwardTransitive, "FORWARD_TRANSITIVE"),
            (L::FullTransitive, "FULL_TRANSITIVE"),
        ] {
            let verdicts = verdicts(level, backward, forward);
            expect(
                &name,
                label,
                &compat::check(level, &v2, &history),
                &verdicts,
            );
            checked += 1;
        }
    }
    assert_eq!(checked, (18 + 4) * 2 * 7);
}

#[test]
fn a_union_or_enum_gap_is_partial_so_other_data_still_reads() {
    let union3 = parse(&record(r#"{"name":"u","type":["int","string","boolean"]}"#));
    let union2 = parse(&record(r#"{"name":"u","type":["int","string"]}"#));
    match compat::resolve(&union3, &union2) {
        Ok(Resolution::Partial(gaps)) => {
            assert_eq!(gaps.len(), 1, "{gaps:?}");
            assert_eq!(gaps[0].rule, Rule::UnionBranch);
            assert_eq!(gaps[0].field.as_deref(), Some("u"));
            assert!(gaps[0].detail.contains("`boolean`"), "{}", gaps[0]);
        }
        other => panic!("expected a partial resolution, got {other:?}"),
    }
    // No branch in common: nothing reads, an error.
    let bools = parse(&record(r#"{"name":"u","type":["boolean","null"]}"#));
    let err = compat::resolve(&bools, &union2).unwrap_err();
    assert_eq!(err.rule, Rule::UnionBranch, "{err}");
    assert_eq!(compat::resolve(&union2, &union3), Ok(Resolution::Full));
}

#[test]
fn recursive_types_resolve() {
    let list = parse(
        r#"{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},
            {"name":"next","type":["null","Node"],"default":null}]}"#,
    );
    let wider = parse(
        r#"{"type":"record","name":"Node","fields":[{"name":"v","type":"long"},
            {"name":"next","type":["null","Node"],"default":null}]}"#,
    );
    assert_eq!(compat::resolve(&list, &wider), Ok(Resolution::Full));
    let err = compat::can_read(&wider, &list).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("v"), "{err}");
}
