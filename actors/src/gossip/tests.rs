//! Unit tests of the membership state machine, driven by hand with a fake clock.

use std::time::{Duration, Instant};

use super::*;

fn node(id: u64) -> Membership<u32> {
    Membership::new(NodeId(id), id as u32, 0, Config::default(), id)
}

fn drain(m: &mut Membership<u32>) -> Vec<Action<u32>> {
    std::iter::from_fn(|| m.poll_action()).collect()
}

fn alive(id: u64, incarnation: u64) -> Update<u32> {
    Update {
        node: NodeId(id),
        addr: id as u32,
        incarnation,
        state: MemberState::Alive,
        origin: NodeId(id),
    }
}

fn message(sender: u64, body: Body<u32>, updates: Vec<Update<u32>>) -> Message<u32> {
    Message {
        sender: NodeId(sender),
        body,
        updates,
        events: Vec::new(),
        messages: Vec::new(),
    }
}

/// A node 1 that knows members `others`, all alive at incarnation 0, and has started.
fn with_members(others: &[u64], now: Instant) -> Membership<u32> {
    let mut m = node(1);
    m.start(now);
    let members = others.iter().map(|&id| alive(id, 0)).collect();
    let body = Body::PushPull {
        kind: PushPullKind::Response,
        members,
    };
    m.handle_datagram(others[0] as u32, message(others[0], body, Vec::new()), now);
    drain(&mut m);
    m
}

fn sends(actions: &[Action<u32>]) -> Vec<(u32, &Message<u32>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, message } => Some((*to, message)),
            _ => None,
        })
        .collect()
}

fn notifications(actions: &[Action<u32>]) -> Vec<&Notification<u32>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Notify(n) => Some(n),
            _ => None,
        })
        .collect()
}

fn timers(actions: &[Action<u32>]) -> Vec<(Timer, Duration)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::ScheduleTimer { timer, after } => Some((*timer, *after)),
            _ => None,
        })
        .collect()
}

/// Fires the probe tick and returns the probed node, its seq and the actions.
fn probe(m: &mut Membership<u32>, now: Instant) -> (u32, u32, Vec<Action<u32>>) {
    m.handle_timer(Timer::Probe { epoch: 0 }, now);
    let actions = drain(m);
    let (to, seq) = sends(&actions)
        .iter()
        .find_map(|(to, msg)| match msg.body {
            Body::Ping { seq, .. } => Some((*to, seq)),
            _ => None,
        })
        .expect("a ping");
    (to, seq, actions)
}

#[test]
fn join_learns_members_and_notifies_up() {
    let now = Instant::now();
    let mut m = node(1);
    m.join([9], now);
    let actions = drain(&mut m);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::SendStream { to: 9, .. }))
    );
    let body = Body::PushPull {
        kind: PushPullKind::Response,
        members: vec![alive(9, 3), alive(4, 0)],
    };
    m.handle_datagram(9, message(9, body, Vec::new()), now);
    let actions = drain(&mut m);
    let ups = notifications(&actions)
        .into_iter()
        .filter(|n| matches!(n, Notification::Up { .. }))
        .count();
    assert_eq!(ups, 2);
    assert_eq!(m.live_members().count(), 2);
}

#[test]
fn push_pull_request_is_merged_then_answered_with_full_state() {
    let now = Instant::now();
    let mut m = with_members(&[2, 3], now);
    let body = Body::PushPull {
        kind: PushPullKind::Request,
        members: vec![alive(7, 0)],
    };
    m.handle_datagram(7, message(7, body, Vec::new()), now);
    let actions = drain(&mut m);
    let answer = actions
        .iter()
        .find_map(|a| match a {
            Action::SendStream { to: 7, message } => Some(message),
            _ => None,
        })
        .expect("an answer");
    let Body::PushPull { kind, members } = &answer.body else {
        panic!("not a push-pull");
    };
    assert_eq!(*kind, PushPullKind::Response);
    assert_eq!(members.len(), 4, "self, 2, 3 and the requester");
}

#[test]
fn acked_probe_keeps_member_alive_and_health_good() {
    let now = Instant::now();
    let mut m = with_members(&[2, 3, 4], now);
    let (to, seq, _) = probe(&mut m, now);
    m.handle_datagram(
        to,
        message(u64::from(to), Body::Ack { seq }, Vec::new()),
        now,
    );
    let (_, _, actions) = probe(&mut m, now + Duration::from_secs(1));
    assert!(notifications(&actions).is_empty());
    assert_eq!(m.health_score(), 0);
}

#[test]
fn unacked_probe_goes_indirect_then_suspects_and_missing_nacks_hurt_health() {
    let now = Instant::now();
    let mut m = with_members(&[2, 3, 4, 5], now);
    let (target, seq, actions) = probe(&mut m, now);
    assert!(timers(&actions).contains(&(Timer::ProbeTimeout { seq }, Duration::from_millis(500))));
    m.handle_timer(
        Timer::ProbeTimeout { seq },
        now + Duration::from_millis(500),
    );
    let actions = drain(&mut m);
    let helpers: Vec<u32> = sends(&actions)
        .iter()
        .filter(|(_, msg)| matches!(msg.body, Body::PingReq { target: t, .. } if t.0 == u64::from(target)))
        .map(|(to, _)| *to)
        .collect();
    assert_eq!(helpers.len(), 3);
    assert!(!helpers.contains(&target));
    // One helper answers with a nack; two stay silent.
    m.handle_datagram(
        helpers[0],
        message(u64::from(helpers[0]), Body::Nack { seq }, Vec::new()),
        now,
    );
    let (_, _, actions) = probe(&mut m, now + Duration::from_secs(1));
    let suspected = notifications(&actions).iter().any(
        |n| matches!(n, Notification::Suspect { member } if member.node.0 == u64::from(target)),
    );
    assert!(suspected);
    assert_eq!(m.health_score(), 2, "two missing nacks");
    // Lifeguard: the next probe interval is stretched by the health multiplier.
    assert!(timers(&actions).contains(&(Timer::Probe { epoch: 0 }, Duration::from_secs(3))));
}

#[test]
fn suspected_member_hears_of_it_first_buddy_system() {
    let now = Instant::now();
    let mut m = with_members(&[2], now);
    let (_, _, _) = probe(&mut m, now);
    let (_, _, actions) = probe(&mut m, now + Duration::from_secs(1));
    let ping = sends(&actions)
        .into_iter()
        .find(|(_, msg)| matches!(msg.body, Body::Ping { .. }))
        .expect("a ping to the suspect");
    let first = &ping.1.updates[0];
    assert_eq!((first.node, first.state), (NodeId(2), MemberState::Suspect));
}

#[test]
fn suspicion_about_self_is_refuted_with_a_higher_incarnation() {
    let now = Instant::now();
    let mut m = with_members(&[2, 3], now);
    let mut suspect = alive(1, 0);
    suspect.state = MemberState::Suspect;
    suspect.origin = NodeId(2);
    m.handle_datagram(2, message(2, Body::Gossip, vec![suspect]), now);
    let actions = drain(&mut m);
    assert_eq!(m.incarnation(), 1);
    assert!(notifications(&actions).contains(&&Notification::Refuted {
        incarnation: 1,
        was_dead: false
    }));
    let (_, _, actions) = probe(&mut m, now);
    let carried = sends(&actions)
        .iter()
        .any(|(_, msg)| msg.updates.contains(&alive(1, 1)));
    assert!(carried, "the refutation is piggybacked");
}

#[test]
fn declared_dead_node_bumps_incarnation_and_others_see_a_new_member() {
    let now = Instant::now();
    let mut a = with_members(&[2, 3], now);
    let mut dead = alive(1, 0);
    dead.state = MemberState::Dead;
    a.handle_datagram(2, message(2, Body::Gossip, vec![dead]), now);
    let actions = drain(&mut a);
    assert!(notifications(&actions).contains(&&Notification::Refuted {
        incarnation: 1,
        was_dead: true
    }));

    // Node 3's view: 1 dead at 0, then alive at 1.
    let mut b = node(3);
    let mut dead = alive(1, 0);
    dead.state = MemberState::Dead;
    b.handle_datagram(
        1,
        message(1, Body::Gossip, vec![alive(1, 0), dead, alive(1, 1)]),
        now,
    );
    let ups: Vec<MemberId> = notifications(&drain(&mut b))
        .into_iter()
        .filter_map(|n| match n {
            Notification::Up { member, .. } => Some(*member),
            _ => None,
        })
        .collect();
    assert_eq!(
        ups,
        vec![
            MemberId {
                node: NodeId(1),
                incarnation: 0
            },
            MemberId {
                node: NodeId(1),
                incarnation: 1
            }
        ]
    );
}

#[test]
fn confirmations_shrink_the_suspicion_timeout() {
    let now = Instant::now();
    // 1 + 5 members: expected confirmations k = suspicion_mult - 2 = 2.
    let mut m = with_members(&[2, 3, 4, 5, 6], now);
    let suspect = |origin: u64| Update {
        state: MemberState::Suspect,
        origin: NodeId(origin),
        ..alive(6, 0)
    };
    m.handle_datagram(2, message(2, Body::Gossip, vec![suspect(2)]), now);
    let first = timers(&drain(&mut m));
    let min = Duration::from_secs(4);
    let max = min * 6;
    assert_eq!(
        first,
        vec![(
            Timer::Suspicion {
                node: NodeId(6),
                incarnation: 0
            },
            max
        )]
    );
    m.handle_datagram(3, message(3, Body::Gossip, vec![suspect(3)]), now);
    let second = timers(&drain(&mut m));
    assert!(second[0].1 < max && second[0].1 > min, "{second:?}");
    m.handle_datagram(4, message(4, Body::Gossip, vec![suspect(4)]), now);
    let third = timers(&drain(&mut m));
    assert_eq!(third[0].1, min);
    // A repeated confirmation changes nothing.
    m.handle_datagram(4, message(4, Body::Gossip, vec![suspect(4)]), now);
    assert!(timers(&drain(&mut m)).is_empty());
    // The early timer expires the suspicion.
    m.handle_timer(third[0].0, now + min);
    let down = notifications(&drain(&mut m)).into_iter().any(|n| {
        matches!(n, Notification::Down { member, reason: DownReason::Failed } if member.node == NodeId(6))
    });
    assert!(down);
}

#[test]
fn relayed_probe_forwards_the_ack_or_answers_with_a_nack() {
    let now = Instant::now();
    let mut m = with_members(&[2, 3], now);
    let req = Body::PingReq {
        seq: 77,
        target: NodeId(3),
        target_addr: 3,
    };
    m.handle_datagram(2, message(2, req.clone(), Vec::new()), now);
    let actions = drain(&mut m);
    let local = sends(&actions)
        .iter()
        .find_map(|(to, msg)| match msg.body {
            Body::Ping { seq, target } if *to == 3 && target == NodeId(3) => Some(seq),
            _ => None,
        })
        .expect("relayed ping");
    m.handle_datagram(3, message(3, Body::Ack { seq: local }, Vec::new()), now);
    let actions = drain(&mut m);
    assert!(
        sends(&actions)
            .iter()
            .any(|(to, msg)| *to == 2 && msg.body == Body::Ack { seq: 77 })
    );

    m.handle_datagram(2, message(2, req, Vec::new()), now);
    let actions = drain(&mut m);
    let (timer, _) = timers(&actions)[0];
    m.handle_timer(timer, now + Duration::from_millis(400));
    let actions = drain(&mut m);
    assert!(
        sends(&actions)
            .iter()
            .any(|(to, msg)| *to == 2 && msg.body == Body::Nack { seq: 77 })
    );
}

#[test]
fn dead_in_a_push_pull_only_raises_a_suspicion() {
    let now = Instant::now();
    let mut m = with_members(&[2, 3], now);
    let dead = Update {
        state: MemberState::Dead,
        origin: NodeId(2),
        ..alive(3, 0)
    };
    let body = Body::PushPull {
        kind: PushPullKind::Response,
        members: vec![dead],
    };
    m.handle_datagram(2, message(2, body, Vec::new()), now);
    assert_eq!(m.member_state(NodeId(3)), Some((MemberState::Suspect, 0)));
}

#[test]
fn leave_tells_members_and_goes_silent() {
    let now = Instant::now();
    let mut m = with_members(&[2, 3], now);
    m.leave(now);
    let actions = drain(&mut m);
    let told = sends(&actions);
    assert_eq!(told.len(), 2);
    assert!(
        told.iter()
            .all(|(_, msg)| msg.updates[0].state == MemberState::Left)
    );
    m.handle_timer(Timer::Probe { epoch: 0 }, now);
    m.handle_datagram(
        2,
        message(
            2,
            Body::Ping {
                seq: 1,
                target: NodeId(1),
            },
            Vec::new(),
        ),
        now,
    );
    assert!(drain(&mut m).is_empty());
    assert!(m.broadcast_event("x", b"").is_err());
}

/// Hands `events` to `m` from member 2, one gossip datagram each, and counts the events it
/// delivers.
fn deliver_events(m: &mut Membership<u32>, events: &[UserEvent], now: Instant) -> usize {
    for event in events {
        let mut msg = message(2, Body::Gossip, Vec::new());
        msg.events.push(event.clone());
        m.handle_datagram(2, msg, now);
    }
    notifications(&drain(m))
        .into_iter()
        .filter(|n| matches!(n, Notification::Event(_)))
        .count()
}

#[test]
fn events_are_checked_deduplicated_and_piggybacked() {
    let now = Instant::now();
    let mut m = with_members(&[2], now);
    assert!(matches!(
        m.broadcast_event(&"n".repeat(MAX_EVENT_NAME + 1), b""),
        Err(EventError::NameTooLong { .. })
    ));
    let event = UserEvent {
        origin: NodeId(2),
        seq: 5,
        name: "e".to_owned(),
        payload: vec![1],
    };
    let delivered = deliver_events(&mut m, &[event.clone(), event.clone()], now);
    assert_eq!(delivered, 1);
    let (_, _, actions) = probe(&mut m, now);
    assert!(
        sends(&actions)
            .iter()
            .any(|(_, msg)| msg.events.contains(&event))
    );
    // Push-pull carries recent events too, for members that missed the piggybacking.
    m.handle_timer(Timer::PushPull { epoch: 0 }, now);
    let carried = drain(&mut m).iter().any(
        |a| matches!(a, Action::SendStream { message, .. } if message.events.contains(&event)),
    );
    assert!(carried);
}

#[test]
fn a_restarted_node_with_a_later_incarnation_gets_its_events_through() {
    let now = Instant::now();
    let mut peer = with_members(&[2], now);
    let mut first_life = Membership::new(NodeId(2), 2, 1_000, Config::default(), 2);
    let mut second_life = Membership::new(NodeId(2), 2, 1_001, Config::default(), 3);
    let events = |life: &mut Membership<u32>| -> Vec<UserEvent> {
        for _ in 0..2 {
            assert!(life.broadcast_event("e", b"").is_ok());
        }
        life.recent_events.iter().cloned().collect()
    };
    let old = events(&mut first_life);
    let new = events(&mut second_life);
    assert!(new.iter().all(|e| !old.iter().any(|o| o.seq == e.seq)));
    let all: Vec<UserEvent> = old.iter().chain(&new).cloned().collect();
    assert_eq!(deliver_events(&mut peer, &all, now), 4);
}

#[test]
fn stale_news_is_corrected_at_its_sender() {
    let now = Instant::now();
    let mut m = with_members(&[2, 3], now);
    m.handle_datagram(3, message(3, Body::Gossip, vec![alive(3, 4)]), now);
    drain(&mut m);
    let stale = Update {
        state: MemberState::Suspect,
        origin: NodeId(2),
        ..alive(3, 1)
    };
    m.handle_datagram(2, message(2, Body::Gossip, vec![stale]), now);
    let actions = drain(&mut m);
    let reply = sends(&actions);
    assert_eq!(reply.len(), 1);
    assert_eq!(reply[0].0, 2);
    assert_eq!(
        reply[0].1.updates[0],
        Update {
            origin: NodeId(1),
            ..alive(3, 4)
        }
    );
    assert_eq!(m.member_state(NodeId(3)), Some((MemberState::Alive, 4)));
    // A second stale sender in the same period: over the budget of correction datagrams.
    m.handle_datagram(4, message(4, Body::Gossip, vec![stale_update()]), now);
    assert!(
        sends(&drain(&mut m)).is_empty(),
        "one correction datagram per period"
    );
    // Stale news on a ping is corrected on the ack, budget or not.
    let ping = Body::Ping {
        seq: 9,
        target: NodeId(1),
    };
    m.handle_datagram(2, message(2, ping, vec![stale_update()]), now);
    let actions = drain(&mut m);
    let reply = sends(&actions);
    assert_eq!(reply.len(), 1);
    assert_eq!(reply[0].1.body, Body::Ack { seq: 9 });
    assert_eq!(reply[0].1.updates[0].incarnation, 4);
    // The next period refills the budget.
    m.handle_timer(Timer::Probe { epoch: 0 }, now + Duration::from_secs(1));
    drain(&mut m);
    m.handle_datagram(2, message(2, Body::Gossip, vec![stale_update()]), now);
    let corrected = sends(&drain(&mut m))
        .iter()
        .any(|(to, msg)| *to == 2 && msg.updates.iter().any(|u| u.incarnation == 4));
    assert!(corrected);
}

fn stale_update() -> Update<u32> {
    Update {
        state: MemberState::Suspect,
        origin: NodeId(2),
        ..alive(3, 1)
    }
}

#[test]
fn gossip_rounds_spread_pending_updates_to_the_fanout() {
    let now = Instant::now();
    let mut m = with_members(&[2, 3, 4, 5, 6], now);
    m.handle_timer(Timer::Gossip { epoch: 0 }, now);
    let gossip = sends(&drain(&mut m))
        .into_iter()
        .filter(|(_, msg)| msg.body == Body::Gossip)
        .count();
    assert_eq!(gossip, 3, "the join's updates are pending");
    // Once every update has been sent its quota of times, rounds go quiet.
    for _ in 0..20 {
        m.handle_timer(Timer::Gossip { epoch: 0 }, now);
    }
    drain(&mut m);
    m.handle_timer(Timer::Gossip { epoch: 0 }, now);
    assert!(sends(&drain(&mut m)).is_empty());
}

#[test]
fn dead_members_are_forgotten_after_the_reclaim_time() {
    let now = Instant::now();
    let mut m = with_members(&[2, 3], now);
    let dead = Update {
        state: MemberState::Dead,
        origin: NodeId(2),
        ..alive(3, 0)
    };
    m.handle_datagram(2, message(2, Body::Gossip, vec![dead]), now);
    m.handle_timer(Timer::PushPull { epoch: 0 }, now + Duration::from_secs(60));
    assert_eq!(m.member_state(NodeId(3)), Some((MemberState::Dead, 0)));
    m.handle_timer(
        Timer::PushPull { epoch: 0 },
        now + Duration::from_secs(3601),
    );
    assert_eq!(m.member_state(NodeId(3)), None);
    assert_eq!(m.member_state(NodeId(2)), Some((MemberState::Alive, 0)));
}

#[test]
fn join_is_retried_until_a_full_state_arrives() {
    let now = Instant::now();
    let mut m = node(1);
    m.join([9], now);
    drain(&mut m);
    // Some member found us (the answer to our join was lost): not joined yet.
    m.handle_datagram(4, message(4, Body::Gossip, vec![alive(4, 0)]), now);
    drain(&mut m);
    let (_, _, actions) = probe(&mut m, now);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::SendStream { to: 9, .. }))
    );
    let body = Body::PushPull {
        kind: PushPullKind::Response,
        members: vec![alive(9, 0)],
    };
    m.handle_datagram(9, message(9, body, Vec::new()), now);
    let actions = drain(&mut m);
    assert!(timers(&actions).contains(&(Timer::SettleSync { epoch: 0 }, Duration::from_secs(5))));
    let (_, _, actions) = probe(&mut m, now);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::SendStream { .. }))
    );
}

#[test]
fn an_unknown_sender_is_asked_for_a_push_pull_once() {
    let now = Instant::now();
    let mut m = with_members(&[2], now);
    for _ in 0..2 {
        let ping = Body::Ping {
            seq: 1,
            target: NodeId(1),
        };
        m.handle_datagram(7, message(7, ping, Vec::new()), now);
    }
    let asked = drain(&mut m)
        .iter()
        .filter(|a| matches!(a, Action::SendStream { to: 7, .. }))
        .count();
    assert_eq!(asked, 1);
}

#[test]
fn relayed_news_rides_probes_but_starts_no_gossip_round() {
    let now = Instant::now();
    let mut m = with_members(&[2, 3, 4, 5, 6], now);
    // Exhaust the join's (urgent) announcements.
    for _ in 0..20 {
        m.handle_timer(Timer::Gossip { epoch: 0 }, now);
    }
    drain(&mut m);
    // A suspicion raised by node 2 about node 3 is relayed news here.
    let mut suspect = alive(3, 0);
    suspect.state = MemberState::Suspect;
    suspect.origin = NodeId(2);
    m.handle_datagram(2, message(2, Body::Gossip, vec![suspect]), now);
    drain(&mut m);
    assert!(m.pending_broadcasts() > 0);
    m.handle_timer(Timer::Gossip { epoch: 0 }, now);
    assert!(
        sends(&drain(&mut m)).is_empty(),
        "no round for relayed news"
    );
    let (_, _, actions) = probe(&mut m, now);
    let carried = sends(&actions)
        .iter()
        .any(|(_, msg)| msg.updates.iter().any(|u| u.node == NodeId(3)));
    assert!(carried, "the probe carries it");
    // A suspicion of our own is urgent: the next round goes out.
    let mut m = with_members(&[2, 3, 4, 5, 6], now);
    for _ in 0..20 {
        m.handle_timer(Timer::Gossip { epoch: 0 }, now);
    }
    drain(&mut m);
    let (_, seq, _) = probe(&mut m, now);
    m.handle_timer(Timer::ProbeTimeout { seq }, now);
    m.handle_timer(Timer::Probe { epoch: 0 }, now + Duration::from_secs(1));
    drain(&mut m);
    m.handle_timer(Timer::Gossip { epoch: 0 }, now);
    assert!(
        !sends(&drain(&mut m)).is_empty(),
        "a round for our own suspicion"
    );
}

#[test]
fn a_message_rides_a_datagram_already_going_to_its_member() {
    let now = Instant::now();
    let mut m = with_members(&[2, 3], now);
    // A probe is queued to one of the two members; messages for both queued in the same step:
    // the probed member's rides the ping, the other's takes a datagram of its own.
    m.handle_timer(Timer::Probe { epoch: 0 }, now);
    m.send_message(NodeId(2), b"two".to_vec()).unwrap();
    m.send_message(NodeId(3), b"three".to_vec()).unwrap();
    let actions = drain(&mut m);
    let sent = sends(&actions);
    assert_eq!(sent.len(), 2, "the ping and one datagram of its own");
    let ping = sent
        .iter()
        .find(|(_, msg)| matches!(msg.body, Body::Ping { .. }))
        .expect("a ping");
    let own = sent
        .iter()
        .find(|(_, msg)| msg.body == Body::Gossip)
        .expect("a datagram of its own");
    for (to, msg) in [ping, own] {
        assert_eq!(msg.messages.len(), 1);
        let expected: &[u8] = if *to == 2 { b"two" } else { b"three" };
        assert_eq!(msg.messages[0].payload, expected);
        assert_eq!(msg.messages[0].to, NodeId(u64::from(*to)));
    }
    assert_eq!(m.message_stats().piggybacked, 1);
    assert_eq!(m.message_stats().own_datagram, 1);
}

#[test]
fn messages_without_a_datagram_get_their_own_and_never_exceed_the_budget() {
    let now = Instant::now();
    let mut m = with_members(&[2, 3, 4, 5, 6, 7, 8, 9], now);
    let max = m.max_message_payload();
    assert!(max > 1000 && max < 1400, "{max}");
    assert!(matches!(
        m.send_message(NodeId(2), vec![0; max + 1]),
        Err(MessageError::TooLarge { .. })
    ));
    assert!(matches!(
        m.send_message(NodeId(42), vec![0; 8]),
        Err(MessageError::NotLive(NodeId(42)))
    ));
    // Messages of every size for one member, with membership news pending (the join).
    let sizes = [max, 1, 700, 700, 13, max / 3, 0, 400, 900, 2];
    for len in sizes {
        m.send_message(NodeId(2), vec![7; len]).unwrap();
    }
    let actions = drain(&mut m);
    let mut carried = 0;
    for (to, message) in sends(&actions) {
        assert_eq!(to, 2);
        let len = message.encode().unwrap().len();
        assert!(len <= Config::default().max_datagram, "{len} bytes");
        carried += message.messages.len();
    }
    assert_eq!(carried, sizes.len());
    assert_eq!(m.message_stats().own_datagram, sizes.len() as u64);
    // The room messages leave is filled with membership news.
    assert!(
        sends(&actions)
            .iter()
            .any(|(_, message)| !message.updates.is_empty())
    );
}

#[test]
fn received_messages_are_checked_and_delivered_once() {
    let now = Instant::now();
    let mut m = with_members(&[2, 3], now);
    drain(&mut m);
    let direct = |to: u64, seq: u64| DirectMessage {
        to: NodeId(to),
        seq,
        payload: vec![seq as u8],
    };
    let mut datagram = message(2, Body::Gossip, Vec::new());
    datagram.messages = vec![direct(1, 5), direct(1, 5), direct(9, 6), direct(1, 4)];
    m.handle_datagram(2, datagram.clone(), now);
    // A duplicated datagram delivers nothing again.
    m.handle_datagram(2, datagram, now);
    // A sender that is not a member is not heard.
    let mut stranger = message(77, Body::Gossip, Vec::new());
    stranger.messages = vec![direct(1, 1)];
    m.handle_datagram(77, stranger, now);
    let actions = drain(&mut m);
    let payloads: Vec<(NodeId, Vec<u8>)> = notifications(&actions)
        .into_iter()
        .filter_map(|n| match n {
            Notification::Message { from, payload } => Some((from.node, payload.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(payloads, vec![(NodeId(2), vec![5]), (NodeId(2), vec![4])]);
    let stats = m.message_stats();
    assert_eq!(stats.received, 2);
    assert_eq!(stats.dropped, 7);
}

#[test]
fn messages_for_a_member_that_went_down_are_dropped() {
    let now = Instant::now();
    let mut m = with_members(&[2, 3], now);
    m.send_message(NodeId(2), b"x".to_vec()).unwrap();
    let mut dead = alive(2, 0);
    dead.state = MemberState::Dead;
    m.handle_datagram(3, message(3, Body::Gossip, vec![dead]), now);
    let actions = drain(&mut m);
    assert!(
        sends(&actions)
            .iter()
            .all(|(_, msg)| msg.messages.is_empty())
    );
    assert_eq!(m.message_stats().dropped, 1);
}
