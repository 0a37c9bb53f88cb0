//! Helpers shared by the `spine` command's tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};

/// The workspace root (a checkout of Spine).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("spine-cli is in the workspace")
        .to_path_buf()
}

/// stdout then stderr, for assertions and failure messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The `spine` command, run in `dir`, without the test run's `SPINE_*` variables.
pub fn spine(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_spine"));
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("SPINE_") {
            c.env_remove(k);
        }
    }
    c
}

/// Sends `sig` (e.g. `-INT`) to `child` and waits for it.
pub fn signal(child: &mut Child, sig: &str) -> ExitStatus {
    let sent = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    child.wait().expect("the child ends")
}
