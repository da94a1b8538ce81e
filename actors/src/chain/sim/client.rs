//! A simulated client: one operation at a time, retries with the same request id, gives up
//! after a deadline (the operation then stays pending in the history).

use std::time::Duration;

use phalanx_transports::SimInstant;

use super::recording::TaggedCommand;
use crate::chain::config::{ChainConfig, ClientId, Member, ReplicaId};
use crate::chain::linearizability::{KvInput, KvResult, Operation};
use crate::chain::machine::{KvCommand, KvOutput, KvQuery};
use crate::chain::message::Message;
use crate::chain::reads::ReadBalancer;

use super::{RecordingKv, SimRng};

/// How often an unanswered request is sent again.
const RETRY: Duration = Duration::from_millis(60);

/// Where a client sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    Head,
    /// CRAQ: the member the client's [`ReadBalancer`] chooses; plain chain replication: the
    /// tail.
    Reader,
}

/// A request for the harness to send.
#[derive(Debug)]
pub(super) struct Outgoing {
    pub(super) target: Target,
    pub(super) message: Message<RecordingKv>,
    /// Also ask the group for the latest configuration.
    pub(super) refresh: bool,
}

#[derive(Debug)]
struct Current {
    request: u64,
    key: String,
    input: KvInput,
    history: usize,
    deadline: SimInstant,
    retry_at: SimInstant,
    /// A CRAQ read's last target and when it was sent there.
    read_sent: Option<(ReplicaId, SimInstant)>,
}

#[derive(Debug)]
pub(super) struct SimClient {
    pub(super) id: ClientId,
    pub(super) config: Option<ChainConfig>,
    next_request: u64,
    current: Option<Current>,
    /// Where CRAQ reads go.
    reads: ReadBalancer,
    pub(super) next_op_at: SimInstant,
    pub(super) completed: u64,
    pub(super) reads_completed: u64,
    pub(super) given_up: u64,
}

impl SimClient {
    pub(super) fn new(id: ClientId) -> Self {
        Self {
            id,
            config: None,
            next_request: 1,
            current: None,
            reads: ReadBalancer::default(),
            next_op_at: SimInstant::ZERO,
            completed: 0,
            reads_completed: 0,
            given_up: 0,
        }
    }

    pub(super) fn is_idle(&self) -> bool {
        self.current.is_none()
    }

    /// When this client next needs attention.
    pub(super) fn next_event(&self) -> SimInstant {
        match &self.current {
            Some(current) => current.retry_at.min(current.deadline),
            None => self.next_op_at,
        }
    }

    /// Starts a new operation; records its call in `history`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        &mut self,
        rng: &mut SimRng,
        keys: usize,
        read_fraction: f64,
        deadline: Duration,
        now: SimInstant,
        history: &mut Vec<(String, Operation<KvInput, KvResult>)>,
    ) -> Outgoing {
        let request = self.next_request;
        self.next_request += 1;
        let key = format!("k{}", rng.below(keys as u64));
        let value = [self.id.0.to_be_bytes(), request.to_be_bytes()].concat();
        let (input, command) = if rng.chance(read_fraction) {
            (KvInput::Get, None)
        } else {
            match rng.below(10) {
                0..=5 => (
                    KvInput::Put(value.clone()),
                    Some(KvCommand::Put {
                        key: key.clone(),
                        value,
                    }),
                ),
                6 => (
                    KvInput::Delete,
                    Some(KvCommand::Delete { key: key.clone() }),
                ),
                _ => {
                    // Expect the value this client last wrote, or absence.
                    let expected = (rng.below(2) == 0 && request > 1)
                        .then(|| [self.id.0.to_be_bytes(), (request - 1).to_be_bytes()].concat());
                    let input = KvInput::CompareAndSet {
                        expected: expected.clone(),
                        new: Some(value.clone()),
                    };
                    let command = KvCommand::CompareAndSet {
                        key: key.clone(),
                        expected,
                        new: Some(value),
                    };
                    (input, Some(command))
                }
            }
        };
        history.push((
            key.clone(),
            Operation {
                call: now.as_nanos(),
                ret: None,
                input: input.clone(),
                output: None,
            },
        ));
        self.current = Some(Current {
            request,
            key,
            input,
            history: history.len() - 1,
            deadline: now + deadline,
            retry_at: now + RETRY,
            read_sent: None,
        });
        self.outgoing(command)
    }

    fn outgoing(&self, command: Option<KvCommand>) -> Outgoing {
        let Some(current) = &self.current else {
            // Only called with an operation in progress.
            return Outgoing {
                target: Target::Reader,
                message: Message::NotServing {
                    request: 0,
                    epoch: 0,
                },
                refresh: true,
            };
        };
        match command {
            Some(command) => Outgoing {
                target: Target::Head,
                message: Message::Write {
                    client: self.id,
                    request: current.request,
                    acked_below: current.request,
                    command: TaggedCommand {
                        id: (self.id.0, current.request),
                        command,
                    },
                },
                refresh: false,
            },
            None => Outgoing {
                target: Target::Reader,
                message: Message::Read {
                    client: self.id,
                    request: current.request,
                    query: KvQuery {
                        key: current.key.clone(),
                    },
                },
                refresh: false,
            },
        }
    }

    fn command(&self) -> Option<KvCommand> {
        let current = self.current.as_ref()?;
        let key = current.key.clone();
        match &current.input {
            KvInput::Get => None,
            KvInput::Put(value) => Some(KvCommand::Put {
                key,
                value: value.clone(),
            }),
            KvInput::Delete => Some(KvCommand::Delete { key }),
            KvInput::CompareAndSet { expected, new } => Some(KvCommand::CompareAndSet {
                key,
                expected: expected.clone(),
                new: new.clone(),
            }),
        }
    }

    /// Chooses the member the current read goes to (CRAQ) and remembers it; a read sent
    /// again counts its wait against the member it leaves.
    pub(super) fn pick_reader(&mut self, rng: &mut SimRng, now: SimInstant) -> Option<Member> {
        let current = self.current.as_mut()?;
        let members = &self.config.as_ref()?.members;
        let at = since_zero(now);
        if let Some((replica, sent)) = current.read_sent.take() {
            self.reads
                .abandoned(replica, now.saturating_duration_since(sent), at);
        }
        let member = self
            .reads
            .pick(members, at, |n| rng.below(n as u64) as usize)?;
        current.read_sent = Some((member.id, now));
        Some(member)
    }

    /// Retries or gives up when due. Returns a request to send again.
    pub(super) fn on_timer(&mut self, rng: &mut SimRng, now: SimInstant) -> Option<Outgoing> {
        let current = self.current.as_mut()?;
        if now >= current.deadline {
            if let Some((replica, sent)) = current.read_sent {
                self.reads.abandoned(
                    replica,
                    now.saturating_duration_since(sent),
                    since_zero(now),
                );
            }
            self.current = None;
            self.given_up += 1;
            self.next_op_at = now + Duration::from_millis(rng.below(10));
            return None;
        }
        if now < current.retry_at {
            return None;
        }
        current.retry_at = now + RETRY;
        let mut outgoing = self.outgoing(self.command());
        outgoing.refresh = true;
        Some(outgoing)
    }

    /// Handles a reply; completes the operation in `history` if it answers it.
    pub(super) fn on_message(
        &mut self,
        message: Message<RecordingKv>,
        rng: &mut SimRng,
        think: Duration,
        now: SimInstant,
        history: &mut [(String, Operation<KvInput, KvResult>)],
        acked: &mut Vec<(u64, u64)>,
    ) -> Option<Outgoing> {
        let current = self.current.as_mut()?;
        let (request, result) = match message {
            Message::WriteReply { request, output } => {
                let result = match output {
                    KvOutput::Swapped(swapped) => KvResult::Swapped(swapped),
                    _ => KvResult::Done,
                };
                (request, result)
            }
            Message::ReadReply { request, reply } => (request, KvResult::Value(reply)),
            Message::NotServing { request, .. } if request == current.request => {
                // Ask the group and try again soon (a read goes to another replica).
                current.retry_at = current.retry_at.min(now + Duration::from_millis(10));
                return None;
            }
            _ => return None,
        };
        if request != current.request {
            return None;
        }
        let matches_kind = matches!(
            (&current.input, &result),
            (KvInput::Get, KvResult::Value(_))
                | (KvInput::Put(_) | KvInput::Delete, KvResult::Done)
                | (KvInput::CompareAndSet { .. }, KvResult::Swapped(_))
        );
        if !matches_kind {
            return None;
        }
        if let Some((_, operation)) = history.get_mut(current.history) {
            operation.ret = Some(now.as_nanos());
            operation.output = Some(result.clone());
        }
        if matches!(current.input, KvInput::Get) {
            if let Some((replica, sent)) = current.read_sent {
                self.reads.completed(
                    replica,
                    now.saturating_duration_since(sent),
                    since_zero(now),
                );
            }
            self.reads_completed += 1;
        } else {
            acked.push((self.id.0, current.request));
        }
        self.completed += 1;
        self.current = None;
        let pause = think.as_nanos() as u64;
        self.next_op_at = now + Duration::from_nanos(if pause == 0 { 0 } else { rng.below(pause) });
        None
    }
}

/// Simulated time as the balancer's time.
fn since_zero(now: SimInstant) -> Duration {
    now.saturating_duration_since(SimInstant::ZERO)
}
