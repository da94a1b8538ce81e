//! Runs the listing of the "Remote actors" chapter.

#[path = "../examples/ch05_remote.rs"]
mod ch05_remote;

#[test]
fn ch05_remote() -> Result<(), Box<dyn std::error::Error>> {
    ch05_remote::main()
}
