//! `dynakv bucket-type` (shaped like `riak-admin bucket-type`) and `dynakv
//! bucket props`: bucket types and bucket properties, over a node's
//! `/admin/bucket-types` and Riak `/props` endpoints.

use std::time::Duration;

use clap::{Args, Subcommand};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::Value;

use crate::tools::common::{AdminArgs, CliError, NodeUrl, failure, usage};

/// `dynakv bucket-type ...`.
#[derive(Args, Debug)]
pub struct BucketTypeArgs {
    #[command(subcommand)]
    action: TypeAction,
}

#[derive(Subcommand, Debug)]
enum TypeAction {
    /// Create a bucket type (not active until `activate`).
    Create {
        /// The type's name.
        name: String,
        /// Its properties: '{"props":{"n_val":2,...}}'.
        props: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Activate a bucket type: its buckets can be used from then on.
    Activate {
        /// The type's name.
        name: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Change properties of a bucket type (`datatype` is fixed once active).
    Update {
        /// The type's name.
        name: String,
        /// The properties to change: '{"props":{...}}'.
        props: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show a bucket type's state and properties.
    Status {
        /// The type's name.
        name: String,
        #[command(flatten)]
        node: NodeUrl,
    },
    /// List the bucket types and whether each is active.
    List {
        #[command(flatten)]
        node: NodeUrl,
    },
}

/// `dynakv bucket ...`.
#[derive(Args, Debug)]
pub struct BucketArgs {
    #[command(subcommand)]
    what: BucketWhat,
}

#[derive(Subcommand, Debug)]
enum BucketWhat {
    /// A bucket's properties.
    Props {
        #[command(subcommand)]
        action: PropsAction,
    },
}

#[derive(Subcommand, Debug)]
enum PropsAction {
    /// Print a bucket's properties (JSON).
    Get {
        /// `[TYPE/]BUCKET` (type `default` when none).
        bucket: String,
        #[command(flatten)]
        node: NodeUrl,
    },
    /// Set some of a bucket's properties: '{"props":{...}}'.
    Set {
        /// `[TYPE/]BUCKET`.
        bucket: String,
        /// The properties to set.
        props: String,
        #[command(flatten)]
        node: NodeUrl,
    },
    /// Reset a bucket's properties to its type's.
    Reset {
        /// `[TYPE/]BUCKET`.
        bucket: String,
        #[command(flatten)]
        node: NodeUrl,
    },
}

pub(crate) fn http(node: &NodeUrl) -> Result<Client, CliError> {
    let mut b = Client::builder().timeout(Duration::from_secs(30));
    if let Some(pem) = node.access.ca_pem()? {
        let ca = reqwest::Certificate::from_pem(&pem).map_err(|e| usage(format!("--ca: {e}")))?;
        b = b.add_root_certificate(ca);
    }
    if let Some((user, password)) = node.access.credentials()? {
        use base64::Engine;
        let value = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            value
                .parse()
                .map_err(|_| usage("the user or password cannot travel in a header"))?,
        );
        b = b.default_headers(headers);
    }
    b.build()
        .map_err(|e| failure(format!("cannot build an HTTP client: {e}")))
}

impl TypeAction {
    fn node(&self) -> &NodeUrl {
        match self {
            TypeAction::Create { admin, .. }
            | TypeAction::Activate { admin, .. }
            | TypeAction::Update { admin, .. } => &admin.node,
            TypeAction::Status { node, .. } | TypeAction::List { node, .. } => node,
        }
    }
}

impl PropsAction {
    fn node(&self) -> &NodeUrl {
        match self {
            PropsAction::Get { node, .. }
            | PropsAction::Set { node, .. }
            | PropsAction::Reset { node, .. } => node,
        }
    }
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

pub(crate) fn with_token(req: RequestBuilder, admin: &AdminArgs) -> RequestBuilder {
    match &admin.admin_token {
        Some(t) => req.bearer_auth(t),
        None => req,
    }
}

/// Sends a request; the JSON answer, or the node's error as one line.
pub(crate) fn send(req: RequestBuilder) -> Result<Value, CliError> {
    let resp = req
        .send()
        .map_err(|e| failure(format!("node unreachable: {e}")))?;
    let status = resp.status();
    let text = resp.text().unwrap_or_default();
    if !status.is_success() {
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        return Err(if status.is_client_error() {
            usage(message)
        } else {
            failure(message)
        });
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn check_json(props: &str) -> Result<String, CliError> {
    serde_json::from_str::<Value>(props)
        .map_err(|e| usage(format!("the properties are not JSON: {e}")))?;
    Ok(props.to_string())
}

/// `dynakv bucket-type`.
pub fn bucket_type(args: BucketTypeArgs) -> Result<(), CliError> {
    let c = http(args.action.node())?;
    match args.action {
        TypeAction::Create { name, props, admin } => {
            let body = check_json(props.as_deref().unwrap_or("{\"props\":{}}"))?;
            let url = format!("{}/admin/bucket-types/{}", admin.node.node, enc(&name));
            send(with_token(c.post(url).body(body), &admin))?;
            println!("{name} created");
        }
        TypeAction::Activate { name, admin } => {
            let url = format!(
                "{}/admin/bucket-types/{}/activate",
                admin.node.node,
                enc(&name)
            );
            send(with_token(c.post(url), &admin))?;
            println!("{name} has been activated");
        }
        TypeAction::Update { name, props, admin } => {
            let body = check_json(&props)?;
            let url = format!("{}/admin/bucket-types/{}", admin.node.node, enc(&name));
            send(with_token(c.put(url).body(body), &admin))?;
            println!("{name} updated");
        }
        TypeAction::Status { name, node } => {
            let url = format!("{}/admin/bucket-types/{}", node.node, enc(&name));
            let t = send(c.get(url))?;
            let state = if t["status"] == "active" {
                "active"
            } else {
                "not active"
            };
            println!("{name} is {state}\n");
            if let Some(props) = t["props"].as_object() {
                for (k, v) in props {
                    println!("{k}: {v}");
                }
            }
        }
        TypeAction::List { node } => {
            let t = send(c.get(format!("{}/admin/bucket-types", node.node)))?;
            for ty in t["types"].as_array().cloned().unwrap_or_default() {
                let state = if ty["status"] == "active" {
                    "active"
                } else {
                    "not active"
                };
                println!("{} ({state})", ty["name"].as_str().unwrap_or("?"));
            }
        }
    }
    Ok(())
}

/// The props URL of `[TYPE/]BUCKET`.
fn props_url(node: &str, target: &str) -> Result<String, CliError> {
    match target.split_once('/') {
        Some((t, b)) if !t.is_empty() && !b.is_empty() => {
            Ok(format!("{node}/types/{}/buckets/{}/props", enc(t), enc(b)))
        }
        None if !target.is_empty() => Ok(format!("{node}/buckets/{}/props", enc(target))),
        _ => Err(usage(format!(
            "a bucket is BUCKET or TYPE/BUCKET, not {target:?}"
        ))),
    }
}

/// `dynakv bucket props`.
pub fn bucket(args: BucketArgs) -> Result<(), CliError> {
    let BucketWhat::Props { action } = args.what;
    let c = http(action.node())?;
    match action {
        PropsAction::Get { bucket, node } => {
            let p = send(c.get(props_url(&node.node, &bucket)?))?;
            println!("{}", serde_json::to_string_pretty(&p).unwrap_or_default());
        }
        PropsAction::Set {
            bucket,
            props,
            node,
        } => {
            let body = check_json(&props)?;
            send(
                c.put(props_url(&node.node, &bucket)?)
                    .header("content-type", "application/json")
                    .body(body),
            )?;
            println!("{bucket}: properties set");
        }
        PropsAction::Reset { bucket, node } => {
            send(c.delete(props_url(&node.node, &bucket)?))?;
            println!("{bucket}: properties reset to its type's");
        }
    }
    Ok(())
}
