//! Pieces every client subcommand shares: the error a command ends with (and
//! its exit code), and the flags that name the nodes to talk to.

use clap::Args;
use dynakv_client::Error;

/// A failed client command: its exit code and one line for stderr.
#[derive(Debug)]
pub struct CliError {
    /// 1 for operational failures, 2 for usage errors.
    pub code: u8,
    /// The line to print.
    pub message: String,
}

/// An operational failure (exit 1).
pub(crate) fn failure(message: impl Into<String>) -> CliError {
    CliError {
        code: 1,
        message: message.into(),
    }
}

/// A usage error (exit 2).
pub(crate) fn usage(message: impl Into<String>) -> CliError {
    CliError {
        code: 2,
        message: message.into(),
    }
}

impl From<Error> for CliError {
    /// A malformed request is a usage error (exit 2); anything else is an
    /// operational failure (exit 1).
    fn from(e: Error) -> CliError {
        match e {
            Error::BadRequest { .. } => usage(e.to_string()),
            _ => failure(e.to_string()),
        }
    }
}

/// The nodes a command that spreads its requests talks to (`bench`, `load`,
/// `export`).
#[derive(Args, Debug)]
pub struct NodeList {
    /// Comma-separated node URLs.
    #[arg(
        long,
        env = "DYNAKV_NODE",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8000"
    )]
    pub node: Vec<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub access: Access,
}

/// How a client reaches a cluster that speaks TLS or has security on.
#[derive(Args, Debug, Default)]
pub struct Access {
    /// CA certificate (PEM) that `https://` nodes are checked against.
    #[arg(long, env = "DYNAKV_CA")]
    pub ca: Option<std::path::PathBuf>,
    /// User to authenticate as (a cluster with security enabled).
    #[arg(long, env = "DYNAKV_USER")]
    pub user: Option<String>,
    /// Its password.
    #[arg(long, env = "DYNAKV_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

impl Access {
    /// The CA file's bytes, if one was given.
    pub(crate) fn ca_pem(&self) -> Result<Option<Vec<u8>>, CliError> {
        ca_pem(&self.ca)
    }

    /// The credentials, if any.
    pub(crate) fn credentials(&self) -> Result<Option<(String, String)>, CliError> {
        credentials(&self.user, &self.password)
    }
}

/// Which node a client command talks to.
#[derive(Args, Debug)]
pub struct NodeUrl {
    /// Node HTTP URL.
    #[arg(long, env = "DYNAKV_NODE", default_value = "http://127.0.0.1:8000")]
    pub node: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub access: Access,
}

/// The credentials given with --user and --password, if any.
pub(crate) fn credentials(
    user: &Option<String>,
    password: &Option<String>,
) -> Result<Option<(String, String)>, CliError> {
    match (user, password) {
        (None, None) => Ok(None),
        (Some(u), Some(p)) => Ok(Some((u.clone(), p.clone()))),
        _ => Err(usage(
            "give both --user and --password (or DYNAKV_USER and DYNAKV_PASSWORD)",
        )),
    }
}

/// The CA file's bytes, if one was given; a file that cannot be read is a
/// usage error.
pub(crate) fn ca_pem(path: &Option<std::path::PathBuf>) -> Result<Option<Vec<u8>>, CliError> {
    path.as_ref()
        .map(|p| std::fs::read(p).map_err(|e| usage(format!("--ca {}: {e}", p.display()))))
        .transpose()
}

/// A client command calling an admin endpoint.
#[derive(Args, Debug)]
pub struct AdminArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub node: NodeUrl,
    /// Admin bearer token, if the node requires one.
    #[arg(long, env = "DYNAKV_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}
