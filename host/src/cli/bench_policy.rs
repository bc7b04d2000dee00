//! The policy benchmark (`wasp bench policy`, also `wasp plugin bench`): what a policy costs
//! per message, measured on the host's real [`PolicyRuntime`] (pooling allocator, fuel, epoch
//! deadline, the chain's conversions and rewrite checks).
//!
//! In one run, for a realistic message (5 reply buttons, rewritten as a list) and a
//! pass-through one (plain text, allowed): the same rule as native Rust (`button_limit::decide`
//! called directly), one plugin as a chain, a chain of four (the same plugin four times), one
//! plugin call on a reused instance, and one on a fresh instance (instantiate, `init`, call).
//! Prints calls per second and p50/p99 per call; `--json` adds one JSON line at the end.
//!
//! May call the offline host, the policy runtime and the `button-limit` crate.

use std::{
    hint::black_box,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::{
    offline::OfflineHost,
    table::{Table, thousands},
};
use crate::{
    config::PolicyConfig,
    message::{Category, Channel, MessageId, PhoneNumber, Priority},
    policy::{Chain, Decision, Envelope, Hook, LoadedPlugin, PolicyRuntime, bindings::PolicyBindingsPre, wit},
};

/// Where `scripts/build-plugins` puts the button-limit component.
pub const DEFAULT_PLUGIN: &str = "target/wasm32-wasip2/plugin/button_limit.wasm";
/// Where `scripts/build-plugins` puts the misbehaving test plugin.
pub const DEFAULT_HOSTILE: &str = "target/wasm32-wasip2/plugin/hostile.wasm";
/// Contained faults measured per misbehaviour (a runaway loop costs its whole fuel budget).
const FAULTS_MEASURED: usize = 20;
/// Calls measured per row, after a tenth as many to warm up.
pub const DEFAULT_CALLS: usize = 20_000;
/// Fresh instances measured (each is an instantiation, an `init` and a call).
pub const DEFAULT_INSTANTIATIONS: usize = 2_000;
/// Plugins in the long chain.
const CHAIN_LENGTH: usize = 4;
/// The time the messages are judged at: 2024-03-01T23:30:00Z.
const NOW_MS: i64 = 1_709_335_800_000;

/// Measure a policy: calls per second and p50/p99 per call, wasm beside native Rust.
#[derive(Debug, Clone, Args)]
pub struct PolicyBenchArgs {
    /// The button-limit component to measure.
    #[arg(long, default_value = DEFAULT_PLUGIN)]
    pub plugin: PathBuf,
    /// Calls measured per row.
    #[arg(long, default_value_t = DEFAULT_CALLS)]
    pub calls: usize,
    /// Fresh instances measured.
    #[arg(long, default_value_t = DEFAULT_INSTANTIATIONS)]
    pub instantiations: usize,
    /// The misbehaving test plugin, to measure what a contained fault costs (skipped when absent).
    #[arg(long, default_value = DEFAULT_HOSTILE)]
    pub hostile: PathBuf,
    /// Also print the results as one JSON line at the end.
    #[arg(long)]
    pub json: bool,
}

/// One measured row.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// What was measured (`native`, `chain_1`, `chain_4`, `call_reused`, `call_fresh`).
    pub case: &'static str,
    /// Which message (`buttons` or `text`).
    pub message: &'static str,
    pub calls: usize,
    pub calls_per_second: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Every row of one run, and what it ran on.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub plugin: String,
    pub sha256: String,
    pub size_bytes: usize,
    /// Whether this `wasp` was built with optimisations (the figures mean little otherwise).
    pub release: bool,
    pub results: Vec<Measurement>,
}

/// Words for each case, in the table.
const CASES: &[(&str, &str)] = &[
    ("native", "native Rust (button_limit::decide)"),
    ("chain_1", "wasm: chain of 1 (Chain::run)"),
    ("chain_4", "wasm: chain of 4, same plugin"),
    ("call_reused", "wasm: one call, reused instance"),
    ("call_fresh", "wasm: fresh instance + init + call"),
    ("fault_trap", "contained fault: a trap (instance replaced)"),
    ("fault_loop", "contained fault: a runaway loop (fuel budget)"),
];

pub async fn run_policy_bench(args: PolicyBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.calls > 0 && args.instantiations > 0,
        "--calls and --instantiations must be above 0"
    );
    let bytes = std::fs::read(&args.plugin).with_context(|| {
        format!(
            "reading {}; build the plugins first with `scripts/build-plugins`",
            args.plugin.display()
        )
    })?;
    let config = PolicyConfig::default();
    let host = OfflineHost::start(&config).await?;
    let name = super::plugin_name(&args.plugin);
    let first = host.install(&name, bytes.clone(), json!({})).await?;
    let chain_one = host.runtime.chain();
    for copy in 2..=CHAIN_LENGTH {
        host.install(&format!("{name}-{copy}"), bytes.clone(), json!({}))
            .await?;
    }
    let chain_four = host.runtime.chain();
    anyhow::ensure!(
        chain_four.plugins().count() == CHAIN_LENGTH,
        "the chain has {} plugins, not {CHAIN_LENGTH}",
        chain_four.plugins().count()
    );
    eprintln!(
        "measuring {} ({} calls per row, {} fresh instances){}",
        args.plugin.display(),
        thousands(args.calls as u64),
        thousands(args.instantiations as u64),
        if cfg!(debug_assertions) {
            "; this is a debug build of wasp: build with --release for figures that mean something"
        } else {
            ""
        }
    );
    let hostile = if args.hostile.exists() {
        let hostile_bytes =
            std::fs::read(&args.hostile).with_context(|| format!("reading {}", args.hostile.display()))?;
        let trap = host
            .install("hostile-trap", hostile_bytes.clone(), json!({"mode": "trap"}))
            .await?
            .plugin;
        let runaway = host
            .install("hostile-loop", hostile_bytes, json!({"mode": "loop"}))
            .await?
            .plugin;
        Some((trap, runaway))
    } else {
        eprintln!("{} not found: contained faults not measured", args.hostile.display());
        None
    };
    let runtime = host.runtime.clone();
    let plugin = first.plugin.clone();
    let component_bytes = bytes.clone();
    let plan = Plan {
        calls: args.calls,
        instantiations: args.instantiations,
        name: name.clone(),
    };
    let results = tokio::task::spawn_blocking(move || {
        let mut results = measure_all(&runtime, &plugin, &component_bytes, &chain_one, &chain_four, &plan)?;
        if let Some((trap, runaway)) = &hostile {
            results.extend(measure_faults(trap, runaway)?);
        }
        Ok::<_, anyhow::Error>(results)
    })
    .await
    .context("the benchmark stopped")??;
    let report = BenchReport {
        plugin: args.plugin.display().to_string(),
        sha256: hex::encode(Sha256::digest(&bytes)),
        size_bytes: bytes.len(),
        release: !cfg!(debug_assertions),
        results,
    };
    print!("{}", render(&report, &config));
    if args.json {
        println!("{}", serde_json::to_string(&report).context("writing the JSON line")?);
    }
    drop(host);
    Ok(())
}

struct Plan {
    calls: usize,
    instantiations: usize,
    name: String,
}

/// The two messages: 5 reply buttons (rewritten as a list) and plain text (allowed).
fn envelopes() -> anyhow::Result<[(&'static str, Envelope); 2]> {
    let buttons = serde_json::from_value(json!({
        "type": "interactive",
        "interactive": {
            "type": "button",
            "header": {"type": "text", "text": "Delivery"},
            "body": {"text": "When should we deliver your parcel?"},
            "footer": {"text": "Reply any time"},
            "action": {"buttons": [
                {"type": "reply", "reply": {"id": "slot-1", "title": "Morning"}},
                {"type": "reply", "reply": {"id": "slot-2", "title": "Noon"}},
                {"type": "reply", "reply": {"id": "slot-3", "title": "Afternoon"}},
                {"type": "reply", "reply": {"id": "slot-4", "title": "Evening"}},
                {"type": "reply", "reply": {"id": "slot-5", "title": "Night"}}
            ]}
        }
    }))
    .context("building the buttons message")?;
    let text = serde_json::from_value(json!({"type": "text", "text": {"body": "Your order has shipped."}}))
        .context("building the text message")?;
    let to = PhoneNumber::parse("+6591234567").map_err(|error| anyhow::anyhow!("{error:?}"))?;
    let envelope = |content| Envelope {
        id: MessageId::new(),
        to: to.clone(),
        sender: "106540352242922".to_owned(),
        category: Category::Utility,
        priority: Priority::High,
        channel: Channel::Whatsapp,
        content,
        tags: vec!["delivery".to_owned()],
    };
    Ok([("buttons", envelope(buttons)), ("text", envelope(text))])
}

/// The same two messages as the SDK's types, for the native rule.
fn native_messages() -> [(&'static str, wasp_sdk::Message); 2] {
    use wasp_sdk::{ButtonsMessage, Content, Message, ReplyButton};
    let mut buttons = ButtonsMessage::new(
        "When should we deliver your parcel?",
        ["Morning", "Noon", "Afternoon", "Evening", "Night"]
            .iter()
            .enumerate()
            .map(|(index, title)| ReplyButton::new(format!("slot-{}", index + 1), *title))
            .collect(),
    );
    buttons.header = Some("Delivery".to_owned());
    buttons.footer = Some("Reply any time".to_owned());
    let message = |content| {
        let mut message = Message::new("m-1", "+6591234567", "106540352242922", content);
        message.tags = vec!["delivery".to_owned()];
        message
    };
    [
        ("buttons", message(Content::InteractiveButtons(buttons))),
        ("text", message(Content::text("Your order has shipped."))),
    ]
}

/// The facts a dispatcher would give: Singapore, nothing sent yet, a healthy region.
fn context() -> wit::Context {
    let to = PhoneNumber::parse("+6591234567").ok();
    crate::facts::context(
        &crate::facts::Known {
            to: to.as_ref(),
            sender: "106540352242922",
            ..crate::facts::Known::default()
        },
        NOW_MS,
    )
}

/// The native rule as the plugin applies it: decide, then build the verdict.
fn native_verdict(config: &button_limit::Config, message: &wasp_sdk::Message) -> wasp_sdk::Verdict {
    match button_limit::decide(config, &message.content) {
        button_limit::Decision::Allow => wasp_sdk::Verdict::Allow,
        button_limit::Decision::Rewrite(list) => {
            wasp_sdk::Verdict::Rewrite(message.clone().with_content(wasp_sdk::Content::InteractiveList(list)))
        }
        button_limit::Decision::Reject(limit) => wasp_sdk::Verdict::Reject(limit.to_string()),
    }
}

/// Checks each path decides what it should before timing it, so the figures are of real work.
fn check_decisions(
    chain_one: &Chain,
    chain_four: &Chain,
    envelopes: &[(&'static str, Envelope); 2],
    context: &wit::Context,
    natives: &[(&'static str, wasp_sdk::Message); 2],
) -> anyhow::Result<()> {
    let config = button_limit::Config::default();
    for ((label, envelope), (_, native)) in envelopes.iter().zip(natives) {
        let rewrites = *label == "buttons";
        for (chain, length) in [(chain_one, 1), (chain_four, CHAIN_LENGTH)] {
            let outcome = chain.run(Hook::Submit, envelope, context);
            anyhow::ensure!(
                outcome.decision == Decision::Allow && outcome.rewritten_by.len() == usize::from(rewrites),
                "chain of {length} on the {label} message: {:?}, rewritten by {:?}",
                outcome.decision,
                outcome.rewritten_by
            );
        }
        let verdict = native_verdict(&config, native);
        anyhow::ensure!(
            matches!(verdict, wasp_sdk::Verdict::Rewrite(_)) == rewrites,
            "native rule on the {label} message: {verdict:?}"
        );
    }
    Ok(())
}

/// What containing a misbehaving plugin costs the host, per faulting call: a trap (the
/// instance is thrown away and the next call builds a fresh one) and a runaway loop (stopped
/// when its fuel budget runs out). Quarantine bounds how often either can happen in a row.
fn measure_faults(trap: &LoadedPlugin, runaway: &LoadedPlugin) -> anyhow::Result<Vec<Measurement>> {
    let [(label, envelope), _] = envelopes()?;
    let message = envelope.to_wit();
    let context = context();
    let mut results = Vec::new();
    for (case, plugin) in [("fault_trap", trap), ("fault_loop", runaway)] {
        results.push(measure(case, label, FAULTS_MEASURED, || {
            let outcome = plugin.call("on-submit", |bindings, store| {
                bindings.call_on_submit(store, &message, &context)
            });
            anyhow::ensure!(outcome.is_err(), "{case}: the hostile plugin did not fault");
            Ok(())
        })?);
    }
    Ok(results)
}

fn measure_all(
    runtime: &PolicyRuntime,
    plugin: &Arc<LoadedPlugin>,
    bytes: &[u8],
    chain_one: &Chain,
    chain_four: &Chain,
    plan: &Plan,
) -> anyhow::Result<Vec<Measurement>> {
    let envelopes = envelopes()?;
    let natives = native_messages();
    let context = context();
    check_decisions(chain_one, chain_four, &envelopes, &context, &natives)?;
    let config = button_limit::Config::default();
    let component = Component::new(runtime.engine(), bytes)
        .map_err(super::wasm_error)
        .context("compiling the component")?;
    let pre = PolicyBindingsPre::new(
        runtime
            .linker()
            .instantiate_pre(&component)
            .map_err(super::wasm_error)
            .context("the component does not fit the host's imports")?,
    )
    .map_err(|reason| anyhow::anyhow!("the component does not implement the world: {reason}"))?;

    let mut results = Vec::new();
    for ((label, envelope), (_, native)) in envelopes.iter().zip(&natives) {
        let wit_message = envelope.to_wit();
        results.push(measure("native", label, plan.calls, || {
            black_box(native_verdict(&config, black_box(native)));
            Ok(())
        })?);
        results.push(measure("chain_1", label, plan.calls, || {
            black_box(chain_one.run(Hook::Submit, black_box(envelope), &context));
            Ok(())
        })?);
        results.push(measure("chain_4", label, plan.calls, || {
            black_box(chain_four.run(Hook::Submit, black_box(envelope), &context));
            Ok(())
        })?);
        results.push(measure("call_reused", label, plan.calls, || {
            let verdict = plugin
                .call("on-submit", |bindings, store| {
                    bindings.call_on_submit(store, &wit_message, &context)
                })
                .map_err(|fault| anyhow::anyhow!("the plugin faulted: {fault}"))?;
            black_box(verdict);
            Ok(())
        })?);
        results.push(measure("call_fresh", label, plan.instantiations, || {
            let mut store = runtime.detached_store(&plan.name)?;
            let bindings = pre
                .instantiate(&mut store)
                .map_err(super::wasm_error)
                .context("instantiating")?;
            runtime.arm(&mut store)?;
            bindings
                .call_init(&mut store, "{}")
                .map_err(super::wasm_error)
                .context("calling init")?
                .map_err(|reason| anyhow::anyhow!("init refused the config: {reason}"))?;
            runtime.arm(&mut store)?;
            black_box(
                bindings
                    .call_on_submit(&mut store, &wit_message, &context)
                    .map_err(super::wasm_error)
                    .context("calling on-submit")?,
            );
            Ok(())
        })?);
    }
    Ok(results)
}

/// Runs `call` a tenth of `calls` times to warm up, then `calls` times timed one by one.
fn measure(
    case: &'static str,
    message: &'static str,
    calls: usize,
    mut call: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Measurement> {
    for _ in 0..(calls / 10).max(1) {
        call()?;
    }
    let mut samples: Vec<Duration> = Vec::with_capacity(calls);
    let started = Instant::now();
    for _ in 0..calls {
        let call_started = Instant::now();
        call()?;
        samples.push(call_started.elapsed());
    }
    let elapsed = started.elapsed();
    samples.sort_unstable();
    let percentile = |fraction: f64| -> f64 {
        // Index math on small counts: the float round trip is exact enough.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((samples.len() - 1) as f64 * fraction).round() as usize;
        samples[index.min(samples.len() - 1)].as_secs_f64() * 1e6
    };
    #[allow(clippy::cast_precision_loss)]
    let calls_per_second = calls as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    Ok(Measurement {
        case,
        message,
        calls,
        calls_per_second: round_to(calls_per_second, 1.0),
        p50_us: round_to(percentile(0.50), 1_000.0),
        p99_us: round_to(percentile(0.99), 1_000.0),
    })
}

/// `value` rounded to `1 / per_unit` (to the nanosecond for microseconds, `per_unit` 1000).
fn round_to(value: f64, per_unit: f64) -> f64 {
    (value * per_unit).round() / per_unit
}

fn micros(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}µs")
    } else if value < 1_000.0 {
        format!("{value:.1}µs")
    } else {
        format!("{:.2}ms", value / 1_000.0)
    }
}

/// The table, with what it ran on above it.
pub fn render(report: &BenchReport, config: &PolicyConfig) -> String {
    let mut out = format!(
        "policy benchmark: {plugin} ({size} bytes, sha256 {sha256})\n\
         wasp build: {build}; sandbox per call: fuel {fuel}, memory {memory} bytes, deadline {deadline} ms\n\
         messages: buttons = 5 reply buttons, rewritten as a list; text = plain text, allowed\n\n",
        plugin = report.plugin,
        size = thousands(report.size_bytes as u64),
        sha256 = &report.sha256[..report.sha256.len().min(12)],
        build = if report.release {
            "release"
        } else {
            "debug (not representative)"
        },
        fuel = thousands(config.fuel_per_call),
        memory = thousands(config.memory_limit_bytes as u64),
        deadline = config.call_deadline_ms,
    );
    let mut table = Table::new(&["CASE", "MESSAGE", "CALLS", "CALLS/S", "P50", "P99"]);
    for result in &report.results {
        let case = CASES
            .iter()
            .find(|(key, _)| *key == result.case)
            .map_or(result.case, |(_, words)| words);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let per_second = result.calls_per_second.round() as u64;
        table.row(vec![
            case.to_owned(),
            result.message.to_owned(),
            thousands(result.calls as u64),
            thousands(per_second),
            micros(result.p50_us),
            micros(result.p99_us),
        ]);
    }
    out.push_str(&table.render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measuring_counts_every_call_and_orders_the_percentiles() {
        let mut count = 0;
        let measurement = measure("native", "text", 100, || {
            count += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(count, 110, "10 warm-up calls, then 100 timed");
        assert_eq!(measurement.calls, 100);
        assert!(measurement.p50_us <= measurement.p99_us);
        assert!(measurement.calls_per_second > 0.0);
    }

    #[test]
    fn a_failing_call_stops_the_measurement() {
        let error = measure("call_fresh", "text", 10, || anyhow::bail!("trap")).unwrap_err();
        assert_eq!(error.to_string(), "trap");
    }

    #[test]
    fn the_native_rule_rewrites_buttons_and_allows_text() {
        let config = button_limit::Config::default();
        let [(_, buttons), (_, text)] = native_messages();
        assert!(matches!(
            native_verdict(&config, &buttons),
            wasp_sdk::Verdict::Rewrite(_)
        ));
        assert_eq!(native_verdict(&config, &text), wasp_sdk::Verdict::Allow);
    }

    #[test]
    fn the_table_names_each_case_in_words() {
        let report = BenchReport {
            plugin: "button_limit.wasm".into(),
            sha256: "0123456789abcdef".into(),
            size_bytes: 1234,
            release: true,
            results: vec![Measurement {
                case: "chain_4",
                message: "buttons",
                calls: 20_000,
                calls_per_second: 123_456.4,
                p50_us: 7.5,
                p99_us: 12.34,
            }],
        };
        let text = render(&report, &PolicyConfig::default());
        assert!(
            text.contains("wasm: chain of 4, same plugin  buttons  20,000  123,456  7.50µs  12.3µs"),
            "{text}"
        );
        assert!(text.contains("0123456789ab"), "{text}");
    }
}
