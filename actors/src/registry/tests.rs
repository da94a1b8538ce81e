//! Unit tests of the registry internals.
