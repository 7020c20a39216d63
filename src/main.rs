//! The `dynakv` binary: a node, a local-cluster launcher and client commands.

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use dynakv::server;
use dynakv::tools::cli::{Cli, Command, NodeArgs};
use dynakv::tools::{bench, commands as client, dev};

// A node allocates a handful of short-lived buffers per request on every
// runtime thread; glibc's malloc showed up as ~15-20% of a loaded node's
// cycles (arena locks, consolidation). mimalloc's thread-local free lists
// make those allocations cheap. RocksDB's own C++ allocations are unaffected.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // No transparent huge pages for this process. mimalloc asks for them on
    // its heap, and a freed span it returns to the kernel then costs a fresh
    // 2 MiB page, zeroed, on its next use: under a bulk load a node spent
    // 30% of its cycles in the kernel zeroing pages. Without them a load's
    // node CPU fell by 17% and its time by 22% (A-B runs of `load --sst`).
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Node(_)) {
        quiet_on_closed_pipe();
    }
    let result = match cli.command {
        Command::Node(args) => return run_node(&args),
        Command::Dev(a) => dev::run(a),
        Command::Get(a) => client::get(a),
        Command::Put(a) => client::put(a),
        Command::Delete(a) => client::delete(a),
        Command::Status(a) => client::status(a),
        Command::Bench(a) => bench::run(a),
        Command::Repair(a) => client::repair(a.node, a.admin_token),
        Command::Leave(a) => client::leave(a.node, a.admin_token),
        Command::Remove(a) => client::remove(&a.name, a.admin.node, a.admin.admin_token),
        Command::Plan(a) => client::plan(a),
        Command::Load(a) => dynakv::tools::load::load(a),
        Command::Export(a) => dynakv::tools::load::export(a),
        Command::BucketType(a) => dynakv::tools::buckets::bucket_type(a),
        Command::Bucket(a) => dynakv::tools::buckets::bucket(a),
        Command::Certs(a) => dynakv::tools::certs::certs(a),
        Command::Security(a) => dynakv::tools::security::security(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dynakv: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

/// `dynakv status | head` closes the pipe before the output ends, and
/// `println!` then panics. Stop quietly instead, with the status a process
/// killed by SIGPIPE would have (128 + 13), as Unix tools do.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

fn run_node(args: &NodeArgs) -> ExitCode {
    let config = match args.to_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dynakv: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dynakv: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let shutdown = CancellationToken::new();
    runtime.spawn(shutdown_on_signal(shutdown.clone()));
    match runtime.block_on(server::run(config, shutdown)) {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dynakv: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn shutdown_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM");
                    let _ = ctrl_c.await;
                    shutdown.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
    shutdown.cancel();
}
