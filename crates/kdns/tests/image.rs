//! The runtime image, run: both entry points of the OCI image `scripts/image.sh` builds, from its
//! root filesystem (unpacked from the exported archive) under `chroot` in a private mount
//! namespace: `/coredns` as cluster DNS answering from a manifests directory, `/node-cache` as
//! the node agent in a network namespace with its interface and iptables rules made by the
//! image's own iptables. The test command builds (or reuses) the image and passes its directory
//! in `KDNS_IMAGE`; without it these tests say they did not run (unless `KDNS_REQUIRE_IMAGE=1`).

mod common;

use common::netns::*;
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The unpacked image's root filesystem, or `None` (with a note) when the image was not built.
fn image_root() -> Option<PathBuf> {
    let Ok(dir) = std::env::var("KDNS_IMAGE") else {
        assert!(std::env::var("KDNS_REQUIRE_IMAGE").as_deref() != Ok("1"), "KDNS_REQUIRE_IMAGE=1 but no KDNS_IMAGE");
        eprintln!("KDNS_IMAGE not set (scripts/image.sh builds it); image tests not run");
        return None;
    };
    if !can_run() {
        return None;
    }
    let root = Path::new(&dir).join("bundle/rootfs");
    assert!(root.join("usr/local/bin/kdns").is_file(), "{} holds no unpacked image", root.display());
    Some(root)
}

/// A scratch directory inside the image's /tmp (seen as `/tmp/<name>` from the chroot).
fn scratch(root: &Path, tag: &str) -> (PathBuf, String) {
    let name = format!("kdns-{tag}-{}-{}", std::process::id(), SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let host = root.join("tmp").join(&name);
    std::fs::create_dir_all(&host).unwrap();
    (host, format!("/tmp/{name}"))
}

/// `args` run as the image's `entry` under chroot in a private mount namespace with /proc and
/// /dev mounted and the node's resolv.conf bound in (as a container runtime would); in `netns`
/// when given. The chrooted process dies with the command (`--kill-child`).
fn chrooted(root: &Path, netns: Option<&str>, entry: &str, args: &[&str]) -> Command {
    let script = r#"set -e; r=$1; shift
mount -t proc proc "$r/proc"
mount --rbind /dev "$r/dev"
mount --bind /etc/resolv.conf "$r/etc/resolv.conf"
exec chroot "$r" "$@""#;
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "unshare"]);
            c
        }
        None => Command::new("unshare"),
    };
    cmd.args(["--mount", "--propagation", "private", "--fork", "--kill-child", "--", "sh", "-c", script, "sh"])
        .arg(root)
        .arg(entry)
        .args(args);
    cmd
}

/// The image has no shell and its entry points are the one binary.
#[test]
fn image_layout_has_entry_points_and_no_shell() {
    let Some(root) = image_root() else { return };
    for entry in ["coredns", "node-cache", "kdns"] {
        let target = std::fs::read_link(root.join(entry)).unwrap();
        assert_eq!(target, Path::new("/usr/local/bin/kdns"), "{entry}");
    }
    for shell in ["bin/sh", "usr/bin/sh", "bin/bash", "usr/bin/bash"] {
        assert!(!root.join(shell).exists(), "{shell} in the image");
    }
    for tool in ["usr/sbin/iptables-nft-restore", "usr/sbin/iptables-legacy-save", "usr/sbin/nft"] {
        assert!(root.join(tool).exists(), "{tool} missing");
    }
    let dir = Path::new(&std::env::var("KDNS_IMAGE").unwrap()).to_path_buf();
    assert!(dir.join("kdns.oci.tar").is_file(), "the OCI archive");
    let report = std::fs::read_to_string(dir.join("report.txt")).unwrap();
    assert!(report.contains("shell: no"), "{report}");
}

/// `/coredns` from the image answers cluster names from a manifests directory.
#[test]
fn coredns_entry_point_serves_cluster_dns_from_the_image() {
    let Some(root) = image_root() else { return };
    let (host, inside) = scratch(&root, "cdns");
    std::fs::create_dir_all(host.join("cluster")).unwrap();
    for f in ["namespaces.yaml", "services.yaml", "endpointslices.yaml"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cluster").join(f),
            host.join("cluster").join(f),
        )
        .unwrap();
    }
    let port = free_port();
    let corefile = format!(".:{port} {{\n    bind 127.0.0.1\n    kubernetes cluster.local {{\n        manifests {inside}/cluster\n    }}\n}}\n");
    std::fs::write(host.join("Corefile"), corefile).unwrap();
    let cmd = chrooted(&root, None, "/coredns", &["-conf", &format!("{inside}/Corefile")]);
    let mut k = Kdns::from_command(cmd, temp_dir("image-cdns"), host.join("Corefile"));
    k.port = port;
    k.wait_for_line(&format!(".:{port} on 127.0.0.1"), Duration::from_secs(15));
    let r = udp_until(k.addr(), &query("web.shop.svc.cluster.local.", RecordType::A), Duration::from_secs(10), |r| {
        r.metadata.response_code == ResponseCode::NoError && !r.answers.is_empty()
    });
    assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{:?}", k.lines());
    assert!(!r.answers.is_empty(), "{r:?}");
    drop(k);
    let _ = std::fs::remove_dir_all(host);
}

/// `/node-cache` from the image sets up its interface and NOTRACK rules with the image's own
/// iptables in a network namespace and answers on the link-local address.
#[test]
fn node_cache_entry_point_runs_the_agent_from_the_image() {
    let Some(root) = image_root() else { return };
    let (node, _cluster, _upstream) = lab("img");
    let (host, inside) = scratch(&root, "nc");
    std::fs::create_dir_all(host.join("coredns")).unwrap();
    std::fs::write(host.join("coredns/Corefile.base"), stock_template("169.254.20.10", "10.96.0.10")).unwrap();
    let args = [
        "-localip",
        "169.254.20.10,10.96.0.10",
        "-conf",
        &format!("{inside}/Corefile"),
        "-basecorefile",
        &format!("{inside}/coredns/Corefile.base"),
        "-upstreamsvc",
        "kube-dns-upstream",
        "-cachesnapshot",
        &format!("{inside}/cache.snapshot"),
        "-firewall",
        "iptables",
    ];
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = chrooted(&root, Some(&node.name), "/node-cache", &args);
    cmd.env("KUBE_DNS_UPSTREAM_SERVICE_HOST", "10.200.0.2");
    let nc = Kdns::from_command(cmd, temp_dir("image-nc"), host.join("Corefile"));
    wait_intercepting(&node, &nc);
    let link_local: SocketAddr = "169.254.20.10:53".parse().unwrap();
    let r = ask(&node, link_local, "web.default.svc.cluster.local.", false, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no answer on 169.254.20.10; output:\n{}", nc.lines().join("\n")));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    let rules = node.run(&["iptables-save", "-t", "raw"]);
    assert!(rules.contains(SKIP), "the image's iptables installed the NOTRACK rules:\n{rules}");
    drop(nc);
    let _ = std::fs::remove_dir_all(host);
}

/// Where podman is installed, the OCI archive runs under it too: loaded with `podman load`, run
/// with host networking. This sandbox needs three things a normal host does not (each a no-op
/// elsewhere): a private mount namespace without the cgroup2 hierarchy mounted beside v1 (crun
/// refuses hybrid mode), `--cgroups=disabled`, and deploy/image/crun-no-rlimits as the runtime
/// (setrlimit of RLIMIT_NPROC is refused even at its current value).
#[test]
fn podman_runs_the_archive_where_installed() {
    let Some(_root) = image_root() else { return };
    if Command::new("podman").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        eprintln!("podman not installed; the archive was run under chroot only");
        return;
    }
    let dir = std::env::var("KDNS_IMAGE").unwrap();
    let load = Command::new("podman").args(["load", "-q", "-i", &format!("{dir}/kdns.oci.tar")]).output().unwrap();
    let loaded = String::from_utf8_lossy(&load.stdout).to_string();
    assert!(load.status.success(), "{loaded} {}", String::from_utf8_lossy(&load.stderr));
    let image = loaded.trim().rsplit(' ').next().unwrap().to_string();
    let runtime_dir = temp_dir("podman-rt");
    let runtime = runtime_dir.join("crun");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/image/crun-no-rlimits"), &runtime).unwrap();
    let port = free_port();
    let name = format!("kdns-image-test-{}", std::process::id());
    let script = r#"set -e
umount -l /sys/fs/cgroup/unified 2>/dev/null || true
exec podman run --rm -i --name "$1" --runtime "$2" --cgroups=disabled --network host "$3" -conf stdin -dns.port "$4""#;
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--fork", "--kill-child", "--", "sh", "-c", script, "sh"])
        .arg(&name)
        .arg(&runtime)
        .arg(&image)
        .arg(port.to_string())
        .stdin(std::process::Stdio::piped());
    let mut k = Kdns::from_command(cmd, runtime_dir.clone(), runtime_dir.join("Corefile"));
    {
        use std::io::Write;
        let mut stdin = k.child.stdin.take().unwrap();
        stdin.write_all(b". {\n    bind 127.0.0.1\n    whoami\n}\n").unwrap();
    }
    k.port = port;
    k.wait_for_line(&format!(".:{port} on 127.0.0.1"), Duration::from_secs(30));
    let r = udp(k.addr(), &query("example.org.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(!r.additionals.is_empty(), "whoami answered from the container");
    let _ = Command::new("podman").args(["rm", "-f", &name]).output();
    drop(k);
}
