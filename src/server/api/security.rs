//! Users and grants over HTTP: `/admin/security` (what `dynakv security`
//! calls), and the gate every request passes once security is enabled
//! (`crate::server::security`): a credential, checked before the body is
//! read, and the grant the request needs.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use super::ApiError;
use super::admin::{authorize, token_matches};
use crate::server::gossip::{Users, push};
use crate::server::node::Node;
use crate::server::security::{Perm, hash_password};

/// Who a request comes from, by its `Authorization` header.
enum Credential {
    /// None given.
    Missing,
    /// Given, and wrong.
    Bad,
    /// The admin token (tools): every permission.
    AdminToken,
    /// A user whose password matched.
    User(String),
}

fn credential(node: &Node, headers: &HeaderMap) -> Credential {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Credential::Missing;
    };
    if let Some(token) = value.strip_prefix("Bearer ") {
        return match &node.core.config.admin_token {
            Some(expected) if token_matches(token, expected) => Credential::AdminToken,
            _ => Credential::Bad,
        };
    }
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return Credential::Bad;
    };
    let Some((user, password)) = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        })
    else {
        return Credential::Bad;
    };
    if node.core.security.check_password(&user, &password) {
        Credential::User(user)
    } else {
        Credential::Bad
    }
}

/// True if the request carries a user credential with the admin permission
/// (besides the admin token, which [`authorize`] checks).
pub fn is_admin_user(node: &Node, headers: &HeaderMap) -> bool {
    node.core.security.enabled()
        && matches!(credential(node, headers), Credential::User(u) if node.core.security.permits(&u, Perm::Admin, None))
}

fn decode(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

/// What a request needs: a permission, on a (type, bucket) or on the node;
/// `None`: any authenticated user (ping, stats, the resource map).
fn required(method: &Method, path: &str, query: &str) -> Option<(Perm, Option<(String, String)>)> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let object = |ns: (String, String)| -> (Perm, Option<(String, String)>) {
        let perm = match *method {
            Method::GET | Method::HEAD => Perm::Read,
            Method::DELETE => Perm::Delete,
            _ => Perm::Write,
        };
        (perm, Some(ns))
    };
    let param = |name: &str| -> Option<String> {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| decode(v))
    };
    let default = || "default".to_string();
    let listing = param("keys").is_some() || param("buckets").is_some();
    // The bucket, and what follows it.
    let (ns, rest): ((String, String), &[&str]) = match segments.as_slice() {
        ["kv", _] => {
            let ns = (
                param("type").unwrap_or_else(default),
                param("bucket").unwrap_or_else(default),
            );
            return Some(object(ns));
        }
        ["admin", ..] | ["metrics"] => return Some((Perm::Admin, None)),
        ["types", t, "buckets"] => return Some((Perm::List, Some((decode(t), String::new())))),
        ["buckets"] | ["riak"] => return Some((Perm::List, Some((default(), String::new())))),
        ["types", t, "buckets", b, rest @ ..] => ((decode(t), decode(b)), rest),
        ["buckets", b, rest @ ..] => ((default(), decode(b)), rest),
        ["riak", b] => ((default(), decode(b)), &[][..]),
        ["riak", b, _key, ..] => return Some(object((default(), decode(b)))),
        _ => return None,
    };
    Some(match rest {
        ["keys"] if *method == Method::POST => object(ns),
        ["keys"] | [] if listing => (Perm::List, Some(ns)),
        ["keys", _, ..] | ["counters", _] | ["index", ..] => object(ns),
        ["props"] | [] => match *method {
            Method::GET | Method::HEAD => (Perm::Read, Some(ns)),
            _ => (Perm::Admin, None),
        },
        _ => object(ns),
    })
}

/// The gate: with security on, every request but `/health` needs a
/// credential (401 without one, or with a wrong one) and the grant its
/// path and method need (403). Runs before any body is read.
pub async fn gate(State(node): State<Arc<Node>>, req: Request, next: Next) -> Response {
    if !node.core.security.enabled() || req.uri().path().starts_with("/health") {
        return next.run(req).await;
    }
    let need = required(
        req.method(),
        req.uri().path(),
        req.uri().query().unwrap_or(""),
    );
    match credential(&node, req.headers()) {
        Credential::AdminToken => next.run(req).await,
        Credential::User(user) => {
            let allowed = need.as_ref().is_none_or(|(perm, on)| {
                node.core.security.permits(
                    &user,
                    *perm,
                    on.as_ref().map(|(t, b)| (t.as_str(), b.as_str())),
                )
            });
            if allowed {
                next.run(req).await
            } else {
                let (perm, on) = need.expect("allowed without a need");
                let what = on.map_or_else(
                    || "this node".to_string(),
                    |(t, b)| {
                        if b.is_empty() {
                            format!("type {t}")
                        } else {
                            format!("{t}/{b}")
                        }
                    },
                );
                ApiError {
                    status: StatusCode::FORBIDDEN,
                    code: "forbidden",
                    message: format!("{user} has no {} permission on {what}", perm.name()),
                }
                .into_response()
            }
        }
        Credential::Missing | Credential::Bad => {
            let mut r = ApiError {
                status: StatusCode::UNAUTHORIZED,
                code: "unauthorized",
                message: "security is enabled: give a user's credentials (HTTP Basic) or the admin token (Bearer)".into(),
            }
            .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"dynakv\""),
            );
            r
        }
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

/// `GET /admin/security`: whether it is on, the users and the grants.
pub async fn show(State(node): State<Arc<Node>>) -> Json<Value> {
    let m = node.core.security.snapshot();
    let grants: Vec<Value> = m
        .grants()
        .into_iter()
        .map(|(user, t, b, perms)| json!({"user": user, "type": t, "bucket": (!b.is_empty()).then_some(b), "permissions": perms}))
        .collect();
    Json(json!({"enabled": m.enabled(), "users": m.users(), "grants": grants}))
}

async fn changed(node: &Arc<Node>) {
    node.core.persist_security().await;
    push::<Users>(&node.core).await;
}

/// `POST /admin/security/enable` and `/disable`.
pub async fn set_enabled(
    State(node): State<Arc<Node>>,
    on: bool,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&node, &headers)?;
    // Passwords travel in every request: never in plain text.
    if on && node.core.rpc_shared.tls.is_none() {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "tls_required",
            message: "security needs TLS on this node (--tls-cert, --tls-key, --tls-ca): credentials would travel in plain text".into(),
        });
    }
    node.core
        .security
        .change(|m, stamp| m.set_enabled(on, stamp));
    changed(&node).await;
    Ok(Json(json!({"enabled": on})))
}

/// `PUT /admin/security/users/{name}` with `{"password": "..."}`: adds a
/// user, or sets its password.
pub async fn put_user(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&node, &headers)?;
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
    {
        return Err(bad("a user name is 1-64 characters of A-Z a-z 0-9 - _ . @"));
    }
    let v: Value = serde_json::from_slice(&body).map_err(|e| bad(format!("not JSON: {e}")))?;
    let password = v["password"]
        .as_str()
        .filter(|p| !p.is_empty() && p.len() <= 1024)
        .ok_or_else(|| bad("give {\"password\": \"...\"} (1-1024 bytes)"))?;
    let hash = hash_password(password).map_err(bad)?;
    node.core
        .security
        .change(|m, stamp| m.set_user(&name, hash, stamp));
    changed(&node).await;
    Ok(Json(json!({"user": name})))
}

/// `DELETE /admin/security/users/{name}`: the user and its grants.
pub async fn delete_user(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&node, &headers)?;
    if !node
        .core
        .security
        .change(|m, stamp| m.delete_user(&name, stamp))
    {
        return Err(ApiError::not_found(format!("no user {name}")));
    }
    changed(&node).await;
    Ok(Json(json!({"deleted": name})))
}

/// `POST /admin/security/grant` and `/revoke` with `{"user", "permissions":
/// "read,write", "type", "bucket"}` (`type` `any`: every type; no bucket:
/// every bucket of the type).
pub async fn change_grant(
    State(node): State<Arc<Node>>,
    grant: bool,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&node, &headers)?;
    let action = if grant { "granted" } else { "revoked" };
    let v: Value = serde_json::from_slice(&body).map_err(|e| bad(format!("not JSON: {e}")))?;
    let user = v["user"]
        .as_str()
        .ok_or_else(|| bad("no \"user\""))?
        .to_string();
    let perms = Perm::parse_set(v["permissions"].as_str().unwrap_or("")).map_err(bad)?;
    let bucket_type = v["type"].as_str().unwrap_or("any").to_string();
    let bucket = v["bucket"].as_str().unwrap_or("").to_string();
    if grant && node.core.security.snapshot().password_hash(&user).is_none() {
        return Err(ApiError::not_found(format!("no user {user}: add it first")));
    }
    node.core.security.change(|m, stamp| {
        m.change_grant((user.clone(), bucket_type, bucket), perms, grant, stamp)
    });
    changed(&node).await;
    Ok(Json(json!({"user": user, action: Perm::names(perms)})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(method: Method, path: &str, query: &str) -> Option<(Perm, Option<(String, String)>)> {
        required(&method, path, query)
    }

    fn on(t: &str, b: &str) -> Option<(String, String)> {
        Some((t.to_string(), b.to_string()))
    }

    #[test]
    fn each_path_needs_its_permission_on_its_bucket() {
        assert_eq!(
            need(Method::GET, "/kv/k", ""),
            Some((Perm::Read, on("default", "default")))
        );
        assert_eq!(
            need(Method::PUT, "/kv/k", "bucket=b&type=t"),
            Some((Perm::Write, on("t", "b")))
        );
        assert_eq!(
            need(Method::DELETE, "/kv/k", ""),
            Some((Perm::Delete, on("default", "default")))
        );
        assert_eq!(
            need(Method::GET, "/types/t/buckets/b/keys/k", ""),
            Some((Perm::Read, on("t", "b")))
        );
        assert_eq!(
            need(Method::POST, "/buckets/b/keys", ""),
            Some((Perm::Write, on("default", "b")))
        );
        assert_eq!(
            need(Method::GET, "/buckets/b/keys", "keys=true"),
            Some((Perm::List, on("default", "b")))
        );
        assert_eq!(
            need(Method::GET, "/riak/b/k", ""),
            Some((Perm::Read, on("default", "b")))
        );
        assert_eq!(
            need(Method::PUT, "/buckets/b/props", ""),
            Some((Perm::Admin, None))
        );
        assert_eq!(
            need(Method::GET, "/buckets", "buckets=true"),
            Some((Perm::List, on("default", "")))
        );
        assert_eq!(
            need(Method::GET, "/admin/export", "partition=1"),
            Some((Perm::Admin, None))
        );
        assert_eq!(need(Method::GET, "/metrics", ""), Some((Perm::Admin, None)));
        assert_eq!(
            need(Method::POST, "/buckets/b/counters/c", ""),
            Some((Perm::Write, on("default", "b")))
        );
        assert_eq!(need(Method::GET, "/ping", ""), None);
    }
}
