//! The client subcommands (`get`, `put`, `delete`, `status`): thin wrappers over
//! the HTTP API with clear output and exit codes (0 ok, 1 operational failure,
//! 2 usage error).

use std::io::{Read, Write};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode, utf8_percent_encode};
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use serde_json::Value;

use crate::cli::{DeleteArgs, GetArgs, NodeUrl, PlanArgs, PlanChange, PutArgs};

/// A failed client command: its exit code and one line for stderr.
#[derive(Debug)]
pub struct CliError {
    /// 1 for operational failures, 2 for usage errors.
    pub code: u8,
    /// The line to print.
    pub message: String,
}

fn failure(message: impl Into<String>) -> CliError {
    CliError {
        code: 1,
        message: message.into(),
    }
}

fn usage(message: impl Into<String>) -> CliError {
    CliError {
        code: 2,
        message: message.into(),
    }
}

/// Characters left unencoded in key segments: RFC 3986 unreserved.
const KEY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const CONTEXT_HEADER: &str = "x-causal-context";

/// The URL of a key on a node.
pub fn key_url(node: &str, key: &[u8]) -> String {
    format!(
        "{}/kv/{}",
        node.trim_end_matches('/'),
        percent_encode(key, KEY_SET)
    )
}

fn client() -> Result<Client, CliError> {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| failure(format!("cannot build HTTP client: {e}")))
}

fn send(req: reqwest::blocking::RequestBuilder, node: &NodeUrl) -> Result<Response, CliError> {
    req.send()
        .map_err(|e| failure(format!("cannot reach node {}: {e}", node.node)))
}

/// Turns an error response into one line: `<code>: <message>`.
fn api_error(resp: Response) -> CliError {
    let status = resp.status();
    let body: Value = resp.json().unwrap_or(Value::Null);
    let code = body["error"].as_str().unwrap_or("error");
    let message = body["message"].as_str().unwrap_or("(no message)");
    let text = format!("{code} ({}): {message}", status.as_u16());
    if status == StatusCode::BAD_REQUEST {
        usage(text)
    } else {
        failure(text)
    }
}

fn context_of(resp: &Response) -> Option<String> {
    resp.headers()
        .get(CONTEXT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn with_quorum(url: String, name: &str, value: &Option<String>) -> String {
    match value {
        Some(v) => format!("{url}?{name}={}", utf8_percent_encode(v, KEY_SET)),
        None => url,
    }
}

/// `dynakv get`: the value on stdout, the context on stderr.
pub fn get(args: GetArgs) -> Result<(), CliError> {
    let url = with_quorum(key_url(&args.node.node, args.key.as_bytes()), "r", &args.r);
    let resp = send(client()?.get(url), &args.node)?;
    let ctx = context_of(&resp);
    match resp.status() {
        StatusCode::OK => {
            let body = resp
                .bytes()
                .map_err(|e| failure(format!("reading the response: {e}")))?;
            std::io::stdout()
                .write_all(&body)
                .map_err(|e| failure(format!("writing the value: {e}")))?;
            if let Some(ctx) = ctx {
                eprintln!("context: {ctx}");
            }
            Ok(())
        }
        StatusCode::MULTIPLE_CHOICES => {
            let body: Value = resp
                .json()
                .map_err(|e| failure(format!("bad sibling response: {e}")))?;
            let siblings = body["siblings"].as_array().cloned().unwrap_or_default();
            println!("{} siblings", siblings.len());
            for (i, s) in siblings.iter().enumerate() {
                let value = STANDARD
                    .decode(s["value"].as_str().unwrap_or_default())
                    .unwrap_or_default();
                println!(
                    "--- sibling {} ({}) ---",
                    i + 1,
                    s["content_type"].as_str().unwrap_or("")
                );
                println!("{}", String::from_utf8_lossy(&value));
            }
            println!("context: {}", body["context"].as_str().unwrap_or(""));
            eprintln!("write back with --context to resolve the siblings");
            Ok(())
        }
        StatusCode::NOT_FOUND => Err(failure(format!("not found: {}", args.key))),
        _ => Err(api_error(resp)),
    }
}

/// `dynakv put`: prints the new context.
pub fn put(args: PutArgs) -> Result<(), CliError> {
    let value: Vec<u8> = match (&args.value, &args.file) {
        (Some(v), None) => v.clone().into_bytes(),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| failure(format!("reading standard input: {e}")))?;
            buf
        }
        (None, Some(path)) => std::fs::read(path)
            .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?,
        _ => return Err(usage("give a VALUE or --file, not both")),
    };
    let http = client()?;
    let url = key_url(&args.node.node, args.key.as_bytes());
    // A person typing a put means "set it to this": read the current context first.
    let context = match (&args.context, args.blind) {
        (Some(c), _) => Some(c.clone()),
        (None, true) => None,
        (None, false) => {
            let resp = send(
                http.get(&url).header("accept", "application/json"),
                &args.node,
            )?;
            match resp.status() {
                StatusCode::OK | StatusCode::MULTIPLE_CHOICES | StatusCode::NOT_FOUND => {
                    context_of(&resp)
                }
                _ => return Err(api_error(resp)),
            }
        }
    };
    let mut req = http
        .put(with_quorum(url, "w", &args.w))
        .header("content-type", &args.content_type)
        .body(value);
    if let Some(c) = context {
        req = req.header(CONTEXT_HEADER, c);
    }
    let resp = send(req, &args.node)?;
    if resp.status() != StatusCode::NO_CONTENT {
        return Err(api_error(resp));
    }
    println!("{}", context_of(&resp).unwrap_or_default());
    Ok(())
}

/// `dynakv delete`.
pub fn delete(args: DeleteArgs) -> Result<(), CliError> {
    let url = with_quorum(key_url(&args.node.node, args.key.as_bytes()), "w", &args.w);
    let mut req = client()?.delete(url);
    if let Some(c) = &args.context {
        req = req.header(CONTEXT_HEADER, c);
    }
    let resp = send(req, &args.node)?;
    if resp.status() != StatusCode::NO_CONTENT {
        return Err(api_error(resp));
    }
    eprintln!("deleted {}", args.key);
    Ok(())
}

/// `dynakv status`: members, liveness, ownership, key and hint counts.
pub fn status(node: NodeUrl) -> Result<(), CliError> {
    let url = format!("{}/admin/status", node.node.trim_end_matches('/'));
    let resp = send(client()?.get(url), &node)?;
    if !resp.status().is_success() {
        return Err(api_error(resp));
    }
    let s: Value = resp
        .json()
        .map_err(|e| failure(format!("bad status response: {e}")))?;
    println!(
        "node {} (actor {})  keys {}  hints pending {}",
        s["node"].as_str().unwrap_or("?"),
        s["actor"].as_str().unwrap_or("?"),
        s["keys"].as_u64().unwrap_or(0),
        s["hints_pending"].as_u64().unwrap_or(0)
    );
    println!(
        "{:<16} {:<22} {:<22} {:<8} {:<8} {:>10} {:>14} {:>9}",
        "MEMBER", "RPC", "HTTP", "ZONE", "STATUS", "HEARTBEAT", "LAST SEEN (ms)", "OWNERSHIP"
    );
    for m in s["members"].as_array().cloned().unwrap_or_default() {
        let name = m["name"].as_str().unwrap_or("?");
        let share = s["ownership"][name].as_f64().unwrap_or(0.0);
        println!(
            "{:<16} {:<22} {:<22} {:<8} {:<8} {:>10} {:>14} {:>8.1}%",
            name,
            m["rpc_addr"].as_str().unwrap_or(""),
            m["http_addr"].as_str().unwrap_or(""),
            m["zone"].as_str().unwrap_or("-"),
            m["status"].as_str().unwrap_or("?"),
            m["heartbeat"].as_u64().unwrap_or(0),
            m["last_heartbeat_ms_ago"].as_u64().unwrap_or(0),
            share * 100.0
        );
    }
    let ae = &s["anti_entropy"];
    match ae["last_pass"].as_object() {
        Some(last) => {
            let sum = &last["summary"];
            println!(
                "anti-entropy: last pass {} s ago ({} ranges compared, {} differing, {} keys repaired, {} ms); \
                 oldest range comparison {} s ago; {} of {} ranges never compared",
                last["ms_ago"].as_u64().unwrap_or(0) / 1000,
                sum["ranges_compared"].as_u64().unwrap_or(0),
                sum["ranges_differing"].as_u64().unwrap_or(0),
                sum["keys_repaired"].as_u64().unwrap_or(0),
                sum["ms"].as_u64().unwrap_or(0),
                ae["oldest_comparison_ms_ago"].as_u64().unwrap_or(0) / 1000,
                ae["partitions_never_compared"].as_u64().unwrap_or(0),
                ae["partitions_replicated"].as_u64().unwrap_or(0),
            );
        }
        None => println!(
            "anti-entropy: no pass yet (every {} s; `dynakv repair` runs one now)",
            ae["interval_s"].as_u64().unwrap_or(0)
        ),
    }
    let transfers = s["transfers"].as_array().cloned().unwrap_or_default();
    println!(
        "ring epoch {} ({} partitions moving); transfers pending here: {}",
        s["ring_epoch"].as_u64().unwrap_or(0),
        s["partitions_moving"].as_u64().unwrap_or(0),
        s["transfers_pending"].as_u64().unwrap_or(0)
    );
    if !transfers.is_empty() {
        println!(
            "{:>9} {:<16} {:<16} {:<12} {:>10} {:>12}",
            "PARTITION", "FROM", "TO", "STATE", "KEYS", "BYTES"
        );
        for t in transfers.iter().take(20) {
            println!(
                "{:>9} {:<16} {:<16} {:<12} {:>10} {:>12}",
                t["partition"].as_u64().unwrap_or(0),
                t["from"].as_str().unwrap_or("-"),
                t["to"].as_str().unwrap_or("-"),
                t["state"].as_str().unwrap_or("?"),
                t["keys"].as_u64().unwrap_or(0),
                t["bytes"].as_u64().unwrap_or(0)
            );
        }
        if transfers.len() > 20 {
            println!("... and {} more", transfers.len() - 20);
        }
    }
    for w in s["warnings"].as_array().cloned().unwrap_or_default() {
        println!("warning: {}", w.as_str().unwrap_or(""));
    }
    Ok(())
}

/// `dynakv repair`: runs one anti-entropy pass on the node and prints what it did.
pub fn repair(node: NodeUrl, admin_token: Option<String>) -> Result<(), CliError> {
    let url = format!("{}/admin/repair", node.node.trim_end_matches('/'));
    let http = Client::builder()
        .timeout(Duration::from_secs(3600))
        .build()
        .map_err(|e| failure(format!("cannot build HTTP client: {e}")))?;
    let mut req = http.post(url);
    if let Some(t) = admin_token {
        req = req.bearer_auth(t);
    }
    let resp = send(req, &node)?;
    if !resp.status().is_success() {
        return Err(api_error(resp));
    }
    let s: Value = resp
        .json()
        .map_err(|e| failure(format!("bad repair response: {e}")))?;
    let n = |k: &str| s[k].as_u64().unwrap_or(0);
    println!(
        "compared {} ranges, {} differed; repaired {} keys; sent {} B, received {} B; purged {} tombstones; {} ms",
        n("ranges_compared"),
        n("ranges_differing"),
        n("keys_repaired"),
        n("bytes_sent"),
        n("bytes_received"),
        n("tombstones_purged"),
        n("ms")
    );
    if let Some(skipped) = s["peers_skipped"].as_array().filter(|a| !a.is_empty()) {
        println!(
            "peers skipped (down or failing): {}",
            Value::Array(skipped.clone())
        );
    }
    Ok(())
}

fn admin_post(node: &NodeUrl, path: &str, admin_token: Option<String>) -> Result<Value, CliError> {
    let url = format!("{}{path}", node.node.trim_end_matches('/'));
    let mut req = client()?.post(url);
    if let Some(t) = admin_token {
        req = req.bearer_auth(t);
    }
    let resp = send(req, node)?;
    if !resp.status().is_success() {
        return Err(api_error(resp));
    }
    resp.json()
        .map_err(|e| failure(format!("bad response from {}: {e}", node.node)))
}

/// `dynakv leave`: start decommissioning the node; `dynakv status` shows the
/// handoff, after which the node reports `left` and stops.
pub fn leave(node: NodeUrl, admin_token: Option<String>) -> Result<(), CliError> {
    let s = admin_post(&node, "/admin/leave", admin_token)?;
    println!(
        "{} is {}: {} partition(s) to hand off; follow with `dynakv status`",
        s["node"].as_str().unwrap_or("?"),
        s["state"].as_str().unwrap_or("?"),
        s["partitions_to_hand_off"].as_u64().unwrap_or(0)
    );
    Ok(())
}

/// `dynakv remove NAME`.
pub fn remove(name: &str, node: NodeUrl, admin_token: Option<String>) -> Result<(), CliError> {
    let path = format!("/admin/remove/{}", percent_encode(name.as_bytes(), KEY_SET));
    let s = admin_post(&node, &path, admin_token)?;
    println!(
        "removed {}; the survivors restore {} partition(s) from the remaining replicas",
        s["removed"].as_str().unwrap_or(name),
        s["partitions_to_restore"].as_u64().unwrap_or(0)
    );
    Ok(())
}

/// `dynakv plan join|leave|remove NAME`: what the change would move.
pub fn plan(args: PlanArgs) -> Result<(), CliError> {
    let enc = |s: &str| utf8_percent_encode(s, KEY_SET).to_string();
    let query = match &args.change {
        PlanChange::Join { name, weight, zone } => {
            let mut q = format!("join={}", enc(name));
            if let Some(w) = weight {
                q.push_str(&format!("&weight={w}"));
            }
            if let Some(z) = zone {
                q.push_str(&format!("&zone={}", enc(z)));
            }
            q
        }
        PlanChange::Leave { name } => format!("leave={}", enc(name)),
        PlanChange::Remove { name } => format!("remove={}", enc(name)),
    };
    let url = format!(
        "{}/admin/plan?{query}",
        args.node.node.trim_end_matches('/')
    );
    let resp = send(client()?.get(url), &args.node)?;
    if !resp.status().is_success() {
        return Err(api_error(resp));
    }
    let s: Value = resp
        .json()
        .map_err(|e| failure(format!("bad plan response: {e}")))?;
    println!(
        "{}: {} of 1024 partitions change replicas",
        s["change"].as_str().unwrap_or("?"),
        s["partitions_moving"].as_u64().unwrap_or(0)
    );
    println!(
        "{:<16} {:<16} {:>10} {:>14} {:>14}",
        "FROM", "TO", "PARTITIONS", "EST. KEYS", "EST. BYTES"
    );
    for t in s["transfers"].as_array().cloned().unwrap_or_default() {
        println!(
            "{:<16} {:<16} {:>10} {:>14} {:>14}",
            t["from"].as_str().unwrap_or("?"),
            t["to"].as_str().unwrap_or("?"),
            t["partitions"].as_u64().unwrap_or(0),
            t["estimated_keys"].as_u64().unwrap_or(0),
            t["estimated_bytes"].as_u64().unwrap_or(0)
        );
    }
    if let Some(own) = s["ownership_after"].as_object() {
        let shares: Vec<String> = own
            .iter()
            .map(|(n, v)| format!("{n} {:.1}%", v.as_f64().unwrap_or(0.0) * 100.0))
            .collect();
        println!("ownership after: {}", shares.join(", "));
    }
    Ok(())
}
