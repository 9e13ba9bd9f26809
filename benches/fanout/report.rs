//! What a scenario measured ([`Outcome`]) and how the bench prints it: one line per scenario
//! as it ends, then one table with every server and player count of the run, then each other
//! server's ratios against nginx-rtmp at the same player count.

use crate::histogram::Histogram;
use crate::server::Kind;

/// One scenario's numbers.
pub struct Outcome {
    pub server: Kind,
    pub players: usize,
    pub joined: usize,
    pub failed: usize,
    pub window_s: f64,
    pub server_cpu_s: f64,
    pub server_rss_base_kib: u64,
    pub server_rss_peak_kib: u64,
    /// The server's threads' allowed CPUs as read at the window's start (see `pin::allowed`).
    pub server_cpus: String,
    pub tool_cpu_s: f64,
    /// Softirq CPU seconds on the machine during the window (loopback TCP work, mostly).
    pub softirq_s: f64,
    /// Busy CPU seconds of everything else on the machine during the window.
    pub others_cpu_s: f64,
    pub expected_per_player: u64,
    pub delivered: u64,
    pub gaps: u64,
    pub read_mbps: f64,
    pub offered_mbps: f64,
    pub latency: Histogram,
    pub publisher_max_lag_ms: f64,
    /// Seconds of the window the server's CPU quota held it back (with `--server-cpu-quota`).
    pub throttled_s: Option<f64>,
    pub errors: Vec<String>,
}

impl Outcome {
    pub fn cpu_us_per_player_s(&self) -> f64 {
        self.server_cpu_s * 1e6 / (self.joined.max(1) as f64 * self.window_s)
    }

    pub fn rss_kib_per_player(&self) -> f64 {
        self.server_rss_peak_kib
            .saturating_sub(self.server_rss_base_kib) as f64
            / self.joined.max(1) as f64
    }

    pub fn expected(&self) -> u64 {
        self.expected_per_player * self.joined as u64
    }

    pub fn delivered_pct(&self) -> f64 {
        let expected = self.expected();
        if expected == 0 {
            0.0
        } else {
            self.delivered as f64 * 100.0 / expected as f64
        }
    }

    pub fn server_cpu_pct(&self) -> f64 {
        self.server_cpu_s * 100.0 / self.window_s
    }

    pub fn tool_cpu_pct(&self) -> f64 {
        self.tool_cpu_s * 100.0 / self.window_s
    }

    pub fn p99_ms(&self) -> f64 {
        self.latency.quantile(0.99) as f64 / 1000.0
    }

    /// The line printed when the scenario ends.
    pub fn print_line(&self) {
        println!(
            "{} × {}: joined {} (failed {}), window {:.1} s, server CPU {:.2} s on CPUs {}, \
             RSS {} → {} KiB, expected {} msgs/player, delivered {:.2} %, gaps {}, \
             latency samples {}, publisher max lag {:.1} ms",
            self.server.name(),
            self.players,
            self.joined,
            self.failed,
            self.window_s,
            self.server_cpu_s,
            self.server_cpus,
            self.server_rss_base_kib,
            self.server_rss_peak_kib,
            self.expected_per_player,
            self.delivered_pct(),
            self.gaps,
            self.latency.count(),
            self.publisher_max_lag_ms,
        );
        if let Some(t) = self.throttled_s {
            println!(
                "  throttled by its CPU quota for {t:.2} s of the {:.1} s window",
                self.window_s
            );
        }
        for e in &self.errors {
            println!("  error: {e}");
        }
    }
}

/// Time after the window closes for messages sent inside it to arrive.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(2);

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

pub fn print_table(outcomes: &[Outcome]) {
    println!(
        "| server | players (joined) | server CPU % | CPU µs / player-s | RSS base MiB | RSS / player KiB \
         | delivered % | gaps | read Mbit/s (offered) | latency p50 / p99 / max ms | load tool CPU % | softirq % | other CPU % |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for o in outcomes {
        // None of the window's messages reached a player before they stopped: every player
        // is further behind than the window and its grace (the overloaded case).
        let latency = if o.latency.count() == 0 && o.expected() > 0 {
            format!(
                "none arrived: > {:.0} s behind",
                o.window_s + GRACE.as_secs_f64()
            )
        } else {
            format!(
                "{} / {} / {}",
                ms(o.latency.quantile(0.5)),
                ms(o.latency.quantile(0.99)),
                ms(o.latency.max())
            )
        };
        println!(
            "| {} | {} ({}) | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {} | {:.0} ({:.0}) | {} | {:.0} | {:.0} | {:.0} |",
            o.server.name(),
            o.players,
            o.joined,
            o.server_cpu_pct(),
            o.cpu_us_per_player_s(),
            o.server_rss_base_kib as f64 / 1024.0,
            o.rss_kib_per_player(),
            o.delivered_pct(),
            o.gaps,
            o.read_mbps,
            o.offered_mbps,
            latency,
            o.tool_cpu_pct(),
            o.softirq_s * 100.0 / o.window_s,
            o.others_cpu_s * 100.0 / o.window_s,
        );
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}×", a / b)
    } else {
        "—".into()
    }
}

/// For every scenario of a server other than nginx-rtmp that has an nginx-rtmp scenario with
/// the same player count: CPU per player-second, p99 latency and memory per player, each as a
/// multiple of nginx-rtmp's (below 1: better than nginx-rtmp).
pub fn print_ratios(outcomes: &[Outcome]) {
    let mut header = false;
    for o in outcomes.iter().filter(|o| o.server != Kind::Nginx) {
        let Some(base) = outcomes
            .iter()
            .find(|b| b.server == Kind::Nginx && b.players == o.players)
        else {
            continue;
        };
        if !header {
            println!();
            println!(
                "Ratios against nginx-rtmp at the same player count (< 1: less than nginx-rtmp):"
            );
            println!();
            println!("| server | players | CPU / player-s | p99 latency | RSS / player |");
            println!("|---|---|---|---|---|");
            header = true;
        }
        println!(
            "| {} | {} | {} | {} | {} |",
            o.server.name(),
            o.players,
            ratio(o.cpu_us_per_player_s(), base.cpu_us_per_player_s()),
            ratio(o.p99_ms(), base.p99_ms()),
            ratio(o.rss_kib_per_player(), base.rss_kib_per_player()),
        );
    }
}
