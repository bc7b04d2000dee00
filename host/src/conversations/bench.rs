//! `wasp bench conversations`: the routing engine alone, in-process, without store or HTTP.
//!
//! Runs the seeded [`simulation`](super::simulation) twice in one run, release on read on and
//! then off, and prints per mode the assignments, assignments per second of the engine's own
//! time, the queue wait p50/p99 (simulated ms), the share of agent-time held by sessions only
//! waiting for a read receipt, and how many times larger that share is without release on
//! read. `--json` adds one JSON line at the end.
//!
//! May call the simulation and the CLI's table printer.

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;

use super::simulation::{SimulationConfig, SimulationReport, simulate};
use crate::cli::table::{Table, thousands};

/// Measure the conversation routing engine: assignments per second and agent-time held for
/// read receipts, release on read on and off.
#[derive(Debug, Clone, Args)]
pub struct ConversationBenchArgs {
    /// Customers writing in waves.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub customers: u32,
    /// Agents answering them.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..))]
    pub agents: u32,
    /// Sessions one agent may hold at once.
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sessions: u32,
    /// The simulation's seed; the same seed gives the same run.
    #[arg(long, default_value_t = SimulationConfig::default().seed)]
    pub seed: u64,
    /// Also print the figures as one JSON line at the end.
    #[arg(long)]
    pub json: bool,
}

/// The figures of one run.
#[derive(Debug, Serialize)]
pub struct ConversationBenchReport {
    pub agents: u32,
    pub customers: u32,
    /// The held-for-read share without release on read over the share with it; `None` when
    /// release on read left none.
    pub held_for_read_ratio: Option<f64>,
    pub max_sessions: u32,
    pub modes: Vec<ModeFigures>,
    pub seed: u64,
}

/// The figures of one mode.
#[derive(Debug, Serialize)]
pub struct ModeFigures {
    pub assignments: u64,
    pub assignments_per_s: f64,
    pub engine_ms: f64,
    pub held_for_read_share: f64,
    pub heartbeat_requeues: u64,
    pub queue_wait_p50_ms: i64,
    pub queue_wait_p99_ms: i64,
    pub release_on_read: bool,
    pub released_on_read: u64,
}

impl ModeFigures {
    fn new(release_on_read: bool, report: &SimulationReport) -> Self {
        Self {
            assignments: report.assignments,
            assignments_per_s: report.assignments_per_second(),
            engine_ms: report.engine_time.as_secs_f64() * 1_000.0,
            held_for_read_share: report.held_for_read_share(),
            heartbeat_requeues: report.heartbeat_requeues,
            queue_wait_p50_ms: report.queue_wait_ms(0.5),
            queue_wait_p99_ms: report.queue_wait_ms(0.99),
            release_on_read,
            released_on_read: report.released_on_read,
        }
    }
}

/// Runs both modes and prints the table (and, with `--json`, one JSON line).
pub fn run(args: &ConversationBenchArgs) -> anyhow::Result<ConversationBenchReport> {
    let base = SimulationConfig {
        customers: args.customers as usize,
        agents: args.agents as usize,
        max_sessions: args.max_sessions,
        seed: args.seed,
        ..SimulationConfig::default()
    };
    let mut modes = Vec::new();
    for release_on_read in [true, false] {
        let config = SimulationConfig {
            release_on_read,
            ..base.clone()
        };
        let report = simulate(&config).with_context(|| {
            format!(
                "simulating with release on read {}",
                if release_on_read { "on" } else { "off" }
            )
        })?;
        modes.push(ModeFigures::new(release_on_read, &report));
    }
    let held_for_read_ratio = match modes.as_slice() {
        [on, off] if on.held_for_read_share > 0.0 => Some(off.held_for_read_share / on.held_for_read_share),
        _ => None,
    };
    let report = ConversationBenchReport {
        agents: args.agents,
        customers: args.customers,
        held_for_read_ratio,
        max_sessions: args.max_sessions,
        modes,
        seed: args.seed,
    };
    print!("{}", render(&report, &base));
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).context("writing the conversation bench's JSON line")?
        );
    }
    Ok(report)
}

fn render(report: &ConversationBenchReport, config: &SimulationConfig) -> String {
    let killed = config.kill_agent_at_ms.map_or_else(String::new, |at_ms| {
        format!(", agent-00's client killed at minute {}", at_ms / 60_000)
    });
    let mut out = format!(
        "conversation routing engine alone, in-process (no store, no HTTP); build: {build}\n\
         {customers} customers in {waves} waves, {agents} agents × {max_sessions} sessions, \
         {minutes} simulated minutes, seed {seed}{killed}\n\n",
        build = if cfg!(debug_assertions) {
            "debug (not representative)"
        } else {
            "release"
        },
        customers = thousands(u64::from(report.customers)),
        waves = config.waves,
        agents = report.agents,
        max_sessions = report.max_sessions,
        minutes = config.run_ms / 60_000,
        seed = report.seed,
    );
    let mut table = Table::new(&[
        "RELEASE ON READ",
        "ASSIGNMENTS",
        "ASSIGNMENTS/S",
        "QUEUE WAIT P50",
        "P99",
        "HELD FOR READ",
        "RELEASED ON READ",
        "REQUEUED",
    ]);
    for mode in &report.modes {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let per_second = mode.assignments_per_s.round() as u64;
        table.row(vec![
            if mode.release_on_read { "on" } else { "off" }.to_owned(),
            thousands(mode.assignments),
            thousands(per_second),
            format!("{:.1} s", mode.queue_wait_p50_ms as f64 / 1_000.0),
            format!("{:.1} s", mode.queue_wait_p99_ms as f64 / 1_000.0),
            format!("{:.1}%", mode.held_for_read_share * 100.0),
            thousands(mode.released_on_read),
            thousands(mode.heartbeat_requeues),
        ]);
    }
    out.push_str(&table.render());
    out.push_str(&match report.held_for_read_ratio {
        Some(ratio) => format!("\nagent-time held for read, off ÷ on: {ratio:.1}×\n"),
        None => "\nagent-time held for read, off ÷ on: none held with release on read\n".to_owned(),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_modes_are_measured_and_compared() {
        let args = ConversationBenchArgs {
            customers: 120,
            agents: 3,
            max_sessions: 10,
            seed: 3,
            json: false,
        };
        let report = run(&args).expect("bench");
        let [on, off] = report.modes.as_slice() else {
            panic!("two modes: {:?}", report.modes);
        };
        assert!(on.release_on_read && !off.release_on_read);
        assert!(on.released_on_read > 0);
        assert_eq!(off.released_on_read, 0);
        assert!(on.assignments >= 120 && on.assignments_per_s > 0.0);
        assert!(on.queue_wait_p50_ms <= on.queue_wait_p99_ms);
        let ratio = report.held_for_read_ratio.expect("a ratio");
        assert!(
            (ratio - off.held_for_read_share / on.held_for_read_share).abs() < 1e-9 && ratio > 1.0,
            "{report:?}"
        );
        let rendered = render(&report, &SimulationConfig::default());
        assert!(rendered.contains("off ÷ on"), "{rendered}");
    }

    fn bench_line(arguments: &[&str]) -> Result<crate::bench::BenchOptions, clap::Error> {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            options: crate::bench::BenchOptions,
        }
        let mut line = vec!["bench"];
        line.extend_from_slice(arguments);
        <Command as clap::Parser>::try_parse_from(line).map(|command| command.options)
    }

    #[test]
    fn wasp_bench_conversations_takes_its_own_options_only() {
        let options = bench_line(&["conversations", "--agents", "8", "--seed", "3", "--json"]).expect("parses");
        let Some(crate::bench::BenchCommand::Conversations(args)) = options.command else {
            panic!("no conversations subcommand: {options:?}");
        };
        assert_eq!(
            (args.customers, args.agents, args.max_sessions, args.seed),
            (1_000, 8, 80, 3)
        );
        assert!(args.json);
        assert!(bench_line(&[]).expect("the host bench").command.is_none());
        assert!(bench_line(&["--messages", "5", "conversations"]).is_err());
        assert!(bench_line(&["conversations", "--agents", "0"]).is_err());
    }
}
