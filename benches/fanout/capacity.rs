//! `--capacity`: SRS's published metric — how many players one core of server holds at one
//! 3 Mbit/s stream — measured the same way for every server.
//!
//! A player count N *holds* when a scenario with N players (fresh server, a short window,
//! `--capacity-seconds`) had every player joined, every message of the window delivered to
//! every player with no sequence gap, p99 latency under `--capacity-p99` (500 ms), no player or
//! publisher error and the server still alive. The search doubles N from [`START`] until a
//! count fails or the cap (`--capacity-max`) holds, then bisects between the largest count
//! that held and the smallest that failed until they are within [`RESOLUTION`] of each other.
//!
//! The figure is the server's only when the load tool had room to spare: when the smallest
//! failing count had the load tool near all of its CPU ([`TOOL_LIMIT`] of its core when pinned,
//! of its worker threads' cores otherwise), the failure may be the players' and the report
//! says "load tool bound", giving the largest count that held as a lower bound only. A load
//! tool starved by other work is not busy, so that test misses it: the failing count's CPU
//! use by every other process is printed with the verdict ("machine busy" above
//! [`BUSY_LIMIT`] of a core), since on a shared machine it fails counts the server would hold.

use std::time::Duration;

use crate::report::Outcome;
use crate::server::Kind;
use crate::{Options, run_scenario};

/// The first count tried.
const START: usize = 100;
/// Relative width the bisection stops at.
const RESOLUTION: f64 = 0.05;
/// Load-tool CPU, as a share of the cores it may use, from which it counts as saturated.
const TOOL_LIMIT: f64 = 0.9;

/// CPU of other processes, as a share of one core, from which the machine counts as busy.
const BUSY_LIMIT: f64 = 0.2;

/// One tried count.
struct Probe {
    n: usize,
    /// `None`: it held; else why not.
    failure: Option<String>,
    server_cpu_pct: f64,
    tool_cpu_pct: f64,
    /// Every other process's CPU during the window, % of one core.
    others_cpu_pct: f64,
    p99_ms: f64,
}

/// A server's result.
struct Capacity {
    server: Kind,
    /// Largest count that held (0: none did).
    held: usize,
    /// True when `held` is a lower bound only: the cap held, or the load tool was the limit.
    lower_bound: bool,
    verdict: String,
    probes: usize,
}

/// Why `o` does not hold, or `None` when it does.
fn failure(o: &Outcome, p99_limit_ms: u32) -> Option<String> {
    if o.joined < o.players {
        return Some(format!("{} of {} players joined", o.joined, o.players));
    }
    if o.expected() == 0 {
        return Some("the publisher sent nothing in the window".into());
    }
    if o.delivered != o.expected() {
        return Some(format!("delivered {:.2} %", o.delivered_pct()));
    }
    if o.gaps > 0 {
        return Some(format!("{} sequence gaps", o.gaps));
    }
    if o.p99_ms() >= p99_limit_ms as f64 {
        return Some(format!("p99 {:.1} ms", o.p99_ms()));
    }
    o.errors.first().map(|e| format!("error: {e}"))
}

/// The cores the load tool may use, for "near 100 % of its core(s)".
fn tool_cores(opts: &Options) -> f64 {
    if opts.pin {
        1.0
    } else {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        opts.threads.min(cpus) as f64
    }
}

fn probe(
    rt: &tokio::runtime::Runtime,
    kind: Kind,
    n: usize,
    opts: &Options,
) -> Result<Probe, String> {
    let window = Duration::from_secs(opts.capacity_seconds);
    let o = run_scenario(rt, kind, n, window, opts)?;
    let p = Probe {
        n,
        failure: failure(&o, opts.capacity_p99_ms),
        server_cpu_pct: o.server_cpu_pct(),
        tool_cpu_pct: o.tool_cpu_pct(),
        others_cpu_pct: o.others_cpu_s * 100.0 / o.window_s,
        p99_ms: o.p99_ms(),
    };
    println!(
        "capacity {} N={n}: {} (joined {}, delivered {:.2} %, gaps {}, p99 {:.1} ms, server CPU \
         {:.0} % on CPUs {}, load tool CPU {:.0} %, other processes {:.0} %)",
        kind.name(),
        p.failure.as_deref().unwrap_or("holds"),
        o.joined,
        o.delivered_pct(),
        o.gaps,
        p.p99_ms,
        p.server_cpu_pct,
        o.server_cpus,
        p.tool_cpu_pct,
        p.others_cpu_pct,
    );
    Ok(p)
}

fn search(rt: &tokio::runtime::Runtime, kind: Kind, opts: &Options) -> Result<Capacity, String> {
    let cap = opts.capacity_max;
    let mut probes = 0;
    let mut held = 0;
    let mut failed: Option<Probe> = None;
    let mut n = START.min(cap);
    // Doubling.
    loop {
        let p = probe(rt, kind, n, opts)?;
        probes += 1;
        if p.failure.is_some() {
            failed = Some(p);
            break;
        }
        held = n;
        if n >= cap {
            break;
        }
        n = (n * 2).min(cap);
    }
    // Bisection between `held` (or 0) and the failing count.
    while let Some(f) = &failed {
        let step = ((held as f64 * RESOLUTION) as usize).max(1);
        if f.n - held <= step {
            break;
        }
        let mid = held + (f.n - held) / 2;
        let p = probe(rt, kind, mid, opts)?;
        probes += 1;
        if p.failure.is_some() {
            failed = Some(p);
        } else {
            held = mid;
        }
    }
    let limit = tool_cores(opts) * 100.0 * TOOL_LIMIT;
    let lower_bound = failed.as_ref().is_none_or(|f| f.tool_cpu_pct >= limit);
    let busy = match &failed {
        Some(f) if f.others_cpu_pct >= BUSY_LIMIT * 100.0 => format!(
            "; machine busy: other processes used {:.0} % CPU in that window",
            f.others_cpu_pct
        ),
        _ => String::new(),
    };
    let verdict = match &failed {
        None => format!("≥ {held}: the cap (--capacity-max {cap}) held"),
        Some(f) if f.tool_cpu_pct >= limit => format!(
            "≥ {held}, load tool bound: at {} the load tool used {:.0} % CPU (its limit {:.0} %) \
             and the server {:.0} %, so the players, not the server, may have failed ({})",
            f.n,
            f.tool_cpu_pct,
            tool_cores(opts) * 100.0,
            f.server_cpu_pct,
            f.failure.as_deref().unwrap_or("")
        ),
        Some(f) => format!(
            "{held}: at {} {} (server CPU {:.0} %, load tool {:.0} %)",
            f.n,
            f.failure.as_deref().unwrap_or(""),
            f.server_cpu_pct,
            f.tool_cpu_pct
        ),
    } + &busy;
    Ok(Capacity {
        server: kind,
        held,
        lower_bound,
        verdict,
        probes,
    })
}

/// Runs the search for every server of `opts`; false when one could not be measured.
pub fn run(rt: &tokio::runtime::Runtime, opts: &Options) -> bool {
    println!(
        "capacity: largest N with 100 % delivered, 0 gaps and p99 < {} ms over a {} s window; \
         N from {} doubling, then bisected to {:.0} %; cap {}",
        opts.capacity_p99_ms,
        opts.capacity_seconds,
        START.min(opts.capacity_max),
        RESOLUTION * 100.0,
        opts.capacity_max
    );
    let mut results = Vec::new();
    let mut ok = true;
    for &kind in &opts.servers {
        match search(rt, kind, opts) {
            Ok(c) => results.push(c),
            Err(e) => {
                println!("capacity {}: FAILED: {e}", kind.name());
                ok = false;
            }
        }
    }
    let nginx = results
        .iter()
        .find(|c| c.server == Kind::Nginx)
        .map(|c| c.held);
    println!();
    println!(
        "| server | players held ({:.1} Mbit/s, server on {}) | × nginx-rtmp | probes | result |",
        opts.kbps as f64 / 1000.0,
        if opts.pin {
            "one pinned core"
        } else {
            "unpinned"
        }
    );
    println!("|---|---|---|---|---|");
    for c in &results {
        let times = match nginx {
            Some(base) if base > 0 && c.server != Kind::Nginx => {
                format!("{:.2}×", c.held as f64 / base as f64)
            }
            _ => "—".into(),
        };
        let held = if c.lower_bound {
            format!("≥ {}", c.held)
        } else {
            c.held.to_string()
        };
        println!(
            "| {} | {held} | {times} | {} | {} |",
            c.server.name(),
            c.probes,
            c.verdict
        );
    }
    ok
}
