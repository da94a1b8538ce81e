//! Supervision scenarios on phalanx-supervisors.

use phalanx::HandlerError;

use crate::scenario::{Measurement, Scenario};

/// Runs one supervision scenario.
pub(super) async fn run(_scenario: Scenario, _count: usize) -> Result<Measurement, HandlerError> {
    Err("not implemented yet".into())
}
