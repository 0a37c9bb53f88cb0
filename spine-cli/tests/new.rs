//! `spine new`: each template generates a crate that builds and passes its own
//! tests against this checkout of Spine (`--spine-path`); the service command
//! line of a generated crate (`routes`, `schemas check`); and the refusals.
//!
//! The generated crates build in `target/generated` (not the workspace's own
//! target directory, which the running `cargo test` holds), with this
//! workspace's Cargo.lock, so that dependencies are built once for all three.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{text, workspace};

/// `spine new`; with `--spine-path` pointing at this checkout, or without it,
/// when the CLI must find the checkout it was built from by itself.
fn spine_new(name: &str, template: &str, dir: &Path, spine_path: bool) -> PathBuf {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spine"));
    cmd.args(["new", name, "--template", template, "--path"])
        .arg(dir);
    if spine_path {
        cmd.arg("--spine-path").arg(workspace());
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let krate = dir.join(name);
    std::fs::copy(workspace().join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    krate
}

fn cargo(krate: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(args).current_dir(krate).env(
        "CARGO_TARGET_DIR",
        workspace().join("target").join("generated"),
    );
    for (k, _) in std::env::vars() {
        if k.starts_with("SPINE_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().unwrap()
}

#[test]
fn every_template_builds_and_passes_its_tests() {
    let tmp = tempfile::tempdir().unwrap();
    for template in ["json", "avro", "pipeline"] {
        // The json crate is generated as a new user would, without
        // --spine-path: it must build against this checkout all the same.
        let krate = spine_new(
            &format!("svc-{template}"),
            template,
            tmp.path(),
            template != "json",
        );
        for f in ["Cargo.toml", "src/main.rs", "spine.toml", "README.md"] {
            assert!(krate.join(f).exists(), "{template}: {f}");
        }
        let out = cargo(&krate, &["test", "--quiet"]);
        assert!(
            out.status.success(),
            "{template}: cargo test failed:\n{}",
            text(&out)
        );
        assert!(
            !text(&out).contains("warning:"),
            "{template}: warnings:\n{}",
            text(&out)
        );
    }
    assert!(tmp.path().join("svc-avro/schemas/orders.avsc").exists());

    // The service's own command line.
    let json = tmp.path().join("svc-json");
    let out = cargo(&json, &["run", "--quiet", "--", "routes"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("orders")
            && t.contains("order.placed")
            && t.contains("accept")
            && t.contains("OrderPlaced"),
        "{t}"
    );
    let out = cargo(&json, &["run", "--quiet", "--", "--help"]);
    assert!(text(&out).contains("Examples:"), "{}", text(&out));
    let pipeline = tmp.path().join("svc-pipeline");
    let out = cargo(&pipeline, &["run", "--quiet", "--", "routes"]);
    assert!(
        text(&out).contains("count_words (pipeline: normalize → count)"),
        "{}",
        text(&out)
    );
    let out = cargo(&json, &["run", "--quiet", "--", "asyncapi"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("AsyncAPI JSON");
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["channels"]["orders"]["address"], "orders");
}

/// The generated service's own `schemas check` against the registry at `url`.
fn schemas_check(krate: &Path, url: &str) -> Output {
    cargo(
        krate,
        &[
            "run",
            "--quiet",
            "--",
            "schemas",
            "check",
            "--registry",
            url,
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_avro_service_checks_its_types_against_the_registry() {
    use spine_kafka_avro::registry::{Auth, DevRegistry, RegistryClient};

    let tmp = tempfile::tempdir().unwrap();
    let krate = spine_new("svc-drift", "avro", tmp.path(), true);
    let reg = DevRegistry::new()
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = reg.url();

    // Nothing registered yet: the check fails.
    let out = schemas_check(&krate, &url);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("not registered"), "{}", text(&out));

    // The payload and the declared reply types, exported as .avsc.
    let exported = tmp.path().join("exported");
    let out = cargo(
        &krate,
        &[
            "run",
            "--quiet",
            "--",
            "schemas",
            "export",
            exported.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    for record in ["OrderPlaced", "OrderAccepted"] {
        let path = exported.join(format!("com.example.svc_drift.{record}.avsc"));
        assert!(path.exists(), "{} missing: {}", path.display(), text(&out));
    }

    // Register the crate's schemas with the CLI: now it passes.
    let out = Command::new(env!("CARGO_BIN_EXE_spine"))
        .args(["schemas", "register", "--registry", &url])
        .current_dir(&krate)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = schemas_check(&krate, &url);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ok: can read"), "{}", text(&out));

    // Drift: a writer schema the handler's type cannot read.
    let client = RegistryClient::new(&url, Auth::None).unwrap();
    client
        .set_compatibility(
            Some("orders-value"),
            spine_kafka_avro::registry::CompatibilityLevel::None,
        )
        .await
        .unwrap();
    client
        .register(
            "orders-value",
            r#"{"type": "record", "name": "OrderPlaced", "namespace": "com.example.svc_drift",
                "fields": [{"name": "order_id", "type": "long"}, {"name": "amount_cents", "type": "long"}]}"#,
        )
        .await
        .unwrap();
    let out = schemas_check(&krate, &url);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("order_id"),
        "names the field: {}",
        text(&out)
    );
    reg.stop().await;
}

#[test]
fn new_refuses_bad_names_and_non_empty_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        Command::new(env!("CARGO_BIN_EXE_spine"))
            .args(["new", name, "--path"])
            .arg(tmp.path())
            .output()
            .unwrap()
    };
    let out = run("1-bad name");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("not a valid crate name"),
        "{}",
        text(&out)
    );
    std::fs::create_dir_all(tmp.path().join("taken")).unwrap();
    std::fs::write(tmp.path().join("taken/keep.txt"), "mine").unwrap();
    let out = run("taken");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("exists and is not empty"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("taken/keep.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn new_depends_on_its_checkout_until_published_or_on_the_version_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let new = |name: &str, extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_spine"))
            .args(["new", name, "--path"])
            .arg(tmp.path())
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let manifest = std::fs::read_to_string(tmp.path().join(name).join("Cargo.toml")).unwrap();
        (text(&out), manifest)
    };

    // No flag: the checkout this binary was built from, said so.
    let (out, manifest) = new("from-checkout", &[]);
    let line = format!(
        "spine-kafka = {{ path = {:?} }}",
        workspace().display().to_string()
    );
    assert!(manifest.contains(&line), "{manifest}");
    assert!(manifest.contains("\n[workspace]"), "{manifest}");
    assert!(
        out.contains(&format!(
            "Dependency: {line} (the checkout this `spine` was built from"
        )),
        "{out}"
    );

    // The published package, as once on crates.io.
    let (out, manifest) = new("from-crates-io", &["--spine-version", "0.1.0"]);
    assert!(
        manifest.contains("\nspine-kafka = \"0.1.0\"\n"),
        "{manifest}"
    );
    assert!(!manifest.contains("[workspace]"), "{manifest}");
    assert!(!manifest.contains("path ="), "{manifest}");
    assert!(
        out.contains("Dependency: spine-kafka = \"0.1.0\" (--spine-version)"),
        "{out}"
    );
}

#[test]
fn the_deploy_folder_is_what_spine_new_generates() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_spine"))
        .args([
            "new",
            "orders-service",
            "--template",
            "json",
            "--spine-version",
            "0.1.0",
        ])
        .arg("--path")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for f in ["Dockerfile", "kubernetes.yaml"] {
        let generated =
            std::fs::read_to_string(tmp.path().join("orders-service/deploy").join(f)).unwrap();
        let kept = std::fs::read_to_string(workspace().join("deploy").join(f)).unwrap();
        assert_eq!(
            generated, kept,
            "deploy/{f} differs from what `spine new orders-service` generates; \
             regenerate it (deploy/README.md)"
        );
    }
}
