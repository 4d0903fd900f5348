//! What the operator sees when something is wrong: bad flags, a bad config
//! file, a bad environment variable, a busy port, an unreachable bootstrap
//! node, a broken data dir or key. Each gives a message that names the
//! problem and the right exit status: 2 for usage and configuration, 1 for
//! the environment; an unreachable bootstrap node is not fatal at all.

mod common;

use std::net::TcpListener;

use common::{command, eventually, free_port, run_to_exit, Finished, NodeOpts};

/// `peerbook node` with a fresh data dir, loopback ports, and `args`.
fn node_cmd(dir: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut cmd = NodeOpts::new("node", dir).command();
    cmd.args(args);
    cmd
}

fn assert_fails(f: &Finished, code: i32, needles: &[&str]) {
    assert_eq!(
        f.status.code(),
        Some(code),
        "exit status\nstdout:\n{}\nstderr:\n{}",
        f.stdout,
        f.stderr
    );
    for needle in needles {
        assert!(
            f.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            f.stderr
        );
    }
}

#[test]
fn bad_flags_get_clap_errors_and_status_2() {
    let mut cmd = command();
    cmd.args(["node", "--bogus"]);
    assert_fails(&run_to_exit(cmd), 2, &["unexpected argument '--bogus'"]);

    let mut cmd = command();
    cmd.args(["node", "--listen", "not-a-multiaddr"]);
    assert_fails(
        &run_to_exit(cmd),
        2,
        &["invalid value 'not-a-multiaddr' for '--listen"],
    );

    let mut cmd = command();
    cmd.args(["node", "--api", "localhost"]);
    assert_fails(
        &run_to_exit(cmd),
        2,
        &["invalid value 'localhost' for '--api"],
    );

    let mut cmd = command();
    cmd.arg("frobnicate");
    assert_fails(
        &run_to_exit(cmd),
        2,
        &["unrecognized subcommand 'frobnicate'"],
    );
}

#[test]
fn a_config_file_that_is_not_toml_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[node]\nmdns = true\n[net\n").unwrap();
    let f = run_to_exit(node_cmd(dir.path(), &["--config", file.to_str().unwrap()]));
    assert_fails(&f, 2, &["bad.toml is not valid TOML", "line 3"]);
}

#[test]
fn an_unknown_key_in_the_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    std::fs::write(&file, "[node]\nmnds = false\n").unwrap();
    let f = run_to_exit(node_cmd(dir.path(), &["--config", file.to_str().unwrap()]));
    assert_fails(
        &f,
        2,
        &["node.mnds", "unknown field `mnds`", "typo.toml, line 2"],
    );
}

#[test]
fn a_bad_value_in_the_config_file_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("zero.toml");
    std::fs::write(&file, "[net]\ntarget_peers = 0\n").unwrap();
    let f = run_to_exit(node_cmd(dir.path(), &["--config", file.to_str().unwrap()]));
    assert_fails(
        &f,
        2,
        &["net.target_peers", "zero.toml", "greater than zero"],
    );

    std::fs::write(&file, "[api]\nlisten = \"nowhere\"\n").unwrap();
    let f = run_to_exit(node_cmd(dir.path(), &["--config", file.to_str().unwrap()]));
    assert_fails(&f, 2, &["api.listen", "`nowhere` is not a socket address"]);

    let f = run_to_exit(node_cmd(
        dir.path(),
        &["--config", "/no/such/peerbook.toml"],
    ));
    assert_fails(
        &f,
        2,
        &["cannot read the config file /no/such/peerbook.toml"],
    );
}

#[test]
fn a_bad_environment_variable_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = node_cmd(dir.path(), &[]);
    cmd.env("PEERBOOK_NET_MAX_ESTABLISHED_TOTAL", "plenty");
    let f = run_to_exit(cmd);
    assert_fails(
        &f,
        2,
        &["net.max_established_total (from environment variable PEERBOOK_NET_MAX_ESTABLISHED_TOTAL)", "`plenty`"],
    );

    let mut cmd = node_cmd(dir.path(), &[]);
    cmd.env("PEERBOOK_BOOTSTRAP", "/ip4/127.0.0.1/tcp/1,garbage");
    assert_fails(
        &run_to_exit(cmd),
        2,
        &["PEERBOOK_BOOTSTRAP", "`garbage` is not a valid multiaddr"],
    );
}

#[test]
fn a_market_that_is_not_configured_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = run_to_exit(node_cmd(dir.path(), &["--market", "DOGE-USD"]));
    assert_fails(
        &f,
        2,
        &[
            "node.markets (from flag --market)",
            "\"DOGE-USD\" is not configured",
            "BTC-USD",
        ],
    );
}

#[test]
fn an_api_on_a_public_address_without_a_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = NodeOpts::new("public", dir.path());
    opts.api_host = "0.0.0.0".into();
    let f = run_to_exit(opts.command());
    assert_fails(&f, 2, &["not a loopback address", "PEERBOOK_API_TOKEN"]);
}

#[test]
fn a_busy_p2p_port_is_an_error_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = NodeOpts::new("busy p2p", dir.path());
    opts.p2p_port = port;
    let f = run_to_exit(opts.command());
    assert_fails(
        &f,
        2,
        &[
            &format!("cannot listen on /ip4/127.0.0.1/tcp/{port}"),
            "in use",
        ],
    );
}

#[tokio::test]
async fn a_second_node_on_the_p2p_port_a_node_holds_is_refused() {
    // The first node's listener has SO_REUSEPORT (hole punching needs it);
    // a second node must not be let in beside it.
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let first = NodeOpts::new("first", dir_a.path()).start();
    let status = first.ready().await;
    let mut second = NodeOpts::new("second", dir_b.path());
    second.p2p_port = first.opts.p2p_port;
    let f = run_to_exit(second.command());
    assert_fails(
        &f,
        2,
        &[
            &format!(
                "cannot listen on /ip4/127.0.0.1/tcp/{}",
                first.opts.p2p_port
            ),
            "already in use",
        ],
    );
    assert_eq!(
        first.status().await.map(|s| s.peer_id),
        Some(status.peer_id)
    );
}

#[tokio::test]
async fn a_data_dir_another_node_uses_is_refused_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let first = NodeOpts::new("first", dir.path()).start();
    first.ready().await;
    let f = run_to_exit(NodeOpts::new("second", dir.path()).command());
    assert_fails(
        &f,
        2,
        &[
            "another node is using the data dir",
            &dir.path().display().to_string(),
            "--data-dir",
        ],
    );
    assert!(
        first.status().await.is_some(),
        "the first node keeps running"
    );
}

#[test]
fn a_busy_api_port_is_an_error_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = NodeOpts::new("busy api", dir.path());
    opts.api_port = port;
    let f = run_to_exit(opts.command());
    assert_fails(
        &f,
        2,
        &[
            &format!("cannot listen for the API on 127.0.0.1:{port}"),
            "in use",
        ],
    );
}

#[test]
fn a_data_dir_that_cannot_be_created_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let data_dir = file.join("data");
    let f = run_to_exit(NodeOpts::new("bad dir", &data_dir).command());
    assert_fails(&f, 1, &["the data dir", "a-file/data", "is not usable"]);
}

#[test]
fn a_corrupt_identity_key_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("identity.key");
    std::fs::write(&key, b"garbage").unwrap();
    let f = run_to_exit(NodeOpts::new("corrupt key", dir.path()).command());
    assert_fails(&f, 1, &["identity.key is corrupt", "will not replace it"]);
    assert_eq!(std::fs::read(&key).unwrap(), b"garbage");
}

#[tokio::test]
async fn an_unreachable_bootstrap_address_is_logged_and_retried_while_the_node_runs() {
    let dir = tempfile::tempdir().unwrap();
    let nobody = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    let node = NodeOpts::new("lonely", dir.path())
        .bootstrap(nobody.clone())
        .env("PEERBOOK_NET_REDIAL_INITIAL_MS", "100")
        .start();
    node.ready().await;
    eventually(
        "the bootstrap address to be retried",
        || node.output(),
        || async {
            let log = node.stderr();
            let failures = log
                .lines()
                .filter(|l| l.contains("bootstrap address unreachable") && l.contains(&nobody))
                .count();
            (failures >= 3).then_some(())
        },
    )
    .await;
    let log = node.stderr();
    assert!(
        log.contains("Connection refused"),
        "the reason is given:\n{log}"
    );
    assert!(node.status().await.is_some(), "the node keeps running");
}

#[test]
fn id_prints_the_peer_id_and_the_addresses_to_dial_and_keeps_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let mut cmd = command();
        cmd.args(["id", "--data-dir"])
            .arg(dir.path())
            .args(["--listen", "/ip4/0.0.0.0/tcp/4001"]);
        run_to_exit(cmd)
    };
    let first = run();
    assert!(first.status.success(), "{}", first.stderr);
    let mut lines = first.stdout.lines();
    let peer_id = lines.next().expect("peer id line").to_string();
    assert!(peer_id.starts_with("12D3Koo"), "{peer_id}");
    let addrs: Vec<&str> = lines.collect();
    assert!(
        addrs.contains(&format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer_id}").as_str()),
        "{addrs:?}"
    );
    assert!(addrs.iter().all(|a| !a.contains("0.0.0.0")), "{addrs:?}");
    assert!(
        first.stderr.contains("created a new identity"),
        "{}",
        first.stderr
    );

    let second = run();
    assert_eq!(second.stdout.lines().next(), Some(peer_id.as_str()));
    assert!(!second.stderr.contains("created a new identity"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("identity.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn id_asks_the_running_node_for_what_it_really_listens_on() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeOpts::new("running", dir.path()).start();
    let peer_id = node.ready().await.peer_id;
    let mut cmd = command();
    cmd.args(["id", "--data-dir"])
        .arg(dir.path())
        .arg("--api")
        .arg(node.api_addr().to_string());
    let f = run_to_exit(cmd);
    assert!(f.status.success(), "{}", f.stderr);
    let mut lines = f.stdout.lines();
    assert_eq!(lines.next(), Some(peer_id.as_str()));
    let addrs: Vec<&str> = lines.collect();
    let expected = format!("/ip4/127.0.0.1/tcp/{}/p2p/{peer_id}", node.opts.p2p_port);
    assert_eq!(addrs, [expected.as_str()], "only what the node listens on");

    // Without the node, the same flags as `node` give the same answer.
    let mut cmd = command();
    cmd.args(["id", "--data-dir"])
        .arg(dir.path())
        .arg("--api")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--listen")
        .arg(format!("/ip4/127.0.0.1/tcp/{}", node.opts.p2p_port));
    let offline = run_to_exit(cmd);
    assert!(offline.status.success(), "{}", offline.stderr);
    assert_eq!(offline.stdout, f.stdout);
}

#[test]
fn help_has_examples_and_env_vars_and_a_bad_bootstrap_says_what_a_multiaddr_is() {
    for (args, needles) in [
        (
            vec!["node", "--help"],
            vec![
                "Examples:",
                "--bootstrap /ip4/",
                "PEERBOOK_LISTEN",
                "RUST_LOG",
            ],
        ),
        (
            vec!["order", "place", "--help"],
            vec!["Examples:", "peerbook order place --market"],
        ),
        (
            vec!["book", "--help"],
            vec!["Examples:", "peerbook book BTC-USD", "stale"],
        ),
        (
            vec!["demo", "--help"],
            vec!["Examples:", "Ctrl-C stops both", "--keep"],
        ),
        (
            vec!["status", "--help"],
            vec!["PEERBOOK_API", "PEERBOOK_API_TOKEN"],
        ),
    ] {
        let mut cmd = command();
        cmd.args(&args);
        let f = run_to_exit(cmd);
        assert!(f.status.success(), "{args:?}: {}", f.stderr);
        for n in needles {
            assert!(
                f.stdout.contains(n),
                "{args:?} --help lacks {n:?}:\n{}",
                f.stdout
            );
        }
    }
    let mut cmd = command();
    cmd.args(["node", "--bootstrap", "127.0.0.1:14001"]);
    assert_fails(
        &run_to_exit(cmd),
        2,
        &["a multiaddr looks like /ip4/127.0.0.1/tcp/14001"],
    );
}
