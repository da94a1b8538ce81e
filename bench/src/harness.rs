//! Runs one scenario of one contender in a fresh child process, bounded in time and memory.
//!
//! The parent re-executes its own binary with the hidden subcommand [`CHILD_COMMAND`]; the child
//! runs the scenario and prints its figures as lines of a tiny protocol on stdout:
//! `METRIC <key> <value>`, `NOTE <text>`, `NA <reason>` or `FAIL <message>`. A fresh process per
//! measurement keeps one runtime's threads and allocations from disturbing the next.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::contender::Contender;
use crate::memory;
use crate::scenario::{Measurement, Outcome, Scenario};

/// The hidden subcommand that runs one measurement in a child process.
pub(crate) const CHILD_COMMAND: &str = "__child";

/// Limits on one child process.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bound {
    /// Wall-clock limit; the child is killed and the scenario reported as timed out after it.
    pub(crate) time: Duration,
    /// Resident memory limit in bytes; the child is killed past it.
    pub(crate) rss: u64,
}

/// Runs `scenario` for `contender` in a child process and collects the outcome.
pub(crate) fn run_in_child(
    contender: Contender,
    scenario: Scenario,
    count: usize,
    bound: Bound,
) -> Outcome {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return Outcome::Failed(format!("cannot find own executable: {e}")),
    };
    let spawned = Command::new(exe)
        .arg(CHILD_COMMAND)
        .arg(contender.key())
        .arg(scenario.key())
        .arg(count.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return Outcome::Failed(format!("cannot start child process: {e}")),
    };
    // Drain both pipes on their own threads so a chatty child never blocks on a full pipe.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let started = Instant::now();
    let aborted = watch(&mut child, started, bound);
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match aborted {
        Some(Abort::Time) => Outcome::TimedOut(bound.time),
        Some(Abort::Memory(rss)) => Outcome::Failed(format!(
            "aborted at {} MiB RSS (bound {} MiB)",
            rss >> 20,
            bound.rss >> 20
        )),
        Some(Abort::Wait(e)) => Outcome::Failed(format!("lost the child process: {e}")),
        None => parse(&stdout, &stderr),
    }
}

/// Why the parent stopped a child early.
#[derive(Debug)]
enum Abort {
    /// It ran past the time bound.
    Time,
    /// It grew past the memory bound (bytes resident).
    Memory(u64),
    /// Waiting for it failed.
    Wait(std::io::Error),
}

/// Polls the child until it exits or crosses a bound, in which case it is killed.
fn watch(child: &mut Child, started: Instant, bound: Bound) -> Option<Abort> {
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return None,
            Ok(None) => {}
            Err(e) => return Some(Abort::Wait(e)),
        }
        let abort = if started.elapsed() > bound.time {
            Some(Abort::Time)
        } else {
            memory::rss_of(child.id())
                .filter(|&rss| rss > bound.rss)
                .map(Abort::Memory)
        };
        if let Some(abort) = abort {
            // The child may have exited in between; either way it is gone afterwards.
            let _ = child.kill();
            let _ = child.wait();
            return Some(abort);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Reads a pipe to its end on a separate thread.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

/// Turns the child's protocol lines into an outcome.
fn parse(stdout: &str, stderr: &str) -> Outcome {
    let mut measurement = Measurement::default();
    for line in stdout.lines() {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "METRIC" => {
                let mut parts = rest.split_whitespace();
                let key = parts.next().and_then(intern_metric_key);
                let value = parts.next().and_then(|v| v.parse::<f64>().ok());
                if let (Some(key), Some(value)) = (key, value) {
                    measurement.values.push((key, value));
                }
            }
            "NOTE" => measurement.note = Some(rest.to_owned()),
            "NA" => return Outcome::NotApplicable(rest.to_owned()),
            "FAIL" => return Outcome::Failed(rest.to_owned()),
            _ => {}
        }
    }
    if measurement.values.is_empty() {
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output");
        return Outcome::Failed(format!("child crashed: {}", last.trim()));
    }
    Outcome::Measured(measurement)
}

/// Maps a metric key from the child back to the static name the table uses.
fn intern_metric_key(key: &str) -> Option<&'static str> {
    ["rate", "time", "rss", "p50", "p99"]
        .into_iter()
        .find(|k| *k == key)
}

/// The child side: runs one measurement and prints it in the protocol.
pub(crate) fn child_main(args: &[String]) -> i32 {
    let (Some(contender), Some(scenario), Some(count)) = (
        args.first().and_then(|a| Contender::from_key(a)),
        args.get(1).and_then(|a| Scenario::from_key(a)),
        args.get(2).and_then(|a| a.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: {CHILD_COMMAND} <contender> <scenario> <count>");
        return 2;
    };
    match contender.run(scenario, count) {
        Outcome::Measured(m) => {
            for (key, value) in &m.values {
                println!("METRIC {key} {value}");
            }
            if let Some(note) = &m.note {
                println!("NOTE {note}");
            }
        }
        Outcome::NotApplicable(reason) => println!("NA {reason}"),
        Outcome::Failed(message) => println!("FAIL {message}"),
        Outcome::TimedOut(d) => println!("FAIL timed out after {} s", d.as_secs()),
    }
    0
}
