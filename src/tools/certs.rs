//! `dynakv certs`: a CA for a cluster and a certificate per node, for the
//! nodes' `--tls-cert`, `--tls-key` and `--tls-ca` and the tools' `--ca`
//! (made with rcgen; see `crate::server::tls::certs`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::tools::common::{CliError, failure};

/// `dynakv certs init|node`.
#[derive(Args, Debug)]
pub struct CertsArgs {
    #[command(subcommand)]
    command: CertsCommand,
}

#[derive(Subcommand, Debug)]
enum CertsCommand {
    /// Make the cluster's CA: DIR/ca.pem (give it to nodes as --tls-ca and
    /// to tools as --ca) and DIR/ca.key (keep it offline).
    Init {
        /// Where the CA's files go.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// A name for the CA's subject.
        #[arg(long, default_value = "dynakv")]
        cluster: String,
    },
    /// Make NAME's certificate, signed by DIR's CA: DIR/NAME.pem and
    /// DIR/NAME.key. It names the node (peers check it) and each --host.
    Node {
        /// The node's name (its --name).
        name: String,
        /// Where the CA is, and the files go.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// An address or DNS name clients reach the node at (repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
}

/// Runs `dynakv certs`.
pub fn certs(args: CertsArgs) -> Result<(), CliError> {
    use crate::server::tls::certs;
    match args.command {
        CertsCommand::Init { dir, cluster } => {
            certs::init(&dir, &cluster).map_err(failure)?;
            println!(
                "made the CA: {} (for --tls-ca and --ca) and {} (keep it safe)",
                dir.join("ca.pem").display(),
                dir.join("ca.key").display()
            );
        }
        CertsCommand::Node { name, dir, hosts } => {
            certs::node(&dir, &name, &hosts).map_err(failure)?;
            println!(
                "made {name}'s certificate: --tls-cert {} --tls-key {} --tls-ca {}",
                dir.join(format!("{name}.pem")).display(),
                dir.join(format!("{name}.key")).display(),
                dir.join("ca.pem").display()
            );
        }
    }
    Ok(())
}
