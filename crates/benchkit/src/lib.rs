#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// Printing the figures is this crate's whole job.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::SystemTime;

use criterion::Criterion;

/// Where criterion writes its estimates: `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`,
/// else the workspace's `target/criterion`.
pub fn output_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(h);
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("criterion");
    }
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/criterion"
    ))
}

static STARTED: OnceLock<SystemTime> = OnceLock::new();

/// A criterion configured from the command line, writing where [`report`] reads.
pub fn criterion() -> Criterion {
    STARTED.get_or_init(SystemTime::now);
    Criterion::default()
        .output_directory(&output_dir())
        .configure_from_args()
}

/// The mean time of a bench (`"group/name"`) in nanoseconds, from this run's estimates
/// (estimates written before [`criterion()`] was called are ignored: they are another run's).
pub fn mean_ns(id: &str) -> Option<f64> {
    let path = output_dir().join(id).join("new").join("estimates.json");
    let written = std::fs::metadata(&path).ok()?.modified().ok()?;
    if written < *STARTED.get_or_init(SystemTime::now) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn human(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// Print each `(subject, baseline)` pair as a ratio. Returns the ratios it could compute.
pub fn report(pairs: &[(&str, &str)]) -> Vec<f64> {
    let mut out = Vec::new();
    println!();
    println!("ratios to same-run baselines:");
    for (subject, baseline) in pairs {
        match (mean_ns(subject), mean_ns(baseline)) {
            (Some(s), Some(b)) if b > 0.0 => {
                let ratio = s / b;
                println!(
                    "  {subject:<32} {:>10}  = {ratio:6.2} × {baseline} ({})  [{:.0}/s]",
                    human(s),
                    human(b),
                    1e9 / s
                );
                out.push(ratio);
            }
            _ => {
                println!("  {subject:<32} no estimates (test mode, or the bench was filtered out)")
            }
        }
    }
    out
}
