//! Listing for "Remote actors": two nodes in one process, talking over loopback.
// `mdbook test` passes no --extern, so the listing names the crates itself.
#[allow(unused_extern_crates)]
extern crate phalanx;
#[allow(unused_extern_crates)]
extern crate serde;

use std::time::Duration;

use phalanx::transports::{
    ClusterId, EndpointConfig, EndpointSecurity, Incarnation, Key, NodeId, RemoteMessage, Remoting,
    SharedKeyring,
};
use phalanx::{
    Actor, ActorRef, Addr, AskError, Context, ExitReason, HandlerError, Reply, Runtime, spawn_actor,
};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(10);

// ANCHOR: message
/// What an account understands, on any node: serde for the wire, a stable tag for the type.
#[derive(Serialize, Deserialize)]
enum Account {
    Deposit(u64),
    Balance(Reply<u64>),
    /// Keeps the reply and never answers (to show a timeout).
    Stall(Reply<u64>),
}

impl RemoteMessage for Account {
    const TAG: &'static str = "book.Account.v1";
}

#[derive(Default)]
struct Ledger {
    balance: u64,
    stalled: Vec<Reply<u64>>,
}

impl Actor for Ledger {
    type Message = Account;

    async fn handle(&mut self, _: &mut Context<Self>, msg: Account) -> Result<(), HandlerError> {
        match msg {
            Account::Deposit(amount) => self.balance += amount,
            Account::Balance(reply) => {
                let _ = reply.send(self.balance);
            }
            Account::Stall(reply) => self.stalled.push(reply),
        }
        Ok(())
    }
}
// ANCHOR_END: message

/// A local actor that links itself to another actor and fails on demand.
struct Auditor;

enum Audit {
    Watch(Addr, Reply<bool>),
    Fail,
}

impl Actor for Auditor {
    type Message = Audit;

    async fn handle(&mut self, ctx: &mut Context<Self>, msg: Audit) -> Result<(), HandlerError> {
        match msg {
            Audit::Watch(account, reply) => {
                let _ = reply.send(ctx.link(&account));
                Ok(())
            }
            Audit::Fail => Err("the audit failed".into()),
        }
    }
}

pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::builder().worker_threads(2).build()?;
    runtime.block_on(async {
        // ANCHOR: nodes
        // Every node of a cluster holds the same key; each frame is sealed with it.
        let keys = SharedKeyring::new(Key::generate()?);
        let config = |n| EndpointConfig::new(ClusterId(1), NodeId::from_u128(n), Incarnation(1));
        let security = EndpointSecurity::Keyring(keys.clone());
        let a = Remoting::bind("127.0.0.1:0".parse()?, config(1), security.clone()).await?;
        let b = Remoting::bind("127.0.0.1:0".parse()?, config(2), security).await?;
        // ANCHOR_END: nodes

        // ANCHOR: lookup
        // Node B makes an actor reachable by name; node A looks it up.
        b.register("savings", &spawn_actor(Ledger::default()))?;
        let node_b = a.connect(b.local_addr(), WAIT).await?;
        let savings: ActorRef<Account> = a.lookup(node_b, "savings", WAIT).await?;
        assert!(savings.is_remote());
        // ANCHOR_END: lookup

        // ANCHOR: tell_ask
        // Tells from one sender arrive in the order they were sent, before a later ask.
        for amount in 1..=100 {
            savings.tell(Account::Deposit(amount)).await?;
        }
        let balance = savings.ask(Account::Balance, WAIT).await?;
        assert_eq!(balance, 5_050);
        // ANCHOR_END: tell_ask

        // ANCHOR: timeout
        // An ask always ends: with the answer, or a timeout, or NoReply if the actor ends
        // or its node is lost first.
        let stalled = savings
            .ask(Account::Stall, Duration::from_millis(100))
            .await;
        assert!(matches!(stalled, Err(AskError::Timeout)));
        // ANCHOR_END: timeout

        // ANCHOR: spawn
        // A factory registered on B spawns actors for other nodes; the arguments travel
        // serialized, and the reference comes back checked against the message type.
        b.register_factory("account", |opening: u64| {
            Ok(spawn_actor(Ledger {
                balance: opening,
                stalled: Vec::new(),
            }))
        });
        let checking: ActorRef<Account> = a.spawn(node_b, "account", &250u64, WAIT).await?;
        assert_eq!(checking.ask(Account::Balance, WAIT).await?, 250);
        // ANCHOR_END: spawn

        // ANCHOR: link
        // A link between a local and a remote actor works both ways: the auditor's failure
        // reaches the account on B as a linked exit, and the account's end comes back.
        let auditor = spawn_actor(Auditor);
        let account = checking.addr().clone();
        assert!(auditor.ask(|r| Audit::Watch(account, r), WAIT).await?);
        auditor.tell(Audit::Fail).await?;
        // The account failed on B as linked to the auditor; its reference on A ends with that
        // failure (across the wire, a failure keeps its text, not its kind).
        let reason = phalanx::timeout(WAIT, checking.addr().wait()).await?;
        assert!(reason.failure().is_some());
        assert!(reason.to_string().contains("the audit failed"), "{reason}");
        // ANCHOR_END: link

        // ANCHOR: rotate
        // Keys rotate without downtime: install the new key everywhere, switch to it, then
        // remove the old one. Traffic flows throughout.
        let old = keys.primary();
        let new = keys.install(Key::generate()?)?;
        keys.use_key(new)?;
        savings.tell(Account::Deposit(1)).await?;
        keys.remove(old)?;
        assert_eq!(savings.ask(Account::Balance, WAIT).await?, 5_051);
        // ANCHOR_END: rotate

        // ANCHOR: node_down
        // When the connection to B is lost, every reference to its actors ends with NodeDown:
        // monitors get Down, links the exit, and a tell hands the message back.
        b.shutdown();
        let reason = phalanx::timeout(WAIT, savings.addr().wait()).await?;
        assert_eq!(reason, ExitReason::NodeDown);
        assert!(savings.tell(Account::Deposit(1)).await.is_err());
        // ANCHOR_END: node_down
        Ok(())
    })
}
