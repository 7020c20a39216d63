//! `dynakv dev`: a local cluster on 127.0.0.1 for trying dynakv out.
//!
//! Starts `--nodes` child processes of this same binary (node `i` listens on
//! 127.0.0.1:700i for nodes and 127.0.0.1:800i for HTTP, keeps its data in
//! `<data-dir>/n<i>` and its log in `<data-dir>/n<i>.log`), each seeded with
//! the others, waits until every one is ready (`GET /health/ready`: they
//! founded one ring together), prints the endpoints, and stops them cleanly on Ctrl-C (or
//! SIGTERM / SIGHUP). Restarting with the same data directory brings the same
//! cluster back.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::tools::common::CliError;

/// `dynakv dev`.
#[derive(Args, Debug)]
pub struct DevArgs {
    /// Number of nodes (1 to 9).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
    pub nodes: u16,
    /// Directory for the nodes' data and logs.
    #[arg(long, default_value = "./dynakv-dev")]
    pub data_dir: PathBuf,
    /// Speak TLS on every listener, with a CA and node certificates made in
    /// DATA_DIR/certs (`dynakv certs`); clients pass `--ca DATA_DIR/certs/ca.pem`.
    #[arg(long)]
    pub tls: bool,
}

fn failure(message: impl Into<String>) -> CliError {
    CliError {
        code: 1,
        message: message.into(),
    }
}

struct Children(Vec<(String, Child)>);

impl Children {
    /// SIGTERM every child, then wait (bounded) for them; SIGKILL stragglers.
    fn stop(&mut self) {
        for (_, c) in &self.0 {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        for (name, c) in &mut self.0 {
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    eprintln!("{name} did not stop in time; killing it");
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.0.clear();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop();
    }
}

fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// Runs the local cluster until Ctrl-C.
pub fn run(args: DevArgs) -> Result<(), CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| failure(format!("cannot find the dynakv binary: {e}")))?;
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| failure(format!("cannot create {}: {e}", args.data_dir.display())))?;
    let n = args.nodes as usize;
    let rpc = |i: usize| format!("127.0.0.1:{}", 7000 + i);
    let http = |i: usize| format!("127.0.0.1:{}", 8000 + i);
    let pb = |i: usize| format!("127.0.0.1:{}", 8086 + i);
    // Refuse to start over another cluster (say, one left running): its nodes
    // would answer our health checks.
    for i in 1..=n {
        for addr in [rpc(i), http(i), pb(i)] {
            if std::net::TcpListener::bind(&addr).is_err() {
                return Err(failure(format!(
                    "{addr} is in use (another dynakv dev still running?); stop it first"
                )));
            }
        }
    }
    // Watch the signals before any node exists, so a signal during start-up
    // still stops every node instead of orphaning them.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failure(e.to_string()))?;
    let mut signals = {
        use tokio::signal::unix::{SignalKind, signal};
        let _in_runtime = runtime.enter();
        let watch = |kind| signal(kind).map_err(|e| failure(format!("cannot watch signals: {e}")));
        [
            watch(SignalKind::interrupt())?,
            watch(SignalKind::terminate())?,
            watch(SignalKind::hangup())?,
        ]
    };
    // TLS: a CA and a certificate per node, made once and kept with the data.
    let certs = args.data_dir.join("certs");
    if args.tls {
        use crate::server::tls::certs as make;
        if !certs.join("ca.pem").exists() {
            make::init(&certs, "dev").map_err(failure)?;
        }
        for i in 1..=n {
            let name = format!("n{i}");
            if !certs.join(format!("{name}.pem")).exists() {
                make::node(
                    &certs,
                    &name,
                    &["127.0.0.1".to_string(), "localhost".to_string()],
                )
                .map_err(failure)?;
            }
        }
    }
    let scheme = if args.tls { "https" } else { "http" };
    let mut children = Children(Vec::new());
    for i in 1..=n {
        let name = format!("n{i}");
        let log_path = args.data_dir.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| failure(format!("cannot open {}: {e}", log_path.display())))?;
        // Started together, each with the others as seeds: they found one
        // first ring holding them all (a restarted dev cluster rejoins from
        // its persisted state).
        let seeds: Vec<String> = (1..=n).filter(|&j| j != i).map(rpc).collect();
        let mut cmd = Command::new(&exe);
        cmd.arg("node")
            .args(["--name", &name])
            .arg("--data-dir")
            .arg(args.data_dir.join(&name))
            .args(["--listen", &rpc(i), "--http", &http(i), "--pb", &pb(i)])
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                log.try_clone().map_err(|e| failure(e.to_string()))?,
            ))
            .stderr(Stdio::from(log));
        if !seeds.is_empty() {
            cmd.args(["--seeds", &seeds.join(",")]);
        }
        if args.tls {
            cmd.arg("--tls-cert")
                .arg(certs.join(format!("{name}.pem")))
                .arg("--tls-key")
                .arg(certs.join(format!("{name}.key")))
                .arg("--tls-ca")
                .arg(certs.join("ca.pem"));
        }
        let child = cmd
            .spawn()
            .map_err(|e| failure(format!("cannot start {name}: {e}")))?;
        children.0.push((name, child));
    }

    let mut client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2));
    if args.tls {
        let pem = std::fs::read(certs.join("ca.pem")).map_err(|e| failure(e.to_string()))?;
        let ca = reqwest::Certificate::from_pem(&pem).map_err(|e| failure(e.to_string()))?;
        client = client.add_root_certificate(ca);
    }
    let client = client.build().map_err(|e| failure(e.to_string()))?;
    // Wait (bounded) until every node is ready: it serves a ring that holds
    // it, so it takes writes for the whole cluster.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    for i in 1..=n {
        let url = format!("{scheme}://{}/health/ready", http(i));
        loop {
            if let Some((name, c)) = children.0.get_mut(i - 1)
                && let Ok(Some(status)) = c.try_wait()
            {
                let log = args.data_dir.join(format!("{name}.log"));
                return Err(failure(format!(
                    "{name} exited ({status}); last log lines:\n{}",
                    log_tail(&log)
                )));
            }
            if client
                .get(&url)
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(failure(format!(
                    "n{i} was not ready within 60 s (GET {url}); see its log"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let ready_in = started.elapsed();

    println!(
        "dynakv dev cluster: {n} node(s) ready in {:.1} s, data and logs in {}",
        ready_in.as_secs_f64(),
        args.data_dir.display()
    );
    for i in 1..=n {
        println!(
            "  n{i}  {scheme}://{}  riak pb {}  (nodes: {})",
            http(i),
            pb(i),
            rpc(i)
        );
    }
    println!();
    println!("try:");
    let ca = certs.join("ca.pem");
    let (curl_ca, cli_ca) = if args.tls {
        (
            format!(" --cacert {}", ca.display()),
            format!(" DYNAKV_CA={}", ca.display()),
        )
    } else {
        (String::new(), String::new())
    };
    println!(
        "  curl{curl_ca} -X PUT --data 'hello' {scheme}://{}/kv/greeting",
        http(1)
    );
    println!("  curl{curl_ca} -i {scheme}://{}/kv/greeting", http(n));
    println!("  DYNAKV_NODE={scheme}://{}{cli_ca} dynakv status", http(1));
    println!();
    println!("Ctrl-C stops the cluster.");

    let exited = runtime.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let [int, term, hup] = &mut signals;
        // Ctrl-C, `kill` and a closed terminal all stop the cluster cleanly.
        loop {
            tokio::select! {
                _ = int.recv() => return None,
                _ = term.recv() => return None,
                _ = hup.recv() => return None,
                _ = tick.tick() => {
                    for (name, c) in &mut children.0 {
                        if let Ok(Some(status)) = c.try_wait() {
                            return Some(format!("{name} exited unexpectedly ({status})"));
                        }
                    }
                }
            }
        }
    });
    println!("stopping…");
    children.stop();
    match exited {
        None => Ok(()),
        Some(msg) => Err(failure(msg)),
    }
}
