//! Which siblings a supervisor restarts together with a failed child.

/// Which children a supervisor restarts when one of them has to be restarted.
///
/// The strategy only matters when the child that exited is going to be restarted (see
/// [`RestartPolicy`](crate::RestartPolicy)); a child that is not restarted never affects its
/// siblings, exactly as in OTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// Restart only the child that exited (OTP `one_for_one`).
    #[default]
    OneForOne,
    /// Stop every other child (in reverse start order), then restart all of them in start
    /// order (OTP `one_for_all`). Use it when the children cannot work without each other.
    OneForAll,
    /// Stop the children started after the one that exited (in reverse start order), then
    /// restart the exited child and those siblings in start order (OTP `rest_for_one`). Use it
    /// when later children depend on earlier ones.
    RestForOne,
}
