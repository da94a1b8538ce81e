//! The cluster half of the demo: five `phalanx node` processes on loopback with a replicated
//! key-value chain and a client writing to it, a chain member killed and detected, the chain
//! reconfigured without losing a write, the node restarted and back, a node leaving
//! gracefully, and every acknowledged write read back.
//!
//! The nodes are child processes of the demo with a fresh cluster key and data dirs in a
//! temporary directory; all of it is removed at the end, also after a failure or Ctrl-C.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use phalanx::node::{MemberRow, cluster_id, members_of};
use phalanx::transports::Key;

use super::live::{self, Ticker, Writer};
use super::{Story, check};

type DemoResult<T> = Result<T, Box<dyn std::error::Error>>;

/// How many nodes the demo cluster has.
const NODES: usize = 5;
/// How many of them form the chain's configuration group (the first ones).
const GROUP: usize = 3;
/// The protocol period of the demo's nodes, short so the story is quick.
const PERIOD_MS: u64 = 200;
/// The longest any step may take before the demo reports it as failed.
const STEP: Duration = Duration::from_secs(20);

/// What the cluster half found, for the summary.
#[derive(Debug, Default)]
pub(crate) struct ClusterFacts {
    pub(crate) formed_in: Duration,
    pub(crate) detected_in: Duration,
    pub(crate) reconfigured_in: Duration,
    pub(crate) rejoined_in: Duration,
    pub(crate) writes_acked: usize,
    pub(crate) writes_failed: usize,
    pub(crate) writes_lost: usize,
}

/// The demo's node processes and their directory; everything is removed on drop.
struct Cluster {
    dir: PathBuf,
    key_file: PathBuf,
    key: Key,
    addrs: Vec<SocketAddr>,
    children: Vec<Option<Child>>,
    stop: Arc<AtomicBool>,
}

pub(crate) async fn tell(story: &Story, stop: Arc<AtomicBool>) -> DemoResult<ClusterFacts> {
    let mut cluster = Cluster::create(stop)?;
    let mut facts = ClusterFacts::default();
    let first = cluster.addrs[0];

    story.say(format!(
        "starting {NODES} node processes on loopback, joining through {first}"
    ));
    let started = Instant::now();
    for index in 0..NODES {
        cluster.start(index)?;
    }
    let all = cluster.addrs.clone();
    let table = cluster
        .until(first, "the cluster to form", |rows| {
            all.iter().all(|a| state(rows, *a) == Some("alive"))
        })
        .await?;
    facts.formed_in = started.elapsed();
    story.say(format!(
        "the cluster formed in {:.1?}; membership seen from {first}:",
        facts.formed_in
    ));
    print_table(&table);
    story.beat().await;

    let report = cluster
        .until_chain("the chain to have three members", |r| {
            let (_, members) = live::describe(r);
            members.len() == 3 && members.iter().all(Option::is_some)
        })
        .await?;
    story.say(format!(
        "the configuration group (the first {GROUP} nodes, raft) placed a chain: {}",
        live::chain_line(&report)
    ));
    story.say(format!("a client starts writing through {first}"));
    let writer = Arc::new(Writer::start(first, cluster.key.clone()));
    let ticker = Ticker::start(first, cluster.key.clone(), writer.clone());
    phalanx::sleep(Duration::from_secs(2)).await;

    // The victim: a chain member, not the node the client writes through, preferably not a
    // configuration-group node.
    let (epoch, members) = live::describe(&report);
    let mut candidates: Vec<usize> = members
        .iter()
        .flatten()
        .filter_map(|addr| cluster.addrs.iter().position(|a| a == addr))
        .filter(|&index| index != 0)
        .collect();
    candidates.sort_by_key(|&index| (index < GROUP, std::cmp::Reverse(index)));
    let index = *candidates.first().ok_or("no chain member to kill")?;
    let victim = cluster.addrs[index];
    story.say(format!(
        "killing chain member {victim} with SIGKILL (no goodbye) while the client writes"
    ));
    let killed = Instant::now();
    cluster.kill(index);
    let table = cluster
        .until(first, "the killed node to be declared dead", |rows| {
            state(rows, victim) == Some("dead")
        })
        .await?;
    facts.detected_in = killed.elapsed();
    story.say(format!(
        "detected: {victim} declared dead after {:.1?} ({PERIOD_MS} ms protocol period)",
        facts.detected_in
    ));
    print_table(&table);
    let report = cluster
        .until_chain("the chain to reconfigure without the killed node", |r| {
            let (now, members) = live::describe(r);
            now > epoch && !members.contains(&Some(victim)) && members.iter().all(Option::is_some)
        })
        .await?;
    facts.reconfigured_in = killed.elapsed();
    story.say(format!(
        "the chain reconfigured after {:.1?}: {}",
        facts.reconfigured_in,
        live::chain_line(&report)
    ));
    story.beat().await;

    story.say(format!(
        "restarting the node at {victim}: a new incarnation, a new member"
    ));
    let old = incarnation(&table, victim);
    let restarted = Instant::now();
    cluster.start(index)?;
    let table = cluster
        .until(first, "the restarted node to be alive again", |rows| {
            state(rows, victim) == Some("alive") && incarnation(rows, victim) != old
        })
        .await?;
    facts.rejoined_in = restarted.elapsed();
    story.say(format!(
        "back: {victim} is alive again after {:.1?}",
        facts.rejoined_in
    ));
    print_table(&table);
    let report = cluster
        .until_chain("the chain to have three caught-up members again", |r| {
            let (_, members) = live::describe(r);
            members.len() == 3 && members.iter().all(Option::is_some)
        })
        .await?;
    story.say(format!(
        "the chain is whole again (a new member catches up, then joins at the tail): {}",
        live::chain_line(&report)
    ));
    story.beat().await;

    let leaver = cluster.addrs[NODES - 2];
    story.say(format!(
        "stopping the node at {leaver} with SIGTERM: it leaves gracefully"
    ));
    cluster.terminate(NODES - 2)?;
    let table = cluster
        .until(first, "the stopped node to be seen leaving", |rows| {
            state(rows, leaver) == Some("left")
        })
        .await?;
    print_table(&table);
    let alive = cluster
        .addrs
        .iter()
        .filter(|addr| state(&table, **addr) == Some("alive"))
        .count();
    check(alive == NODES - 1, "members lost")?;
    story.beat().await;

    ticker.finish().await;
    let writer = Arc::try_unwrap(writer).map_err(|_| "the writer is still shared")?;
    let writes = writer.finish().await;
    facts.writes_acked = writes.acked.len();
    facts.writes_failed = writes.failed;
    story.say(format!(
        "the client stopped: {} writes acknowledged, {} failed or timed out; reading every \
         acknowledged write back",
        facts.writes_acked, facts.writes_failed
    ));
    facts.writes_lost = live::lost(first, &cluster.key, &writes).await;
    check(facts.writes_acked > 0, "no write was acknowledged")?;
    check(facts.writes_lost == 0, "acknowledged writes were lost")?;
    story.say(format!(
        "all {} acknowledged writes are there",
        facts.writes_acked
    ));
    Ok(facts)
}

impl Cluster {
    fn create(stop: Arc<AtomicBool>) -> DemoResult<Cluster> {
        let dir = std::env::temp_dir().join(format!("phalanx-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let key = Key::generate()?;
        let key_file = dir.join("cluster.key");
        let text: String = key.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&key_file, text)?;
        let addrs = (0..NODES)
            .map(|_| free_addr())
            .collect::<Result<Vec<_>, _>>()?;
        let children = (0..NODES).map(|_| None).collect();
        Ok(Cluster {
            dir,
            key_file,
            key,
            addrs,
            children,
            stop,
        })
    }

    fn start(&mut self, index: usize) -> DemoResult<()> {
        let exe = std::env::current_exe()?;
        let data = self.dir.join(format!("node-{index}"));
        let mut command = Command::new(exe);
        command
            .arg("node")
            .args(["--listen", &self.addrs[index].to_string()])
            .args(["--probe-interval", &PERIOD_MS.to_string()])
            .arg("--cluster-key-file")
            .arg(&self.key_file)
            .arg("--data-dir")
            .arg(&data);
        if index > 0 {
            command.args(["--seed", &self.addrs[0].to_string()]);
        }
        let group: Vec<String> = self.addrs[..GROUP].iter().map(|a| a.to_string()).collect();
        command.args(["--chain-group", &group.join(",")]);
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.children[index] = Some(child);
        Ok(())
    }

    fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.children[index].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn terminate(&mut self, index: usize) -> DemoResult<()> {
        if let Some(child) = &self.children[index] {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()?;
            check(status.success(), "cannot send SIGTERM")?;
        }
        Ok(())
    }

    /// Polls the membership table of `node` until `done` accepts it, at most [`STEP`].
    async fn until(
        &self,
        node: SocketAddr,
        what: &str,
        done: impl Fn(&[MemberRow]) -> bool,
    ) -> DemoResult<Vec<MemberRow>> {
        let deadline = Instant::now() + STEP;
        let cluster = cluster_id("phalanx");
        let mut last = Vec::new();
        while Instant::now() < deadline {
            if self.stop.load(Ordering::Relaxed) {
                return Err("interrupted".into());
            }
            if let Ok(rows) = members_of(
                node,
                cluster,
                Some(self.key.clone()),
                Duration::from_secs(1),
            )
            .await
            {
                if done(&rows) {
                    return Ok(rows);
                }
                last = rows;
            }
            phalanx::sleep(Duration::from_millis(100)).await;
        }
        print_table(&last);
        Err(format!("waited {STEP:?} for {what}").into())
    }
}

impl Cluster {
    /// Polls the chain as the first node sees it until `done` accepts it, at most [`STEP`].
    async fn until_chain(
        &self,
        what: &str,
        done: impl Fn(&phalanx::node::ChainReport) -> bool,
    ) -> DemoResult<phalanx::node::ChainReport> {
        let deadline = Instant::now() + STEP;
        while Instant::now() < deadline {
            if self.stop.load(Ordering::Relaxed) {
                return Err("interrupted".into());
            }
            if let Some(report) = live::chain(self.addrs[0], &self.key).await
                && done(&report)
            {
                return Ok(report);
            }
            phalanx::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("waited {STEP:?} for {what}").into())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for index in 0..self.children.len() {
            self.kill(index);
        }
        remove_dir(&self.dir);
    }
}

fn remove_dir(dir: &Path) {
    if let Err(error) = std::fs::remove_dir_all(dir) {
        eprintln!("phalanx demo: could not remove {}: {error}", dir.display());
    }
}

fn free_addr() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// The newest life of the node at `addr`: after a restart the table also lists the old one,
/// dead.
fn newest(rows: &[MemberRow], addr: SocketAddr) -> Option<&MemberRow> {
    rows.iter()
        .filter(|row| row.addr == addr)
        .max_by_key(|row| row.incarnation)
}

fn state(rows: &[MemberRow], addr: SocketAddr) -> Option<&str> {
    newest(rows, addr).map(|row| row.state.as_str())
}

fn incarnation(rows: &[MemberRow], addr: SocketAddr) -> Option<u64> {
    newest(rows, addr).map(|row| row.incarnation)
}

fn print_table(rows: &[MemberRow]) {
    println!(
        "            {:<16}  {:<8} {:>15}  {:<21}  ROLES",
        "NODE", "STATE", "INCARNATION", "ADDRESS"
    );
    for row in rows {
        println!("            {row}");
    }
}
