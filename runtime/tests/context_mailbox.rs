//! `Context::mailbox_len` sees what waits behind the message being handled.

use std::time::Duration;

use phalanx_runtime::{Actor, Context, HandlerError, Reply, spawn_actor};

enum Msg {
    /// Says it arrived, waits for the gate, then answers how many messages wait in the
    /// mailbox.
    Hold(flume::Sender<()>, flume::Receiver<()>, Reply<usize>),
    Filler,
}

struct Holder;

impl Actor for Holder {
    type Message = Msg;

    async fn handle(&mut self, ctx: &mut Context<Self>, msg: Msg) -> Result<(), HandlerError> {
        if let Msg::Hold(arrived, gate, reply) = msg {
            let _ = arrived.send_async(()).await;
            let _ = gate.recv_async().await;
            let _ = reply.send(ctx.mailbox_len());
        }
        Ok(())
    }
}

#[test]
fn counts_the_messages_behind_the_current_one() {
    phalanx_runtime::block_on(async {
        let actor = spawn_actor(Holder);
        let (open, gate) = flume::bounded(1);
        let (arrive, arrived) = flume::bounded(1);
        let answer = {
            let actor = actor.clone();
            phalanx_runtime::spawn(async move {
                actor
                    .ask(
                        |reply| Msg::Hold(arrive, gate, reply),
                        Duration::from_secs(10),
                    )
                    .await
            })
        };
        arrived.recv_async().await.expect("the actor took Hold");
        for _ in 0..3 {
            assert!(actor.try_tell(Msg::Filler).is_ok());
        }
        open.send_async(()).await.expect("the actor holds the gate");
        assert_eq!(answer.await.ok(), Some(3));
        actor.stop();
    });
}
