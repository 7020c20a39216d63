//! Test harness: real `dynakv` processes on loopback addresses, with ports chosen by
//! the kernel so parallel tests never collide. Every process is killed when its
//! `TestNode` is dropped, and every wait is bounded.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::blocking::{Client, Response};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_dynakv");
pub const CONTEXT: &str = "x-causal-context";

/// A port the kernel just handed out on `ip` (free at the time of the call).
pub fn free_port(ip: Ipv4Addr) -> u16 {
    let l = TcpListener::bind(SocketAddr::from((ip, 0))).expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// Three distinct free ports of `ip` (held together while chosen, so the
/// kernel cannot hand out one twice).
pub fn three_ports(ip: Ipv4Addr) -> (u16, u16, u16) {
    let bind = || TcpListener::bind(SocketAddr::from((ip, 0))).expect("bind an ephemeral port");
    let held = [bind(), bind(), bind()];
    let port = |i: usize| held[i].local_addr().expect("local addr").port();
    (port(0), port(1), port(2))
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        // Nodes close connections idle for 15 s.
        .pool_idle_timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

/// One `dynakv node` process.
pub struct TestNode {
    pub name: String,
    pub ip: Ipv4Addr,
    pub rpc_port: u16,
    pub http_port: u16,
    pub pb_port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    child: Option<Child>,
    paused: bool,
    started_once: bool,
    /// With TLS: the CA its certificate is signed by (its URLs are https).
    pub ca: Option<PathBuf>,
}

impl TestNode {
    /// A node named `name` keeping its data under `root`, on fresh ports of `ip`.
    pub fn new(root: &Path, name: &str, ip: Ipv4Addr) -> TestNode {
        let ports = three_ports(ip);
        TestNode {
            name: name.to_string(),
            ip,
            rpc_port: ports.0,
            http_port: ports.1,
            pb_port: ports.2,
            data_dir: root.join(name),
            log: root.join(format!("{name}.log")),
            args: Vec::new(),
            // Every test's cluster has its own secret: a node that reaches another
            // test's node (a reused port) is refused instead of merging clusters.
            env: vec![(
                "DYNAKV_CLUSTER_SECRET".into(),
                format!("test-{}", root.display()),
            )],
            child: None,
            paused: false,
            started_once: false,
            ca: None,
        }
    }

    pub fn rpc_addr(&self) -> String {
        format!("{}:{}", self.ip, self.rpc_port)
    }

    /// The Riak Protocol Buffers address.
    pub fn pb_addr(&self) -> String {
        format!("{}:{}", self.ip, self.pb_port)
    }

    pub fn url(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.ip, self.http_port)
    }

    /// An HTTP client that trusts this node (its CA, under TLS).
    pub fn http(&self) -> Client {
        let mut b = Client::builder()
            .timeout(Duration::from_secs(20))
            .pool_idle_timeout(Duration::from_secs(10));
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca).expect("CA file");
            b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA"));
        }
        b.build().expect("http client")
    }

    /// Extra flags for every start.
    pub fn with_args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("node")
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(self.rpc_addr())
            .arg("--http")
            .arg(format!("{}:{}", self.ip, self.http_port))
            .arg("--pb")
            .arg(self.pb_addr())
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info")
            .env_remove("DYNAKV_NODE");
        cmd
    }

    /// Starts the process and waits (bounded) until `/health` answers. On a
    /// first start, a port taken between `free_port` and the node's bind (another
    /// test got it) is retried on fresh ports.
    pub fn start(&mut self) {
        for attempt in 0..3 {
            match self.try_start() {
                Ok(()) => {
                    self.started_once = true;
                    return;
                }
                // A port taken meanwhile, or the kernel handing out the same
                // free port twice: fresh ones.
                Err(log)
                    if !self.started_once
                        && attempt < 2
                        && (log.contains("cannot listen") || log.contains("must differ")) =>
                {
                    (self.rpc_port, self.http_port, self.pb_port) = three_ports(self.ip);
                }
                Err(log) => panic!("{} exited at start:\n{log}", self.name),
            }
        }
    }

    fn try_start(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "{} already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open log");
        let child = self
            .command()
            .stdout(Stdio::from(log.try_clone().expect("log fd")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn dynakv");
        self.child = Some(child);
        let client = self.http();
        let url = format!("{}/health", self.url());
        let mut exited = false;
        // Generous: a fresh RocksDB syncs several files, slow on a loaded disk.
        let up = wait_until(Duration::from_secs(120), || {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(_)) = c.try_wait()
            {
                exited = true;
                return true;
            }
            client
                .get(&url)
                .send()
                .is_ok_and(|r| r.status().is_success())
        });
        if exited {
            self.child = None;
            return Err(self.log_text());
        }
        assert!(
            up,
            "{} did not become healthy:\n{}",
            self.name,
            self.log_text()
        );
        Ok(())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().expect("running").id() as i32)
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.paused = false;
    }

    /// SIGTERM, and wait (bounded) for a clean exit.
    pub fn stop(&mut self) -> ExitStatus {
        let pid = self.pid();
        kill(pid, Signal::SIGTERM).expect("SIGTERM");
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{} did not stop within 20 s of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pause(&mut self) {
        kill(self.pid(), Signal::SIGSTOP).expect("SIGSTOP");
        self.paused = true;
    }

    pub fn resume(&mut self) {
        kill(self.pid(), Signal::SIGCONT).expect("SIGCONT");
        self.paused = false;
    }

    /// True while the process has not exited (reaps it if it has).
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// A `dynakv-client` of this node alone (short timeout: test nodes
    /// answer at once or are down).
    pub fn client(&self) -> dynakv_client::blocking::Client {
        dynakv_client::ClientBuilder::new([self.url()])
            .timeout(Duration::from_secs(10))
            .ca_pem(self.ca.as_ref().map(|p| std::fs::read(p).expect("CA file")))
            .build_blocking()
            .expect("client")
    }

    pub fn status(&self) -> Value {
        self.client().status().expect("status")
    }

    pub fn key_url(&self, key: &str) -> String {
        format!("{}/kv/{key}", self.url())
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if self.paused {
            let _ = kill(self.pid(), Signal::SIGCONT);
        }
        self.kill();
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last log lines of {} ---", self.name);
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// A `dynakv-client` of the node at `url`.
pub fn client_of(url: &str) -> dynakv_client::blocking::Client {
    dynakv_client::ClientBuilder::new([url])
        .timeout(Duration::from_secs(20))
        .build_blocking()
        .expect("client")
}

/// A key URL (`{node}/kv/{key}?…`) taken apart: a client of its node, the
/// key, and the request options of its query string.
fn key_request(
    url: &str,
) -> (
    dynakv_client::blocking::Client,
    Vec<u8>,
    dynakv_client::Options,
) {
    let (base, rest) = url.split_once("/kv/").expect("a key URL");
    let (key, query) = rest.split_once('?').unwrap_or((rest, ""));
    let key: Vec<u8> = percent_encoding::percent_decode_str(key).collect();
    let mut opts = dynakv_client::Options::default();
    for (name, value) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        match name {
            "r" | "w" => opts.quorum = Some(value.parse().expect("quorum")),
            "quorum" => opts.strict = Some(value == "strict"),
            "timeout_ms" => {
                opts.timeout = Some(Duration::from_millis(value.parse().expect("timeout_ms")))
            }
            other => panic!("unexpected query parameter {other} in {url}"),
        }
    }
    let client = dynakv_client::ClientBuilder::new([base])
        .timeout(Duration::from_secs(20))
        .build_blocking()
        .expect("client");
    (client, key, opts)
}

/// What a write answered: its HTTP status and, on success, the new context.
pub struct Written {
    status: u16,
    error: Option<String>,
    context: Option<String>,
}

impl Written {
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The API's error code of a refused write.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// Anything that carries a causal context: a write's answer or a raw response.
pub trait HasContext {
    fn context(&self) -> Option<String>;
}

impl HasContext for Written {
    fn context(&self) -> Option<String> {
        self.context.clone()
    }
}

impl HasContext for Response {
    fn context(&self) -> Option<String> {
        self.headers()
            .get(CONTEXT)
            .map(|v| v.to_str().expect("ascii").to_string())
    }
}

/// A write through `dynakv-client` with an optional context (`url` is a key
/// URL with optional `?w=`, `quorum=`, `timeout_ms=`); the answer's status as
/// the HTTP API gives it (204, or the error's status).
pub fn put(_http: &Client, url: &str, value: impl Into<Vec<u8>>, ctx: Option<&str>) -> Written {
    use dynakv_client::Error;
    let (client, key, opts) = key_request(url);
    let context = ctx.map(dynakv_client::Context::from_token);
    let value = dynakv_client::Sibling::new(value.into(), "application/octet-stream");
    match client.put_with(&key, value, context.as_ref(), &opts) {
        Ok(c) => Written {
            status: 204,
            error: None,
            context: Some(c.to_string()),
        },
        Err(e) => {
            let (status, code) = match &e {
                Error::NotFound { .. } => (404, "not_found".to_string()),
                Error::QuorumUnavailable { .. } => (503, "quorum_unavailable".into()),
                Error::TooManySiblings { .. } => (409, "too_many_siblings".into()),
                Error::BadRequest { status: 413, .. } => (413, "value_too_large".into()),
                Error::BadRequest { status, .. } => (*status, "bad_request".into()),
                Error::Api { status, code, .. } => (*status, code.clone()),
                other => panic!("PUT {url}: {other}"),
            };
            Written {
                status,
                error: Some(code),
                context: None,
            }
        }
    }
}

/// What a read answered, as the HTTP API gives it: 200 (one value), 300
/// (siblings), 404, or the error's status; the context; the values, sorted.
pub struct ReadAnswer {
    status: u16,
    context: Option<String>,
    pub values: Vec<String>,
}

impl ReadAnswer {
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The one value of a 200 answer.
    pub fn text(&self) -> &str {
        assert_eq!(self.status, 200, "not a single value: {:?}", self.values);
        &self.values[0]
    }
}

impl HasContext for ReadAnswer {
    fn context(&self) -> Option<String> {
        self.context.clone()
    }
}

/// A read through `dynakv-client` (`url` is a key URL with optional `?r=`,
/// `timeout_ms=`).
pub fn get(url: &str) -> ReadAnswer {
    use dynakv_client::Error;
    let (client, key, opts) = key_request(url);
    match client.get_with(&key, &opts) {
        Ok(o) => {
            let mut values: Vec<String> = o
                .siblings
                .iter()
                .map(|s| String::from_utf8_lossy(&s.value).into_owned())
                .collect();
            values.sort();
            ReadAnswer {
                status: if values.len() == 1 { 200 } else { 300 },
                context: Some(o.context.to_string()),
                values,
            }
        }
        Err(Error::NotFound { context }) => ReadAnswer {
            status: 404,
            context: context.map(|c| c.to_string()),
            values: Vec::new(),
        },
        Err(Error::QuorumUnavailable { .. }) => ReadAnswer {
            status: 503,
            context: None,
            values: Vec::new(),
        },
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// A delete through `dynakv-client` with an optional context.
pub fn delete(url: &str, ctx: Option<&str>) -> Written {
    let (client, key, opts) = key_request(url);
    let context = ctx.map(dynakv_client::Context::from_token);
    match client.delete_with(&key, context.as_ref(), &opts) {
        Ok(()) => Written {
            status: 204,
            error: None,
            context: None,
        },
        Err(e) => Written {
            status: match e {
                dynakv_client::Error::NotFound { .. } => 404,
                dynakv_client::Error::QuorumUnavailable { .. } => 503,
                other => panic!("DELETE {url}: {other}"),
            },
            error: None,
            context: None,
        },
    }
}

/// The causal context of a write's answer or a read's response.
pub fn ctx_of(answer: &impl HasContext) -> String {
    answer.context().expect("X-Causal-Context present")
}

/// Sorted live values of a key as strings; empty if not found. `url` is a
/// key URL (`{node}/kv/{key}`), optionally with `?r=` and `timeout_ms=`.
pub fn values(_http: &Client, url: &str) -> Vec<String> {
    let (client, key, opts) = key_request(url);
    match client.get_with(&key, &opts) {
        Ok(o) => {
            let mut out: Vec<String> = o
                .siblings
                .into_iter()
                .map(|s| String::from_utf8(s.value.to_vec()).expect("utf8"))
                .collect();
            out.sort();
            out
        }
        Err(dynakv_client::Error::NotFound { .. }) => Vec::new(),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

// ---- clusters on 127.0.0.2.. ----

pub const GOSSIP_MS: u64 = 200;
pub const FAILURE_MS: u64 = 1000;
/// Slack for process scheduling and status polling on a loaded machine.
pub const SLACK: Duration = Duration::from_millis(1500);

pub fn ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, i)
}

pub fn timing() -> Vec<String> {
    vec![
        "--gossip-interval-ms".into(),
        GOSSIP_MS.to_string(),
        "--failure-timeout-ms".into(),
        FAILURE_MS.to_string(),
    ]
}

/// Three nodes on 127.0.0.2–4, each seeded with the first.
pub fn three(root: &std::path::Path, extra: &[&str]) -> Vec<TestNode> {
    let mut nodes: Vec<TestNode> = (0..3)
        .map(|i| TestNode::new(root, &format!("n{}", i + 1), ip(i as u8 + 2)))
        .collect();
    for n in nodes.iter_mut() {
        n.args.extend(timing());
        n.args.extend(extra.iter().map(|s| s.to_string()));
    }
    // The first node starts alone; its final address seeds the others.
    nodes[0].start();
    let seed = nodes[0].rpc_addr();
    for n in nodes.iter_mut().skip(1) {
        n.args.push("--seeds".into());
        n.args.push(seed.clone());
        n.start();
    }
    nodes
}

/// Seeds every node with the first `founders` nodes' addresses, leaving out
/// its own: nodes started together, each with the others as seeds.
pub fn seed_with_each_other(nodes: &mut [TestNode], founders: usize) {
    let addrs: Vec<String> = nodes
        .iter()
        .take(founders)
        .map(TestNode::rpc_addr)
        .collect();
    for (i, n) in nodes.iter_mut().enumerate() {
        let seeds: Vec<&str> = addrs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, a)| a.as_str())
            .collect();
        n.args.push("--seeds".into());
        n.args.push(seeds.join(","));
    }
}

/// Starts `nodes` at once (each start waits only for its own `/health`).
pub fn start_together(nodes: &mut [TestNode]) {
    std::thread::scope(|s| {
        for n in nodes.iter_mut() {
            s.spawn(move || n.start());
        }
    });
}

pub fn statuses(node: &TestNode) -> BTreeMap<String, String> {
    let Ok(s) = node.client().status() else {
        return BTreeMap::new();
    };
    s["members"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or("").to_string(),
                m["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

pub fn sees(observer: &TestNode, member: &str, status: &str) -> bool {
    statuses(observer).get(member).map(String::as_str) == Some(status)
}

pub fn all_up(nodes: &[&TestNode], count: usize) -> bool {
    nodes.iter().all(|n| {
        let s = statuses(n);
        s.len() == count && s.values().all(|v| v == "up")
    })
}

pub fn wait_formed(nodes: &[&TestNode]) {
    assert!(
        wait_until(Duration::from_secs(20), || all_up(nodes, nodes.len())),
        "cluster did not form: {:?}",
        nodes.iter().map(|n| statuses(n)).collect::<Vec<_>>()
    );
    wait_settled(nodes, Duration::from_secs(60));
}

/// `(ring_epoch, partitions_moving, transfers_pending)` of a node.
pub fn ring_state(node: &TestNode) -> Option<(u64, u64, u64)> {
    let s = node.client().status().ok()?;
    Some((
        s["ring_epoch"].as_u64()?,
        s["partitions_moving"].as_u64()?,
        s["transfers_pending"].as_u64()?,
    ))
}

/// True if every node serves the same ring epoch with nothing in transit.
pub fn settled(nodes: &[&TestNode]) -> bool {
    let states: Vec<Option<(u64, u64, u64)>> = nodes.iter().map(|n| ring_state(n)).collect();
    states
        .iter()
        .all(|s| s.is_some_and(|(e, m, t)| m == 0 && t == 0 && Some(e) == states[0].map(|x| x.0)))
}

/// Waits (bounded) until the ring settles on every node.
pub fn wait_settled(nodes: &[&TestNode], timeout: Duration) {
    assert!(
        wait_until(timeout, || settled(nodes)),
        "ring did not settle: {:?}",
        nodes
            .iter()
            .map(|n| (n.name.clone(), ring_state(n)))
            .collect::<Vec<_>>()
    );
}

/// Three nodes with fault injection enabled, formed into a cluster.
pub fn formed(root: &std::path::Path, extra: &[&str]) -> Vec<TestNode> {
    let mut args = vec!["--fault-injection"];
    args.extend_from_slice(extra);
    let nodes = three(root, &args);
    wait_formed(&nodes.iter().collect::<Vec<_>>());
    nodes
}

/// GET with the given query, isolated: `node` drops its traffic to `others`, so
/// an `r=1` read returns exactly its own copy. Heals afterwards.
pub fn local_values(node: &TestNode, others: &[&TestNode], key: &str) -> Vec<String> {
    set_faults(
        node,
        &serde_json::json!({"drop_to": others.iter().map(|o| o.name.clone()).collect::<Vec<_>>()}),
    );
    let vals = values(&http(), &format!("{}?r=1", node.key_url(key)));
    set_faults(node, &serde_json::json!({}));
    vals
}

/// POST /admin/faults.
pub fn set_faults(node: &TestNode, spec: &Value) {
    node.client().set_faults(spec).expect("faults");
}

/// A counter or gauge from /metrics (0 when absent).
pub fn metric(node: &TestNode, name: &str) -> f64 {
    let text = node.client().metrics().unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Runs `dynakv bench` with `args`.
pub fn bench(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("bench")
        .args(args)
        .output()
        .expect("run bench")
}

/// Runs `dynakv bench --json`-style `args`, which must succeed; its report.
pub fn bench_json(args: &[&str]) -> Value {
    let out = bench(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json report")
}

/// The union of the comma-separated sets kept in `siblings` (the set
/// workloads of the client and chaos tests).
pub fn set_elements(siblings: &[dynakv_client::Sibling]) -> std::collections::BTreeSet<String> {
    siblings
        .iter()
        .flat_map(|s| {
            String::from_utf8_lossy(&s.value)
                .split(',')
                .filter(|e| !e.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A rustls client trusting `ca`, over a blocking socket.
pub fn tls_client(
    ca: &Path,
    sock: std::net::TcpStream,
    ip: std::net::Ipv4Addr,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for c in dynakv::server::tls::read_certs(ca).expect("CA") {
        roots.add(c).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::V4(ip).into());
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("client");
    rustls::StreamOwned::new(conn, sock)
}

/// A Riak PB frame: length, code, body.
pub fn pb_frame(code: u8, body: &[u8]) -> Vec<u8> {
    let mut f = ((body.len() + 1) as u32).to_be_bytes().to_vec();
    f.push(code);
    f.extend_from_slice(body);
    f
}

/// Reads one PB frame: (code, body).
pub fn read_pb(s: &mut impl std::io::Read) -> (u8, Vec<u8>) {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("frame length");
    let mut rest = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut rest).expect("frame");
    (rest[0], rest[1..].to_vec())
}

/// Runs the dynakv command line (with no node from the environment).
pub fn cli_output(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("DYNAKV_NODE")
        .output()
        .expect("run dynakv")
}

/// A CA in `dir`, and a certificate for each (name, host).
pub fn make_certs(dir: &Path, nodes: &[(&str, String)]) {
    let d = dir.to_str().expect("utf8");
    let out = cli_output(&["certs", "init", "--dir", d]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, host) in nodes {
        let out = cli_output(&["certs", "node", name, "--dir", d, "--host", host]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A node speaking TLS with `certs`' certificate for `name` (its URLs are
/// https and its clients trust the CA).
pub fn tls_node(root: &Path, name: &str, ip: std::net::Ipv4Addr, certs: &Path) -> TestNode {
    let mut n = TestNode::new(root, name, ip);
    let file = |f: String| certs.join(f).to_str().expect("utf8").to_string();
    n.args.extend(timing());
    n.args.extend([
        "--tls-cert".to_string(),
        file(format!("{name}.pem")),
        "--tls-key".to_string(),
        file(format!("{name}.key")),
        "--tls-ca".to_string(),
        file("ca.pem".into()),
    ]);
    n.ca = Some(certs.join("ca.pem"));
    n
}
