//! Many children under one supervisor: start, restart one, restart all. Debug-mode sized (10k);
//! the benchmarks measure 100k in release.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use phalanx_runtime::{Actor, ActorId, Context, HandlerError, block_on, sleep, timeout};
use phalanx_supervisors::{ChildSpec, Intensity, Strategy, Supervisor, SupervisorRef};

/// The child count; `SUP_SCALE_CHILDREN` overrides it for manual scaling checks.
fn children() -> usize {
    std::env::var("SUP_SCALE_CHILDREN")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

struct Quiet;

impl Actor for Quiet {
    type Message = bool;

    async fn handle(&mut self, _: &mut Context<Self>, fail: bool) -> Result<(), HandlerError> {
        if fail {
            return Err("asked to fail".into());
        }
        Ok(())
    }
}

fn supervisor(strategy: Strategy) -> Supervisor {
    let template = ChildSpec::new("quiet", || Quiet).capacity(4);
    Supervisor::new(strategy)
        .intensity(Intensity::new(10, Duration::from_secs(60)))
        .children((0..children()).map(|i| template.with_id(format!("q{i}")).worker(i)))
}

async fn ids(sup: &SupervisorRef) -> Vec<Option<ActorId>> {
    let children = sup.children().await.unwrap();
    children
        .iter()
        .map(|c| c.addr.as_ref().map(|a| a.id()))
        .collect()
}

/// Polls until `check` holds for the children's ids (bounded).
async fn until(sup: &SupervisorRef, check: impl Fn(&[Option<ActorId>]) -> bool) {
    for _ in 0..2000 {
        if check(&ids(sup).await) {
            return;
        }
        sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}

#[test]
fn ten_thousand_children_one_for_one() {
    block_on(async {
        timeout(Duration::from_secs(600), async {
            let clock = Instant::now();
            let count = children();
            let sup = supervisor(Strategy::OneForOne).start().unwrap();
            let before = ids(&sup).await;
            assert_eq!(before.len(), count);
            eprintln!("one-for-one: {count} started in {:?}", clock.elapsed());

            let clock = Instant::now();
            let victim = sup
                .child::<bool>(&format!("q{}", count / 2))
                .await
                .unwrap()
                .unwrap();
            victim.tell(true).await.unwrap();
            until(&sup, |now| {
                now[count / 2].is_some() && now[count / 2] != before[count / 2]
            })
            .await;
            eprintln!("one-for-one: 1 restarted in {:?}", clock.elapsed());
            let after = ids(&sup).await;
            let changed = before.iter().zip(&after).filter(|(b, a)| b != a).count();
            assert_eq!(changed, 1);

            let clock = Instant::now();
            sup.shutdown().await.unwrap();
            eprintln!("one-for-one: {count} stopped in {:?}", clock.elapsed());
        })
        .await
        .unwrap();
    });
}

#[test]
fn ten_thousand_children_one_for_all() {
    block_on(async {
        timeout(Duration::from_secs(600), async {
            let count = children();
            let sup = supervisor(Strategy::OneForAll).start().unwrap();
            let before = ids(&sup).await;
            assert_eq!(before.len(), count);
            let clock = Instant::now();
            let victim = sup.child::<bool>("q0").await.unwrap().unwrap();
            victim.tell(true).await.unwrap();
            let old: HashSet<ActorId> = before.iter().flatten().copied().collect();
            until(&sup, |now| {
                now.iter().all(|id| id.is_some_and(|id| !old.contains(&id)))
            })
            .await;
            eprintln!("one-for-all: {count} restarted in {:?}", clock.elapsed());
            sup.shutdown().await.unwrap();
        })
        .await
        .unwrap();
    });
}
