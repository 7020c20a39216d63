//! The client subcommands (`get`, `put`, `delete`, `status`, `repair`,
//! `leave`, `remove`, `plan`): thin wrappers over [`dynakv_client`] with clear
//! output and exit codes (0 ok, 1 operational failure, 2 usage error).

use std::io::{IsTerminal, Read, Write};
use std::time::Duration;

use dynakv_client::blocking::Client;
use dynakv_client::{ClientBuilder, Context, Error, Options, Quorum, Sibling};
use serde_json::Value;

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::tools::common::{AdminArgs, CliError, NodeUrl, failure, usage};

fn client(
    node: &NodeUrl,
    timeout: Duration,
    admin_token: Option<String>,
) -> Result<Client, CliError> {
    Ok(ClientBuilder::new([node.node.clone()])
        .timeout(timeout)
        .admin_token(admin_token)
        .ca_pem(node.access.ca_pem()?)
        .basic_auth(node.access.credentials()?)
        .build_blocking()?)
}

fn options(quorum: &Option<String>, bucket: &BucketSel) -> Result<Options, CliError> {
    Ok(Options {
        bucket: bucket.selected(),
        quorum: quorum
            .as_deref()
            .map(str::parse::<Quorum>)
            .transpose()
            .map_err(usage)?,
        ..Options::default()
    })
}

/// `dynakv get`: the value on stdout (with a newline when stdout is a
/// terminal), the context on stderr; siblings are listed with the context to
/// resolve them.
pub fn get(args: GetArgs) -> Result<(), CliError> {
    let http = client(&args.node, Duration::from_secs(30), None)?;
    let object = match http.get_with(args.key.as_bytes(), &options(&args.r, &args.bucket)?) {
        Err(Error::NotFound { .. }) => return Err(failure(format!("not found: {}", args.key))),
        other => other?,
    };
    if let Some(one) = object.value() {
        let mut out = std::io::stdout();
        out.write_all(&one.value)
            .and_then(|()| {
                if out.is_terminal() && !one.value.ends_with(b"\n") {
                    out.write_all(b"\n")
                } else {
                    Ok(())
                }
            })
            .map_err(|e| failure(format!("writing the value: {e}")))?;
        eprintln!("context: {}", object.context);
        return Ok(());
    }
    println!("{} siblings", object.siblings.len());
    for (i, s) in object.siblings.iter().enumerate() {
        println!("--- sibling {} ({}) ---", i + 1, s.content_type);
        println!("{}", String::from_utf8_lossy(&s.value));
    }
    println!("context: {}", object.context);
    eprintln!("write back with --context to resolve the siblings");
    Ok(())
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
    let http = client(&args.node, Duration::from_secs(30), None)?;
    let key = args.key.as_bytes();
    // A person typing a put means "set it to this": read the current context first.
    let context = match (&args.context, args.blind) {
        (Some(c), _) => Some(Context::from_token(c.clone())),
        (None, true) => None,
        (None, false) => match http.get_with(key, &options(&None, &args.bucket)?) {
            Ok(o) => Some(o.context),
            Err(Error::NotFound { context }) => context,
            Err(e) => return Err(e.into()),
        },
    };
    let written = http.put_with(
        key,
        Sibling::new(value, args.content_type.clone()),
        context.as_ref(),
        &options(&args.w, &args.bucket)?,
    )?;
    println!("{written}");
    Ok(())
}

/// `dynakv delete`.
pub fn delete(args: DeleteArgs) -> Result<(), CliError> {
    let http = client(&args.node, Duration::from_secs(30), None)?;
    let context = args.context.clone().map(Context::from_token);
    http.delete_with(
        args.key.as_bytes(),
        context.as_ref(),
        &options(&args.w, &args.bucket)?,
    )?;
    eprintln!("deleted {}", args.key);
    Ok(())
}

/// One line saying whether the node is ready and the cluster settled, and
/// if not, what it waits for.
fn settled_line(s: &Value) -> String {
    let ready = if s["ready"].as_bool() == Some(true) {
        "ready"
    } else {
        "NOT READY (GET /health/ready says why)"
    };
    if s["settled"].as_bool() == Some(true) {
        return format!(
            "{ready}; cluster settled: every live member in the ring, on this ring version, nothing moving"
        );
    }
    let settling = &s["settling"];
    let mut waits = Vec::new();
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| match x {
                        Value::Array(pair) => format!(
                            "{} (ring {})",
                            pair.first().and_then(Value::as_str).unwrap_or("?"),
                            pair.get(1).and_then(Value::as_u64).unwrap_or(0)
                        ),
                        other => other.as_str().unwrap_or("?").to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let joining = names(&settling["joining"]);
    if !joining.is_empty() {
        waits.push(format!("joining: {}", joining.join(", ")));
    }
    let other = names(&settling["other_ring"]);
    if !other.is_empty() {
        waits.push(format!("on another ring: {}", other.join(", ")));
    }
    let moving = settling["partitions_moving"].as_u64().unwrap_or(0);
    if moving > 0 {
        waits.push(format!("{moving} partitions moving"));
    }
    format!("{ready}; cluster settling ({})", waits.join("; "))
}

/// `dynakv status`: members, liveness, ownership, key and hint counts.
pub fn status(node: NodeUrl) -> Result<(), CliError> {
    let s = client(&node, Duration::from_secs(30), None)?.status()?;
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
    println!("{}", settled_line(&s));
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
    let s = client(&node, Duration::from_secs(3600), admin_token)?.repair()?;
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

/// `dynakv leave`: start decommissioning the node; `dynakv status` shows the
/// handoff, after which the node reports `left` and stops.
pub fn leave(node: NodeUrl, admin_token: Option<String>) -> Result<(), CliError> {
    let s = client(&node, Duration::from_secs(30), admin_token)?.leave()?;
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
    let s = client(&node, Duration::from_secs(30), admin_token)?.remove(name)?;
    println!(
        "removed {}; the survivors restore {} partition(s) from the remaining replicas",
        s["removed"].as_str().unwrap_or(name),
        s["partitions_to_restore"].as_u64().unwrap_or(0)
    );
    Ok(())
}

/// `dynakv plan join|leave|remove NAME`: what the change would move.
pub fn plan(args: PlanArgs) -> Result<(), CliError> {
    let query: Vec<(&str, String)> = match &args.change {
        PlanChange::Join { name, weight, zone } => {
            let mut q = vec![("join", name.clone())];
            if let Some(w) = weight {
                q.push(("weight", w.to_string()));
            }
            if let Some(z) = zone {
                q.push(("zone", z.clone()));
            }
            q
        }
        PlanChange::Leave { name } => vec![("leave", name.clone())],
        PlanChange::Remove { name } => vec![("remove", name.clone())],
    };
    let s = client(&args.node, Duration::from_secs(30), None)?.plan(&query)?;
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

/// `dynakv remove`.
#[derive(Args, Debug)]
pub struct RemoveArgs {
    /// The member to remove (it must be down).
    pub name: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub admin: AdminArgs,
}

/// `dynakv plan`.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The change to preview.
    #[command(subcommand)]
    pub change: PlanChange,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub node: NodeUrl,
}

/// A membership change `dynakv plan` previews.
#[derive(Subcommand, Debug)]
pub enum PlanChange {
    /// A new node joining.
    Join {
        /// Its name.
        name: String,
        /// Its weight.
        #[arg(long)]
        weight: Option<f64>,
        /// Its zone.
        #[arg(long)]
        zone: Option<String>,
    },
    /// A member decommissioned with `dynakv leave`.
    Leave {
        /// Its name.
        name: String,
    },
    /// A dead member dropped with `dynakv remove`.
    Remove {
        /// Its name.
        name: String,
    },
}

/// The bucket a key command addresses (`--bucket`, `--type`); the native
/// API's bucket when none.
#[derive(Args, Debug)]
pub struct BucketSel {
    /// A bucket other than the native API's.
    #[arg(long)]
    pub bucket: Option<String>,
    /// The bucket's type (with --bucket; `default` when not given).
    #[arg(long, requires = "bucket")]
    pub r#type: Option<String>,
}

impl BucketSel {
    /// (type, bucket), as `dynakv_client::Options::bucket` takes it.
    fn selected(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        let b = self.bucket.as_ref()?;
        let t = self.r#type.as_deref().unwrap_or("default");
        Some((t.as_bytes().to_vec(), b.as_bytes().to_vec()))
    }
}

/// `dynakv get`.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// The key (any bytes; percent-encoded on the wire).
    pub key: String,
    /// Read quorum.
    #[arg(long)]
    pub r: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub bucket: BucketSel,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub node: NodeUrl,
}

/// `dynakv put`.
#[derive(Args, Debug)]
pub struct PutArgs {
    /// The key.
    pub key: String,
    /// The value (or use --file).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub value: Option<String>,
    /// Read the value from this file ("-" for standard input).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Causal context from an earlier read.
    #[arg(long, conflicts_with = "blind")]
    pub context: Option<String>,
    /// Write with no context: add a sibling instead of replacing.
    #[arg(long)]
    pub blind: bool,
    /// Content type stored with the value.
    #[arg(long, default_value = "application/octet-stream")]
    pub content_type: String,
    /// Write quorum.
    #[arg(long)]
    pub w: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub bucket: BucketSel,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub node: NodeUrl,
}

/// `dynakv delete`.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// The key.
    pub key: String,
    /// Causal context from an earlier read (default: what a quorum read finds).
    #[arg(long)]
    pub context: Option<String>,
    /// Write quorum.
    #[arg(long)]
    pub w: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub bucket: BucketSel,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub node: NodeUrl,
}
