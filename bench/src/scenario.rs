//! The benchmark scenarios, their sizes and the metrics they produce.

use std::fmt;
use std::time::Duration;

/// One benchmark scenario; every contender runs each one in a fresh child process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scenario {
    /// Sequential request/reply between two actors.
    AskPingPong,
    /// One producer task telling one counting actor.
    TellOneToOne,
    /// Eight producer tasks telling one counting actor.
    TellEightToOne,
    /// Spawn 100k idle actors.
    Spawn100k,
    /// Spawn 1M idle actors.
    Spawn1M,
    /// Restart latency of a single supervised child.
    RestartOne,
    /// Restart latency of a one-for-all group of 1000 children.
    RestartGroup,
    /// 10k children started under one supervisor.
    Supervise10k,
    /// 100k children started under one supervisor.
    Supervise100k,
}

impl Scenario {
    /// Every scenario, in table order.
    pub(crate) const ALL: [Scenario; 9] = [
        Scenario::AskPingPong,
        Scenario::TellOneToOne,
        Scenario::TellEightToOne,
        Scenario::Spawn100k,
        Scenario::Spawn1M,
        Scenario::RestartOne,
        Scenario::RestartGroup,
        Scenario::Supervise10k,
        Scenario::Supervise100k,
    ];

    /// The name used on the command line and in the child protocol.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Scenario::AskPingPong => "ask-ping-pong",
            Scenario::TellOneToOne => "tell-1-1",
            Scenario::TellEightToOne => "tell-8-1",
            Scenario::Spawn100k => "spawn-100k",
            Scenario::Spawn1M => "spawn-1m",
            Scenario::RestartOne => "restart-one",
            Scenario::RestartGroup => "restart-group-1000",
            Scenario::Supervise10k => "supervise-10k",
            Scenario::Supervise100k => "supervise-100k",
        }
    }

    /// Parses [`Scenario::key`].
    pub(crate) fn from_key(key: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.key() == key)
    }

    /// The size of the scenario: messages, round trips, actors or restarts.
    pub(crate) fn count(self, quick: bool) -> usize {
        match (self, quick) {
            (Scenario::AskPingPong, false) => 1_000_000,
            (Scenario::AskPingPong, true) => 100_000,
            (Scenario::TellOneToOne | Scenario::TellEightToOne, false) => 2_000_000,
            (Scenario::TellOneToOne | Scenario::TellEightToOne, true) => 200_000,
            (Scenario::Spawn100k, _) => 100_000,
            (Scenario::Spawn1M, _) => 1_000_000,
            (Scenario::RestartOne, false) => 2_000,
            (Scenario::RestartOne, true) => 500,
            (Scenario::RestartGroup, false) => 50,
            (Scenario::RestartGroup, true) => 20,
            (Scenario::Supervise10k, _) => 10_000,
            (Scenario::Supervise100k, _) => 100_000,
        }
    }

    /// The rows this scenario contributes to the table.
    pub(crate) fn metrics(self) -> &'static [Metric] {
        match self {
            Scenario::AskPingPong => &[Metric {
                key: "rate",
                label: "ask ping-pong",
                unit: Unit::PerSecond("round trips/s"),
            }],
            Scenario::TellOneToOne => &[Metric {
                key: "rate",
                label: "tell 1->1",
                unit: Unit::PerSecond("msgs/s"),
            }],
            Scenario::TellEightToOne => &[Metric {
                key: "rate",
                label: "tell 8->1",
                unit: Unit::PerSecond("msgs/s"),
            }],
            Scenario::Spawn100k => &[
                Metric {
                    key: "time",
                    label: "spawn 100k idle: time",
                    unit: Unit::Millis,
                },
                Metric {
                    key: "rss",
                    label: "spawn 100k idle: RSS/actor",
                    unit: Unit::Bytes,
                },
            ],
            Scenario::Spawn1M => &[
                Metric {
                    key: "time",
                    label: "spawn 1M idle: time",
                    unit: Unit::Millis,
                },
                Metric {
                    key: "rss",
                    label: "spawn 1M idle: RSS/actor",
                    unit: Unit::Bytes,
                },
            ],
            Scenario::RestartOne => &[
                Metric {
                    key: "p50",
                    label: "restart 1 child: p50",
                    unit: Unit::Micros,
                },
                Metric {
                    key: "p99",
                    label: "restart 1 child: p99",
                    unit: Unit::Micros,
                },
            ],
            Scenario::RestartGroup => &[
                Metric {
                    key: "p50",
                    label: "restart one-for-all 1000: p50",
                    unit: Unit::Micros,
                },
                Metric {
                    key: "p99",
                    label: "restart one-for-all 1000: p99",
                    unit: Unit::Micros,
                },
            ],
            Scenario::Supervise10k => &[
                Metric {
                    key: "time",
                    label: "supervisor 10k children: time",
                    unit: Unit::Millis,
                },
                Metric {
                    key: "rss",
                    label: "supervisor 10k children: RSS/child",
                    unit: Unit::Bytes,
                },
            ],
            Scenario::Supervise100k => &[
                Metric {
                    key: "time",
                    label: "supervisor 100k children: time",
                    unit: Unit::Millis,
                },
                Metric {
                    key: "rss",
                    label: "supervisor 100k children: RSS/child",
                    unit: Unit::Bytes,
                },
            ],
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// One row of the table: a named value a scenario reports.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Metric {
    /// The name the child prints the value under.
    pub(crate) key: &'static str,
    /// The row label.
    pub(crate) label: &'static str,
    /// How the value is printed and which direction is better.
    pub(crate) unit: Unit,
}

/// The unit of a metric.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Unit {
    /// Events per second (higher is better); the string names the events.
    PerSecond(&'static str),
    /// Milliseconds (lower is better).
    Millis,
    /// Microseconds (lower is better).
    Micros,
    /// Bytes (lower is better).
    Bytes,
}

impl Unit {
    /// The unit as printed in the table.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Unit::PerSecond(name) => name,
            Unit::Millis => "ms",
            Unit::Micros => "µs",
            Unit::Bytes => "bytes",
        }
    }

    /// Whether a higher value is better.
    pub(crate) fn higher_is_better(self) -> bool {
        matches!(self, Unit::PerSecond(_))
    }
}

/// What a contender measured in one scenario, as named values (see [`Metric::key`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct Measurement {
    /// Values by metric key.
    pub(crate) values: Vec<(&'static str, f64)>,
    /// A note on how the contender ran the scenario (placement, mailbox), if any.
    pub(crate) note: Option<String>,
}

impl Measurement {
    /// A throughput measurement: `count` events in `elapsed`.
    pub(crate) fn rate(count: usize, elapsed: Duration) -> Measurement {
        Measurement {
            values: vec![("rate", count as f64 / elapsed.as_secs_f64().max(1e-9))],
            note: None,
        }
    }

    /// A spawn measurement: total time and resident bytes per actor.
    pub(crate) fn spawn(elapsed: Duration, rss_delta: u64, count: usize) -> Measurement {
        Measurement {
            values: vec![
                ("time", elapsed.as_secs_f64() * 1e3),
                ("rss", rss_delta as f64 / count as f64),
            ],
            note: None,
        }
    }

    /// Adds a note.
    pub(crate) fn with_note(mut self, note: impl Into<String>) -> Measurement {
        self.note = Some(note.into());
        self
    }
}

/// Why a contender has no figure for a scenario.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// The scenario ran.
    Measured(Measurement),
    /// The contender cannot run this scenario; the reason.
    NotApplicable(String),
    /// The scenario did not finish within the bound.
    TimedOut(Duration),
    /// The scenario failed; what happened.
    Failed(String),
}

/// Merges the outcomes of repeated runs: the first one that is not a measurement if any,
/// else every metric's median (the upper one for an even count) and the first note.
pub(crate) fn median(outcomes: Vec<Outcome>) -> Outcome {
    let mut measurements = Vec::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Measured(m) => measurements.push(m),
            other => return other,
        }
    }
    let Some(first) = measurements.first() else {
        return Outcome::Failed("no run".to_owned());
    };
    let mut merged = Measurement {
        values: Vec::new(),
        note: first.note.clone(),
    };
    for (key, _) in &first.values {
        let mut values: Vec<f64> = measurements
            .iter()
            .filter_map(|m| m.values.iter().find(|(k, _)| k == key).map(|(_, v)| *v))
            .collect();
        values.sort_by(f64::total_cmp);
        if let Some(v) = values.get(values.len() / 2) {
            merged.values.push((key, *v));
        }
    }
    Outcome::Measured(merged)
}
