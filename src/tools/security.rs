//! `dynakv security`, shaped like `riak-admin security`: turn security on
//! or off, add and delete users, grant and revoke permissions, print them
//! (over `/admin/security`; see `crate::server::security`).

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::tools::buckets::{http, send, with_token};
use crate::tools::common::{AdminArgs, CliError, usage};

/// `dynakv security ...`.
#[derive(Args, Debug)]
pub struct SecurityArgs {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Require a credential and a grant for every request (needs TLS).
    Enable,
    /// Serve every request without a credential again.
    Disable,
    /// Add a user (or set its password).
    AddUser {
        /// The user's name.
        name: String,
        /// Its password.
        #[arg(long, env = "DYNAKV_NEW_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Delete a user and its grants.
    DelUser {
        /// The user's name.
        name: String,
    },
    /// `grant PERMS on TYPE [BUCKET] to USER`: PERMS is a comma-separated
    /// list of read, write, delete, list, admin (or Riak's riak_kv.get, …);
    /// TYPE `any` covers every type.
    Grant {
        /// PERMS on TYPE [BUCKET] to USER.
        #[arg(num_args = 5..=6)]
        words: Vec<String>,
    },
    /// `revoke PERMS on TYPE [BUCKET] from USER`.
    Revoke {
        /// PERMS on TYPE [BUCKET] from USER.
        #[arg(num_args = 5..=6)]
        words: Vec<String>,
    },
    /// The users.
    PrintUsers,
    /// The grants in force.
    PrintGrants,
}

/// `PERMS on TYPE [BUCKET] to|from USER` as the grant endpoint's body.
fn grant_body(words: &[String], to: &str) -> Result<Value, CliError> {
    let shape = || usage(format!("give PERMS on TYPE [BUCKET] {to} USER"));
    let (perms, rest) = words.split_first().ok_or_else(shape)?;
    let (bucket_type, bucket, user) = match rest {
        [on, t, word, user] if on == "on" && word == to => (t, None, user),
        [on, t, b, word, user] if on == "on" && word == to => (t, Some(b), user),
        _ => return Err(shape()),
    };
    Ok(json!({"permissions": perms, "type": bucket_type, "bucket": bucket, "user": user}))
}

/// Runs `dynakv security`.
pub fn security(args: SecurityArgs) -> Result<(), CliError> {
    let node = &args.admin.node;
    let c = http(node)?;
    let url = |path: &str| format!("{}/admin/security{path}", node.node);
    let post = |path: &str, body: Value| -> Result<Value, CliError> {
        send(with_token(
            c.post(url(path))
                .header("content-type", "application/json")
                .body(body.to_string()),
            &args.admin,
        ))
    };
    match &args.action {
        Action::Enable => {
            post("/enable", json!({}))?;
            println!("security enabled: every request needs a credential and a grant");
        }
        Action::Disable => {
            post("/disable", json!({}))?;
            println!("security disabled");
        }
        Action::AddUser { name, password } => {
            send(with_token(
                c.put(url(&format!("/users/{name}")))
                    .header("content-type", "application/json")
                    .body(json!({"password": password}).to_string()),
                &args.admin,
            ))?;
            println!("{name} added");
        }
        Action::DelUser { name } => {
            send(with_token(
                c.delete(url(&format!("/users/{name}"))),
                &args.admin,
            ))?;
            println!("{name} deleted");
        }
        Action::Grant { words } => {
            let v = post("/grant", grant_body(words, "to")?)?;
            println!("{v}");
        }
        Action::Revoke { words } => {
            let v = post("/revoke", grant_body(words, "from")?)?;
            println!("{v}");
        }
        Action::PrintUsers | Action::PrintGrants => {
            let v = send(with_token(c.get(url("")), &args.admin))?;
            if matches!(args.action, Action::PrintUsers) {
                println!(
                    "security {}",
                    if v["enabled"] == true {
                        "enabled"
                    } else {
                        "disabled"
                    }
                );
                for u in v["users"].as_array().into_iter().flatten() {
                    println!("{}", u.as_str().unwrap_or("?"));
                }
            } else {
                println!("{:<16} {:<16} {:<16} PERMISSIONS", "USER", "TYPE", "BUCKET");
                for g in v["grants"].as_array().into_iter().flatten() {
                    let perms: Vec<&str> = g["permissions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    println!(
                        "{:<16} {:<16} {:<16} {}",
                        g["user"].as_str().unwrap_or("?"),
                        g["type"].as_str().unwrap_or("?"),
                        g["bucket"].as_str().unwrap_or("*"),
                        perms.join(",")
                    );
                }
            }
        }
    }
    Ok(())
}
