//! Mailboxes: tell, try_tell, ask, ordering, capacity and the typed errors.

#[path = "support/common.rs"]
mod common;

use std::time::Duration;

use common::{Cmd, LONG, Recorder, runtime};
use phalanx_runtime::{AskError, ExitReason, SendError, Spawn, TrySendError, spawn_actor};

#[test]
fn tell_then_ask_sees_messages_in_order() {
    let rt = runtime();
    rt.block_on(async {
        let actor = spawn_actor(Recorder::default());
        for value in 0..1000 {
            actor.tell(Cmd::Push(value)).await.expect("alive");
        }
        let seen = actor.ask(Cmd::Get, LONG).await.expect("answer");
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    });
}

#[test]
fn fifo_per_sender_with_many_senders() {
    let rt = runtime();
    rt.block_on(async {
        let actor = Spawn::new(Recorder::default())
            .capacity(8)
            .start()
            .expect("spawn");
        let senders: Vec<_> = (0..4u64)
            .map(|sender| {
                let actor = actor.clone();
                phalanx_runtime::spawn(async move {
                    for n in 0..500u64 {
                        actor
                            .tell(Cmd::Push(sender * 1_000_000 + n))
                            .await
                            .expect("alive");
                    }
                })
            })
            .collect();
        for sender in senders {
            sender.await;
        }
        let seen = actor.ask(Cmd::Get, LONG).await.expect("answer");
        assert_eq!(seen.len(), 2000);
        for sender in 0..4u64 {
            let mine: Vec<u64> = seen
                .iter()
                .copied()
                .filter(|v| v / 1_000_000 == sender)
                .collect();
            let expected: Vec<u64> = (0..500).map(|n| sender * 1_000_000 + n).collect();
            assert_eq!(mine, expected, "sender {sender} out of order");
        }
    });
}

#[test]
fn try_tell_hands_back_the_message_when_full_or_closed() {
    let rt = runtime();
    rt.block_on(async {
        let actor = Spawn::new(Recorder::default())
            .capacity(1)
            .start()
            .expect("spawn");
        // Keep the actor busy so the mailbox fills up.
        actor
            .try_tell(Cmd::Slow(Duration::from_millis(300), 1))
            .expect("room");
        let mut full = None;
        for value in 0..10 {
            if let Err(error) = actor.try_tell(Cmd::Push(value)) {
                full = Some(error);
                break;
            }
        }
        match full {
            Some(TrySendError::Full(Cmd::Push(_))) => {}
            other => panic!("expected Full with the message back, got {other:?}"),
        }
        actor.kill();
        actor.wait().await;
        match actor.try_tell(Cmd::Push(7)) {
            Err(TrySendError::Closed(Cmd::Push(7))) => {}
            other => panic!("expected Closed(Push(7)), got {other:?}"),
        }
        match actor.tell(Cmd::Push(8)).await {
            Err(SendError::Closed(Cmd::Push(8))) => {}
            other => panic!("expected Closed(Push(8)), got {other:?}"),
        }
    });
}

#[test]
fn tell_waits_for_capacity() {
    let rt = runtime();
    rt.block_on(async {
        let actor = Spawn::new(Recorder::default())
            .capacity(2)
            .start()
            .expect("spawn");
        for value in 0..100 {
            actor.tell(Cmd::Push(value)).await.expect("alive");
        }
        let seen = actor.ask(Cmd::Get, LONG).await.expect("answer");
        assert_eq!(seen.len(), 100);
    });
}

#[test]
fn ask_errors_are_distinct() {
    let rt = runtime();
    rt.block_on(async {
        let actor = spawn_actor(Recorder::default());
        // Timeout: the actor is busy longer than the ask waits.
        actor
            .tell(Cmd::Slow(Duration::from_millis(500), 1))
            .await
            .expect("alive");
        let timed_out = actor.ask(Cmd::Get, Duration::from_millis(20)).await;
        assert!(matches!(timed_out, Err(AskError::Timeout)), "{timed_out:?}");
        // NoReply: the actor drops the reply.
        let dropped = actor.ask(Cmd::Drop, LONG).await;
        assert!(matches!(dropped, Err(AskError::NoReply)), "{dropped:?}");
        // NoReply: the actor dies with the request in its mailbox.
        actor.tell(Cmd::Panic("boom")).await.expect("alive");
        let died = actor.ask(Cmd::Get, LONG).await;
        assert!(
            matches!(died, Err(AskError::NoReply | AskError::Closed(_))),
            "{died:?}"
        );
        actor.wait().await;
        // Closed: the request comes back.
        match actor.ask(Cmd::Get, LONG).await {
            Err(AskError::Closed(Cmd::Get(_))) => {}
            other => panic!("expected Closed with the request, got {other:?}"),
        }
    });
}

#[test]
fn many_concurrent_asks_all_answered() {
    let rt = runtime();
    rt.block_on(async {
        let actor = spawn_actor(Recorder::default());
        let asks: Vec<_> = (0..200)
            .map(|_| {
                let actor = actor.clone();
                phalanx_runtime::spawn(async move { actor.ask(Cmd::Get, LONG).await.is_ok() })
            })
            .collect();
        for ask in asks {
            assert!(ask.await);
        }
        assert!(actor.addr().is_alive());
        actor.stop();
        assert_eq!(actor.wait().await, ExitReason::Normal);
    });
}

/// Errors that carry a message with a `Reply` inside still convert into the boxed error that
/// handlers return, so `?` works on them.
#[test]
fn errors_carrying_replies_are_send_and_sync() {
    fn boxable<E: std::error::Error + Send + Sync + 'static>() {}
    boxable::<AskError<phalanx_runtime::Reply<u64>>>();
    boxable::<SendError<Cmd>>();
    boxable::<TrySendError<Cmd>>();
}
