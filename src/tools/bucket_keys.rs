//! `dynakv get|put|delete --bucket B [--type T]`: keys of other buckets than
//! the native API's, through the node's Riak HTTP API. The context printed
//! and taken (`--context`) is then the Riak vclock of the key.

use std::io::Write;
use std::time::Duration;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::blocking::{Client, Response};

use crate::tools::common::{CliError, failure, usage};

/// Where a key of a bucket lives on a node.
pub struct BucketKey {
    url: String,
    key: String,
}

impl BucketKey {
    /// `key` of `bucket` (of `bucket_type`, `default` when none) on `node`.
    pub fn new(node: &str, bucket_type: Option<&str>, bucket: &str, key: &str) -> BucketKey {
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        let url = format!(
            "{node}/types/{}/buckets/{}/keys/{}",
            enc(bucket_type.unwrap_or("default")),
            enc(bucket),
            enc(key)
        );
        BucketKey {
            url,
            key: key.to_string(),
        }
    }
}

fn http() -> Result<Client, CliError> {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| failure(format!("cannot build an HTTP client: {e}")))
}

fn vclock(r: &Response) -> Option<String> {
    r.headers()
        .get("x-riak-vclock")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn check(r: Response) -> Result<Response, CliError> {
    let status = r.status();
    if status.is_success() || status.as_u16() == 300 {
        return Ok(r);
    }
    let text = r.text().unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or(text);
    Err(match status.as_u16() {
        404 => failure("not found"),
        400 => usage(message),
        _ => failure(message),
    })
}

/// The query of a request: a quorum if given, and whatever else it needs.
fn query<'a>(
    name: &'a str,
    value: &'a Option<String>,
    more: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut q: Vec<(&str, &str)> = more.to_vec();
    if let Some(v) = value {
        q.push((name, v));
    }
    q
}

/// `dynakv get --bucket`.
pub fn get(k: &BucketKey, r: &Option<String>) -> Result<(), CliError> {
    let resp = http()?
        .get(&k.url)
        .query(&query("r", r, &[]))
        .header("accept", "multipart/mixed")
        .send()
        .map_err(|e| failure(format!("node unreachable: {e}")))?;
    let resp = check(resp).map_err(|e| {
        if e.message == "not found" {
            failure(format!("not found: {}", k.key))
        } else {
            e
        }
    })?;
    let ctx = vclock(&resp).unwrap_or_default();
    if resp.status().as_u16() == 300 {
        let body = resp.text().unwrap_or_default();
        println!("siblings:\n{body}");
        println!("context: {ctx}");
        eprintln!("write back with --context to resolve the siblings");
        return Ok(());
    }
    let body = resp.bytes().map_err(|e| failure(e.to_string()))?;
    std::io::stdout()
        .write_all(&body)
        .map_err(|e| failure(format!("writing the value: {e}")))?;
    eprintln!("context: {ctx}");
    Ok(())
}

/// `dynakv put --bucket`: reads the key's vclock first unless given one or
/// `blind`; prints the new one.
pub fn put(
    k: &BucketKey,
    value: Vec<u8>,
    content_type: &str,
    context: Option<String>,
    blind: bool,
    w: &Option<String>,
) -> Result<(), CliError> {
    let c = http()?;
    let context = match (context, blind) {
        (Some(ctx), _) => Some(ctx),
        (None, true) => None,
        (None, false) => {
            let r = c
                .get(&k.url)
                .send()
                .map_err(|e| failure(format!("node unreachable: {e}")))?;
            if r.status().as_u16() == 404 {
                vclock(&r)
            } else {
                vclock(&check(r)?)
            }
        }
    };
    // With the body back, the vclock printed covers exactly what it shows.
    let mut req = c
        .put(&k.url)
        .query(&query("w", w, &[("returnbody", "true")]))
        .header("content-type", content_type)
        .body(value);
    if let Some(ctx) = context {
        req = req.header("x-riak-vclock", ctx);
    }
    let resp = check(
        req.send()
            .map_err(|e| failure(format!("node unreachable: {e}")))?,
    )?;
    println!("{}", vclock(&resp).unwrap_or_default());
    if resp.status().as_u16() == 300 {
        eprintln!("the key holds siblings: `dynakv get --bucket` shows them");
    }
    Ok(())
}

/// `dynakv delete --bucket`.
pub fn delete(k: &BucketKey, context: Option<String>, w: &Option<String>) -> Result<(), CliError> {
    let mut req = http()?.delete(&k.url).query(&query("w", w, &[]));
    if let Some(ctx) = context {
        req = req.header("x-riak-vclock", ctx);
    }
    check(
        req.send()
            .map_err(|e| failure(format!("node unreachable: {e}")))?,
    )?;
    eprintln!("deleted {}", k.key);
    Ok(())
}
