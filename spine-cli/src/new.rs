//! `spine new`: renders a template (minijinja; the templates are compiled
//! into the binary) into a new crate directory.

use std::path::{Path, PathBuf};

use minijinja::{context, Environment};

use crate::cli::{NewArgs, Template};
use crate::error::{io, CliError};

/// (path in the crate, template name, template text), per template.
fn files(t: Template) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut f = vec![
        (
            "Cargo.toml",
            "Cargo.toml",
            include_str!("../templates/common/Cargo.toml.j2"),
        ),
        (
            "spine.toml",
            "spine.toml",
            include_str!("../templates/common/spine.toml.j2"),
        ),
        (
            "README.md",
            "README.md",
            include_str!("../templates/common/README.md.j2"),
        ),
        (
            "deploy/Dockerfile",
            "deploy/Dockerfile",
            include_str!("../templates/deploy/Dockerfile.j2"),
        ),
        (
            "deploy/kubernetes.yaml",
            "deploy/kubernetes.yaml",
            include_str!("../templates/deploy/kubernetes.yaml.j2"),
        ),
    ];
    match t {
        Template::Json => {
            f.push((
                "src/main.rs",
                "json/main.rs",
                include_str!("../templates/json/main.rs.j2"),
            ));
            f.push((
                "tests/handlers.rs",
                "json/test.rs",
                include_str!("../templates/json/test.rs.j2"),
            ));
        }
        Template::Avro => {
            f.push((
                "src/main.rs",
                "avro/main.rs",
                include_str!("../templates/avro/main.rs.j2"),
            ));
            f.push((
                "tests/handlers.rs",
                "avro/test.rs",
                include_str!("../templates/avro/test.rs.j2"),
            ));
            f.push((
                "schemas/orders.avsc",
                "avro/in.avsc",
                include_str!("../templates/avro/in.avsc.j2"),
            ));
            f.push((
                "schemas/orders.accepted.avsc",
                "avro/out.avsc",
                include_str!("../templates/avro/out.avsc.j2"),
            ));
        }
        Template::Pipeline => {
            f.push((
                "src/main.rs",
                "pipeline/main.rs",
                include_str!("../templates/pipeline/main.rs.j2"),
            ));
            f.push((
                "tests/pipeline.rs",
                "pipeline/test.rs",
                include_str!("../templates/pipeline/test.rs.j2"),
            ));
        }
    }
    f
}

/// Cargo's rule, a little stricter: ASCII letters, digits, `-`, `_`, starting
/// with a letter, not a Rust keyword that would break `use`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !matches!(
            name,
            "test" | "self" | "super" | "crate" | "spine" | "std" | "core"
        )
}

pub(crate) fn run(args: &NewArgs) -> Result<(), CliError> {
    if !valid_name(&args.name) {
        return Err(CliError::InvalidName(args.name.clone()));
    }
    let dir = args.path.join(&args.name);
    if dir.exists() {
        let empty = std::fs::read_dir(&dir).map_err(io(&dir))?.next().is_none();
        if !empty {
            return Err(CliError::NotEmpty(dir));
        }
    }
    let dep = dependency(args, built_from_checkout())?;
    let spine_dep = dep.line();
    let template = match args.template {
        Template::Json => "json",
        Template::Avro => "avro",
        Template::Pipeline => "pipeline",
    };
    let (in_topic, in_event, out_topic, out_event) = match args.template {
        Template::Pipeline => ("texts", "text.submitted", "texts.counted", "text.counted"),
        _ => (
            "orders",
            "order.placed",
            "orders.accepted",
            "order.accepted",
        ),
    };
    let ctx = context! {
        name => &args.name,
        template => template,
        spine_dep => &spine_dep,
        spine_path => dep.is_path(),
        namespace => format!("com.example.{}", args.name.replace('-', "_")),
        in_topic, in_event, out_topic, out_event,
    };
    let mut env = Environment::new();
    // Generated files end with a newline, as their templates do.
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
        .map_err(|source| CliError::Template {
            name: "syntax".into(),
            source,
        })?;
    env.set_syntax(syntax);
    let files = files(args.template);
    for (_, name, text) in &files {
        env.add_template(name, text)
            .map_err(|source| CliError::Template {
                name: (*name).to_owned(),
                source,
            })?;
    }
    for (path, name, _) in &files {
        let rendered = env
            .get_template(name)
            .and_then(|t| t.render(&ctx))
            .map_err(|source| CliError::Template {
                name: (*name).to_owned(),
                source,
            })?;
        write(&dir.join(path), &rendered)?;
    }
    println!(
        "Created {} ({template} template) in {}",
        args.name,
        dir.display()
    );
    println!("Dependency: {} ({})", spine_dep, dep.reason());
    println!(
        "Next:\n  cd {}\n  spine dev            # local Kafka and schema registry\n  cargo run",
        dir.display()
    );
    Ok(())
}

/// Where the generated crate takes Spine from.
#[derive(Debug, PartialEq)]
enum SpineDependency {
    /// `--spine-path DIR`.
    Path(PathBuf),
    /// No flag, and the checkout this binary was built from still exists:
    /// until the crates are on crates.io, that is the one source that builds.
    Checkout(PathBuf),
    /// `--spine-version`, or a binary installed from crates.io (its own
    /// version, so that the CLI and the library match).
    Published { version: String, asked: bool },
}

impl SpineDependency {
    fn line(&self) -> String {
        match self {
            SpineDependency::Path(p) | SpineDependency::Checkout(p) => {
                format!("{PACKAGE} = {{ path = {:?} }}", p.display().to_string())
            }
            SpineDependency::Published { version, .. } => format!("{PACKAGE} = \"{version}\""),
        }
    }

    fn is_path(&self) -> bool {
        !matches!(self, SpineDependency::Published { .. })
    }

    fn reason(&self) -> &'static str {
        match self {
            SpineDependency::Path(_) => "--spine-path",
            SpineDependency::Checkout(_) => {
                "the checkout this `spine` was built from; pass --spine-version to use crates.io instead"
            }
            SpineDependency::Published { asked: true, .. } => "--spine-version",
            SpineDependency::Published { asked: false, .. } => {
                "the published crate of this `spine`'s version"
            }
        }
    }
}

/// The facade's package name; its library is `spine`, so code says `spine::`.
const PACKAGE: &str = "spine-kafka";

/// The Spine checkout this binary was built from, if it is one and still
/// exists. A `spine` installed from crates.io was built from a package in
/// cargo's registry cache, whose parent directory holds no Spine workspace.
fn built_from_checkout() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).ok()?;
    manifest
        .contains(&format!("name = \"{PACKAGE}\""))
        .then(|| root.to_path_buf())
}

fn dependency(args: &NewArgs, checkout: Option<PathBuf>) -> Result<SpineDependency, CliError> {
    if let Some(p) = &args.spine_path {
        let p = std::fs::canonicalize(p).map_err(io(p))?;
        if !p.join("Cargo.toml").exists() {
            return Err(CliError::Refused(format!(
                "--spine-path {} has no Cargo.toml; point it at a checkout of Spine",
                p.display()
            )));
        }
        return Ok(SpineDependency::Path(p));
    }
    Ok(match (&args.spine_version, checkout) {
        (Some(v), _) => SpineDependency::Published {
            version: v.clone(),
            asked: true,
        },
        (None, Some(dir)) => SpineDependency::Checkout(dir),
        (None, None) => SpineDependency::Published {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            asked: false,
        },
    })
}

fn write(path: &Path, text: &str) -> Result<(), CliError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(path, text).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(spine_path: Option<&Path>, spine_version: Option<&str>) -> NewArgs {
        NewArgs {
            name: "svc".into(),
            template: Template::Json,
            path: ".".into(),
            spine_path: spine_path.map(Path::to_path_buf),
            spine_version: spine_version.map(str::to_owned),
        }
    }

    #[test]
    fn without_a_checkout_the_published_crate_of_the_cli_version() {
        let dep = dependency(&args(None, None), None).unwrap();
        assert_eq!(
            dep.line(),
            format!("spine-kafka = \"{}\"", env!("CARGO_PKG_VERSION"))
        );
        assert!(!dep.is_path());
    }

    #[test]
    fn with_a_checkout_its_path_unless_a_version_is_asked_for() {
        let dir = PathBuf::from("/src/spine");
        let dep = dependency(&args(None, None), Some(dir.clone())).unwrap();
        assert_eq!(dep.line(), "spine-kafka = { path = \"/src/spine\" }");
        let dep = dependency(&args(None, Some("0.3.1")), Some(dir)).unwrap();
        assert_eq!(dep.line(), "spine-kafka = \"0.3.1\"");
    }

    #[test]
    fn this_binary_knows_its_checkout() {
        let root = built_from_checkout().expect("built from this workspace");
        assert!(root.join("spine-cli").is_dir(), "{}", root.display());
    }

    #[test]
    fn crate_names() {
        for ok in ["orders", "orders-service", "a1_b"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "1st", "-x", "has space", "ünï", "self", "a/b"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
