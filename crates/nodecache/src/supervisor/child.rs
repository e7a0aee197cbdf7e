//! The supervised child: `kdns node-cache …` again with the child variable set, killed with the
//! supervisor, first in line for the OOM killer; its exit reported by a waiting thread.

use super::{CHILD_ENV, METRICS_ENV};
use std::path::Path;
use tokio::sync::mpsc;

/// Starts the child; its exit arrives on `exits` as (pid, how it ended). Returns its pid.
pub(super) fn spawn(
    args: &[String],
    exits: &mpsc::UnboundedSender<(u32, String)>,
    metrics: &Path,
) -> std::io::Result<u32> {
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("node-cache").args(args).env(CHILD_ENV, "1").env(METRICS_ENV, metrics);
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn()?;
    let pid = child.id();
    // The child holds the cache: when memory runs out it is the one to go, not the supervisor.
    let _ = std::fs::write(format!("/proc/{pid}/oom_score_adj"), "1000");
    let tx = exits.clone();
    std::thread::Builder::new().name("kdns-child-wait".into()).spawn(move || {
        let status = child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        let _ = tx.send((pid, status));
    })?;
    Ok(pid)
}

#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl(2) is async-signal-safe and touches only the new process.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

#[allow(unsafe_code)]
pub(super) fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}
