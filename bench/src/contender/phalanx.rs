//! phalanx on its own executor.

use crate::scenario::{Outcome, Scenario};

/// Runs one scenario on a fresh phalanx runtime.
pub(crate) fn run(_scenario: Scenario, _count: usize) -> Outcome {
    Outcome::NotApplicable("the phalanx runtime has not landed yet".to_owned())
}
