//! The README's first command: the demo runs every step of its story and exits 0.

use std::process::Command;

#[test]
fn demo_runs_every_step() {
    let output = Command::new(env!("CARGO_BIN_EXE_phalanx"))
        .args(["demo", "--non-interactive"])
        .output()
        .expect("the phalanx binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("all steps worked"), "{stdout}");
    assert!(stdout.contains("restarts            1"), "{stdout}");
    assert!(stdout.contains("the chain reconfigured"), "{stdout}");
    assert!(stdout.contains(" 0 lost"), "{stdout}");
}

#[test]
fn bad_arguments_give_a_short_error_and_a_non_zero_exit() {
    let output = Command::new(env!("CARGO_BIN_EXE_phalanx"))
        .args(["demo", "--no-such-flag"])
        .output()
        .expect("the phalanx binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unexpected argument"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
