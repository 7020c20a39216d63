//! What a bench run prints: a progress line per interval and the final
//! report (text or JSON).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::driver::{ByOp, Driven, OpStats, Plan};
use super::{BenchArgs, plan_distribution};

/// One cassandra-stress style line: time, operations so far, the
/// interval's rate, latencies and errors.
pub(super) fn progress_line(
    at: Duration,
    length: Duration,
    interval: &ByOp,
    issued: &AtomicU64,
) -> String {
    let mut all = OpStats::new();
    for s in interval.values() {
        all.add(s);
    }
    let errors: u64 = all.errors.values().sum();
    let ms = |q: f64| all.latency.value_at_quantile(q) as f64 / 1000.0;
    format!(
        "{:>7.1}s {:>10} ops {:>9.0} ops/s  p50 {:>7.2}  p99 {:>7.2}  p99.9 {:>7.2}  max {:>8.2} ms  errors {}",
        at.as_secs_f64(),
        issued.load(Ordering::Relaxed),
        (all.latency.len() + errors) as f64 / length.as_secs_f64().max(0.001),
        ms(0.5),
        ms(0.99),
        ms(0.999),
        all.latency.max() as f64 / 1000.0,
        errors
    )
}

/// One operation's summary.
pub(super) fn summary(name: &str, s: &OpStats, elapsed: f64) -> Value {
    let errors: u64 = s.errors.values().sum();
    let h = &s.latency;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    json!({
        "op": name,
        "count": h.len(),
        "ops_per_s": h.len() as f64 / elapsed,
        "p50_ms": ms(0.50),
        "p95_ms": ms(0.95),
        "p99_ms": ms(0.99),
        "p999_ms": ms(0.999),
        "max_ms": h.max() as f64 / 1000.0,
        "errors": errors,
        "error_kinds": s.errors,
    })
}

pub(super) fn routing(args: &BenchArgs) -> &'static str {
    if args.direct {
        "direct (to a replica)"
    } else if args.nodes.node.len() == 1 {
        "fixed coordinator"
    } else {
        "round-robin"
    }
}

pub(super) fn report(args: &BenchArgs, plan: &Plan, loaded: u64, driven: Driven, totals: &ByOp) {
    let elapsed = driven.elapsed.as_secs_f64().max(0.001);
    let rows: Vec<Value> = totals
        .iter()
        .map(|(op, s)| summary(op, s, elapsed))
        .collect();
    let total: f64 = rows.iter().filter_map(|r| r["ops_per_s"].as_f64()).sum();
    let distribution = plan_distribution(args);
    let loop_kind = match plan.rate {
        Some(r) => format!(
            "open loop at {r} ops/s, latency from each request's scheduled start; {} scheduled requests not sent before the end",
            driven.missed
        ),
        None => "closed loop (latency excludes queueing; --rate measures it)".to_string(),
    };
    if args.json {
        let out = json!({
            "nodes": args.nodes.node, "routing": routing(args),
            "protocol": format!("{:?}", args.protocol).to_lowercase(),
            "workload": format!("{:?}", args.workload).to_lowercase(),
            "distribution": format!("{distribution:?}").to_lowercase(),
            "records": args.records, "loaded": loaded, "clients": args.clients,
            "value_size": args.value_size, "seed": args.seed,
            "rate": args.rate, "loop": if plan.rate.is_some() { "open" } else { "closed" },
            "missed": driven.missed,
            "seconds": elapsed, "total_ops_per_s": total, "ops": rows,
        });
        println!("{out}");
        return;
    }
    println!(
        "{:?} protocol, workload {:?} ({:?} keys), {} records of {} B, {} clients, {} node(s), {} routing, seed {}, {:.1} s",
        args.protocol,
        args.workload,
        distribution,
        args.records,
        args.value_size,
        args.clients,
        args.nodes.node.len(),
        routing(args),
        args.seed,
        elapsed
    );
    println!("{loop_kind}");
    println!(
        "{:<7} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "op", "count", "ops/s", "p50 ms", "p95 ms", "p99 ms", "p99.9", "max ms", "errors"
    );
    for r in &rows {
        let f = |k: &str| r[k].as_f64().map_or("-".to_string(), |v| format!("{v:.2}"));
        println!(
            "{:<7} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
            r["op"].as_str().unwrap_or(""),
            r["count"].as_u64().unwrap_or(0),
            r["ops_per_s"]
                .as_f64()
                .map_or("-".to_string(), |v| format!("{v:.0}")),
            f("p50_ms"),
            f("p95_ms"),
            f("p99_ms"),
            f("p999_ms"),
            f("max_ms"),
            r["errors"].as_u64().unwrap_or(0)
        );
        if let Some(kinds) = r["error_kinds"].as_object()
            && !kinds.is_empty()
        {
            println!("        errors: {}", Value::Object(kinds.clone()));
        }
    }
    println!("total {total:.0} ops/s");
}
