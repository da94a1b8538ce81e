//! Benchmarks of phalanx against its peers (bastion, ractor, kameo) in one run.
//!
//! `cargo run --release -p phalanx-bench -- [--quick] [--timeout SECS] [filters]` runs every
//! scenario for every runtime, each measurement in a fresh child process of this binary, and
//! prints one markdown table with the ratios phalanx/peer. A filter is a runtime name
//! (`phalanx`, `bastion`, `ractor`, `kameo`) or part of a scenario name (`ask`, `tell`,
//! `spawn-1m`, `restart`, ...). See bench/README.md for the exact shape of every scenario.

mod contender;
mod harness;
mod machine;
mod memory;
mod scenario;
mod table;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::contender::Contender;
use crate::harness::Bound;
use crate::machine::Machine;
use crate::scenario::{Outcome, Scenario};
use crate::table::Results;

/// Usage text for `--help` and argument errors.
const USAGE: &str = "usage: phalanx-bench [--quick] [--runs N] [--timeout SECS] [FILTER...]
  --quick         smaller message counts (spawn and supervision sizes stay as named)
  --runs N        run each measurement in N child processes and report the median (default 1)
  --timeout SECS  bound on each measurement (default 60); a longer one is aborted
  FILTER          a runtime (phalanx, bastion, ractor, kameo) or part of a scenario name:
                  ask-ping-pong tell-1-1 tell-8-1 spawn-100k spawn-1m restart-one
                  restart-group-1000 supervise-10k supervise-100k";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(harness::CHILD_COMMAND) {
        return ExitCode::from(harness::child_main(&args[1..]) as u8);
    }
    match Options::parse(&args) {
        Ok(options) => {
            bench(&options);
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// What to run.
#[derive(Debug)]
struct Options {
    /// Smaller message counts.
    quick: bool,
    /// Bound on each measurement.
    timeout: Duration,
    /// Child processes per measurement; the median of their figures is reported.
    runs: usize,
    /// Runtimes to run, in column order.
    contenders: Vec<Contender>,
    /// Scenarios to run, in table order.
    scenarios: Vec<Scenario>,
}

impl Options {
    /// Parses the command line (without the program name).
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut quick = false;
        let mut timeout = Duration::from_secs(60);
        let mut runs = 1;
        let mut contenders = Vec::new();
        let mut patterns = Vec::new();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--timeout" => {
                    let secs = args
                        .next()
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or("--timeout needs a number of seconds")?;
                    timeout = Duration::from_secs(secs);
                }
                "--runs" => {
                    runs = args
                        .next()
                        .and_then(|s| s.parse::<usize>().ok())
                        .filter(|&n| n > 0)
                        .ok_or("--runs needs a positive number")?;
                }
                "-h" | "--help" => return Err("phalanx-bench".to_owned()),
                flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
                word => match Contender::from_key(word) {
                    Some(c) => contenders.push(c),
                    None => patterns.push(word.to_owned()),
                },
            }
        }
        let contenders = if contenders.is_empty() {
            Contender::ALL.to_vec()
        } else {
            Contender::ALL
                .into_iter()
                .filter(|c| contenders.contains(c))
                .collect()
        };
        let scenarios: Vec<Scenario> = Scenario::ALL
            .into_iter()
            .filter(|s| {
                patterns.is_empty() || patterns.iter().any(|p| s.key().contains(p.as_str()))
            })
            .collect();
        if scenarios.is_empty() {
            return Err(format!("no scenario matches {patterns:?}"));
        }
        Ok(Options {
            quick,
            timeout,
            runs,
            contenders,
            scenarios,
        })
    }
}

/// Runs every selected scenario for every selected contender and prints the report.
fn bench(options: &Options) {
    let machine = Machine::detect();
    // Leave room for everyone else on the machine: a child may use 60% of what is available.
    let rss_bound = memory::available().map_or(8 << 30, |a| a / 10 * 6);
    let bound = Bound {
        time: options.timeout,
        rss: rss_bound,
    };
    let started = Instant::now();
    let mut results = Results::default();
    for &scenario in &options.scenarios {
        let count = scenario.count(options.quick);
        for &contender in &options.contenders {
            eprint!("{scenario} ({count}) on {} ... ", contender.key());
            let t = Instant::now();
            let outcomes = (0..options.runs)
                .map(|_| harness::run_in_child(contender, scenario, count, bound))
                .collect();
            let outcome = scenario::median(outcomes);
            eprintln!(
                "{} in {:.1} s",
                summary(&outcome),
                t.elapsed().as_secs_f64()
            );
            results.record(scenario, contender, outcome);
        }
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("## phalanx-bench results\n");
    println!(
        "- machine: {} ({} logical CPUs, {} usable), {:.1} GiB RAM, Linux {}",
        machine.cpu, machine.cores, machine.parallelism, machine.memory_gib, machine.kernel
    );
    println!("- toolchain: {}", machine.rustc);
    println!("- date: {}", machine.date);
    println!(
        "- load average (1/5/15 min): {} at start, {} at end",
        machine.load,
        machine::load_average()
    );
    println!(
        "- command: cargo run --release -p phalanx-bench --{}{}",
        if args.is_empty() { "" } else { " " },
        args.join(" ")
    );
    println!(
        "- mode: {}; each measurement in a fresh child process, bounded to {} s and {} MiB RSS; \
         throughput is the median of 3 runs after a warm-up; every figure is the median of \
         {} child process(es)",
        if options.quick { "quick" } else { "full" },
        bound.time.as_secs(),
        bound.rss >> 20,
        options.runs
    );
    println!(
        "- ratios are phalanx/peer: above 1 is better for phalanx where higher is better, \
         below 1 where lower is better"
    );
    println!("- total time: {:.0} s\n", started.elapsed().as_secs_f64());
    print!("{}", results.render(&options.contenders));
}

/// A one-word summary of an outcome for the progress log.
fn summary(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Measured(_) => "ok",
        Outcome::NotApplicable(_) => "n/a",
        Outcome::TimedOut(_) => "TIMED OUT",
        Outcome::Failed(_) => "FAILED",
    }
}
