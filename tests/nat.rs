//! NAT traversal end to end: runs `tests/nat/run.sh` (network namespaces,
//! two NAT routers, public and NATed nodes; see the script's header).
//!
//! It needs root and `ip`, `iptables`, `curl`, `jq`; without root it is
//! skipped with a message, unless `PEERBOOK_TEST_REQUIRE_ALL=1` (CI), where
//! that is a failure.

use std::process::Command;

#[test]
fn nat_traversal_in_network_namespaces() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root {
        assert!(
            std::env::var("PEERBOOK_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
            "the NAT test needs root (network namespaces) and PEERBOOK_TEST_REQUIRE_ALL=1 is set"
        );
        eprintln!("skipped: the NAT test needs root (network namespaces); run `sudo bash tests/nat/run.sh`");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/nat/run.sh");
    let status = Command::new("bash")
        .arg(script)
        .env("NAT_TEST_BIN", env!("CARGO_BIN_EXE_peerbook"))
        .status()
        .expect("cannot run bash tests/nat/run.sh");
    assert!(
        status.success(),
        "tests/nat/run.sh failed ({status}); its output says where"
    );
}
