//! The markdown table of one run: every scenario's metrics for every contender, with ratios.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::contender::Contender;
use crate::scenario::{Outcome, Scenario, Unit};

/// The outcomes of a run, by scenario and contender.
#[derive(Debug, Default)]
pub(crate) struct Results {
    /// Outcomes in the order they were run.
    rows: Vec<(Scenario, Vec<(Contender, Outcome)>)>,
}

impl Results {
    /// Records the outcome of one scenario for one contender.
    pub(crate) fn record(&mut self, scenario: Scenario, contender: Contender, outcome: Outcome) {
        match self.rows.iter_mut().find(|(s, _)| *s == scenario) {
            Some((_, outcomes)) => outcomes.push((contender, outcome)),
            None => self.rows.push((scenario, vec![(contender, outcome)])),
        }
    }

    /// Renders the table, then numbered footnotes for every n/a, failure and note.
    pub(crate) fn render(&self, contenders: &[Contender]) -> String {
        let mut footnotes = Footnotes::default();
        let peers: Vec<Contender> = contenders
            .iter()
            .copied()
            .filter(|c| *c != Contender::Phalanx)
            .collect();
        let show_ratios = contenders.contains(&Contender::Phalanx);
        let mut out = String::new();
        let mut header = String::from("| scenario | unit | better |");
        let mut rule = String::from("|---|---|---|");
        for c in contenders {
            let _ = write!(header, " {} |", c.key());
            rule.push_str("---:|");
        }
        if show_ratios {
            for p in &peers {
                let _ = write!(header, " phalanx/{} |", p.key());
                rule.push_str("---:|");
            }
        }
        let _ = writeln!(out, "{header}\n{rule}");
        for (scenario, outcomes) in &self.rows {
            let find = |c: Contender| outcomes.iter().find(|(k, _)| *k == c).map(|(_, o)| o);
            for metric in scenario.metrics() {
                let better = if metric.unit.higher_is_better() {
                    "higher"
                } else {
                    "lower"
                };
                let _ = write!(
                    out,
                    "| {} | {} | {better} |",
                    metric.label,
                    metric.unit.name()
                );
                for c in contenders {
                    let cell = match find(*c) {
                        None => "-".to_owned(),
                        Some(Outcome::Measured(m)) => {
                            let value = m.values.iter().find(|(k, _)| *k == metric.key);
                            let mut cell = value.map_or_else(
                                || "-".to_owned(),
                                |(_, v)| format_value(*v, metric.unit),
                            );
                            // Attach a scenario's note to its first row only.
                            if let (Some(note), true) =
                                (&m.note, std::ptr::eq(metric, &scenario.metrics()[0]))
                            {
                                let _ = write!(cell, " [{}]", footnotes.add(c.key(), note));
                            }
                            cell
                        }
                        Some(Outcome::NotApplicable(reason)) => {
                            format!("n/a [{}]", footnotes.add(c.key(), reason))
                        }
                        Some(Outcome::TimedOut(d)) => format!("aborted (> {} s)", d.as_secs()),
                        Some(Outcome::Failed(e)) => {
                            format!("failed [{}]", footnotes.add(c.key(), e))
                        }
                    };
                    let _ = write!(out, " {cell} |");
                }
                if show_ratios {
                    let value = |c: Contender| match find(c) {
                        Some(Outcome::Measured(m)) => m
                            .values
                            .iter()
                            .find(|(k, _)| *k == metric.key)
                            .map(|(_, v)| *v),
                        _ => None,
                    };
                    for p in &peers {
                        let ratio = match (value(Contender::Phalanx), value(*p)) {
                            (Some(ours), Some(theirs)) if theirs > 0.0 => {
                                format!("{:.2}x", ours / theirs)
                            }
                            _ => "-".to_owned(),
                        };
                        let _ = write!(out, " {ratio} |");
                    }
                }
                out.push('\n');
            }
        }
        out.push('\n');
        out.push_str(&footnotes.render());
        out
    }
}

/// Numbered footnotes, deduplicated by text.
#[derive(Debug, Default)]
struct Footnotes {
    /// Footnote number by "contender: text".
    numbers: BTreeMap<String, usize>,
}

impl Footnotes {
    /// The number of the footnote for `text` from `contender`, adding it if new.
    fn add(&mut self, contender: &str, text: &str) -> usize {
        let key = format!("{contender}: {text}");
        let next = self.numbers.len() + 1;
        *self.numbers.entry(key).or_insert(next)
    }

    /// The footnotes in number order.
    fn render(&self) -> String {
        let mut notes: Vec<(&usize, &String)> = self.numbers.iter().map(|(k, v)| (v, k)).collect();
        notes.sort();
        let mut out = String::new();
        for (n, text) in notes {
            let _ = writeln!(out, "[{n}] {text}  ");
        }
        out
    }
}

/// Formats a value for its unit.
fn format_value(value: f64, unit: Unit) -> String {
    match unit {
        Unit::PerSecond(_) => group_thousands(value.round() as u64),
        Unit::Millis | Unit::Micros => {
            if value >= 100.0 {
                group_thousands(value.round() as u64)
            } else {
                format!("{value:.1}")
            }
        }
        Unit::Bytes => group_thousands(value.round() as u64),
    }
}

/// `1234567` as `1,234,567`.
fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::group_thousands;

    #[test]
    fn thousands() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
    }
}
