//! Listings for "Actors": mailboxes, errors, lifecycle, panics, monitors and the registry.
// `mdbook test` passes no --extern, so the listing names the crate itself.
#[allow(unused_extern_crates)]
extern crate flume;
#[allow(unused_extern_crates)]
extern crate phalanx;

use std::time::Duration;

use phalanx::{
    Actor, ActorRef, AskError, Context, Down, ExitReason, FailureKind, HandlerError, Reply,
    Runtime, Spawn, TrySendError, registry, spawn_actor,
};

// ANCHOR: account
/// Messages of a bank account.
enum Account {
    Deposit(u64),
    Withdraw(u64, Reply<Result<u64, String>>),
    Balance(Reply<u64>),
    /// Simulates a bug.
    Corrupt,
}

#[derive(Default)]
struct Ledger {
    balance: u64,
}

impl Actor for Ledger {
    type Message = Account;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), HandlerError> {
        println!("ledger {} open", ctx.id());
        Ok(())
    }

    async fn handle(&mut self, _: &mut Context<Self>, msg: Account) -> Result<(), HandlerError> {
        match msg {
            Account::Deposit(amount) => self.balance += amount,
            Account::Withdraw(amount, reply) => {
                let outcome = match self.balance.checked_sub(amount) {
                    Some(left) => {
                        self.balance = left;
                        Ok(left)
                    }
                    None => Err(format!("insufficient funds: {} < {amount}", self.balance)),
                };
                let _ = reply.send(outcome);
            }
            Account::Balance(reply) => {
                let _ = reply.send(self.balance);
            }
            Account::Corrupt => panic!("ledger invariant broken"),
        }
        Ok(())
    }

    async fn stopped(&mut self, ctx: &mut Context<Self>, reason: &ExitReason) {
        println!(
            "ledger {} closed ({reason}) with balance {}",
            ctx.id(),
            self.balance
        );
    }
}
// ANCHOR_END: account

// ANCHOR: auditor
/// Watches ledgers and records how they ended.
struct Auditor {
    report: Option<flume::Sender<Down>>,
}

impl Actor for Auditor {
    type Message = ActorRef<Account>;

    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        ledger: Self::Message,
    ) -> Result<(), HandlerError> {
        ctx.monitor(ledger.addr());
        Ok(())
    }

    async fn down(&mut self, _: &mut Context<Self>, down: Down) -> Result<(), HandlerError> {
        if let Some(report) = &self.report {
            let _ = report.send(down);
        }
        Ok(())
    }
}
// ANCHOR_END: auditor

pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::builder().worker_threads(2).build()?;
    runtime.block_on(async {
        // ANCHOR: talk
        let ledger = Spawn::new(Ledger::default())
            .name("ledger")
            .capacity(64)
            .start()?;
        ledger.tell(Account::Deposit(100)).await?;
        let left = ledger
            .ask(|reply| Account::Withdraw(30, reply), Duration::from_secs(1))
            .await?;
        assert_eq!(left, Ok(70));
        let refused = ledger
            .ask(
                |reply| Account::Withdraw(500, reply),
                Duration::from_secs(1),
            )
            .await?;
        assert!(refused.is_err());
        // Anyone can find it by name, with its message type.
        let found: ActorRef<Account> = registry::whereis("ledger").ok_or("not registered")?;
        assert_eq!(
            found.ask(Account::Balance, Duration::from_secs(1)).await?,
            70
        );
        // ANCHOR_END: talk

        // ANCHOR: crash
        let (report, reports) = flume::unbounded();
        let auditor = spawn_actor(Auditor {
            report: Some(report),
        });
        auditor.tell(ledger.clone()).await?;
        // Make sure the monitor is in place before the crash.
        phalanx::sleep(Duration::from_millis(10)).await;

        ledger.tell(Account::Corrupt).await?;
        let reason = ledger.wait().await;
        let failure = reason.failure().ok_or("expected a failure")?;
        assert_eq!(failure.kind(), FailureKind::Panic);
        assert_eq!(failure.message(), "ledger invariant broken");

        let down = reports.recv_async().await?;
        assert_eq!(down.id, ledger.id());
        println!("auditor saw ledger {} go down: {}", down.id, down.reason);

        // The ledger is gone: messages come back to the sender, typed.
        match ledger.try_tell(Account::Deposit(5)) {
            Err(TrySendError::Closed(Account::Deposit(5))) => {}
            _ => return Err("a dead actor accepted a message".into()),
        }
        match ledger.ask(Account::Balance, Duration::from_secs(1)).await {
            Err(AskError::Closed(_)) => {}
            _ => return Err("a dead actor answered".into()),
        }
        assert!(registry::whereis::<Account>("ledger").is_none());
        // ANCHOR_END: crash
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    runtime.shutdown(Duration::from_secs(1))?;
    Ok(())
}
