//! Resident memory of a process, from procfs.

use std::fs;
use std::sync::OnceLock;

/// Resident set size of this process in bytes (from `/proc/self/statm`).
pub(crate) fn rss() -> u64 {
    statm_rss("/proc/self/statm").unwrap_or(0)
}

/// Resident set size of process `pid` in bytes, if it still exists.
pub(crate) fn rss_of(pid: u32) -> Option<u64> {
    statm_rss(&format!("/proc/{pid}/statm"))
}

/// Bytes the kernel reports as available for new allocations (`MemAvailable`).
pub(crate) fn available() -> Option<u64> {
    let info = fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Reads the resident page count (second field) of a statm file, in bytes.
fn statm_rss(path: &str) -> Option<u64> {
    let statm = fs::read_to_string(path).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

/// The page size, from the kernel page size of the first mapping in smaps; 4 KiB if unknown.
fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(|| {
        fs::read_to_string("/proc/self/smaps")
            .ok()
            .and_then(|smaps| {
                smaps
                    .lines()
                    .find(|l| l.starts_with("KernelPageSize:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kib| kib.parse::<u64>().ok())
            })
            .map_or(4096, |kib| kib * 1024)
    })
}
