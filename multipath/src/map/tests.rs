//! Decision sequences on a virtual clock: every `now` is `t0` plus a count of
//! seconds, no test sleeps.

use std::time::{Duration, Instant};

use hydra_initiator::path::classify;

use super::*;
use crate::config::{Failback, NoPathRetry, PgPolicy, RrWeight, SelectorKind};

pub(super) fn config(
    policy: PgPolicy,
    selector: SelectorKind,
    npr: NoPathRetry,
    failback: Failback,
) -> MapConfig {
    MapConfig {
        wwid: "360000000000000000e00000000010001".into(),
        alias: "mpatha".into(),
        pg_policy: policy,
        selector,
        selector_text: "x 0".into(),
        rr_min_io_rq: 1,
        rr_weight: RrWeight::Uniform,
        failback,
        no_path_retry: npr,
        polling_interval: Duration::from_secs(5),
        max_polling_interval: Duration::from_secs(20),
        max_retries: MAX_RETRIES,
    }
}

/// A map, a virtual clock and what the map asked for.
struct Bed {
    map: Map,
    t0: Instant,
    now: Instant,
    dispatched: Vec<(IoId, PathId)>,
    done: Vec<(IoId, IoResult)>,
    checks: Vec<PathId>,
    logs: Vec<String>,
}

const P0: PathId = PathId(0);
const P1: PathId = PathId(1);
const P2: PathId = PathId(2);

impl Bed {
    fn new(cfg: MapConfig) -> Bed {
        let t0 = Instant::now();
        Bed {
            map: Map::new(cfg),
            t0,
            now: t0,
            dispatched: vec![],
            done: vec![],
            checks: vec![],
            logs: vec![],
        }
    }

    /// A bed with `n` paths (serial `s<i % 2>`, target `t<i / 2>`), checked up with
    /// the given priorities; events so far dropped.
    fn with_paths(cfg: MapConfig, prios: &[i32]) -> Bed {
        let mut b = Bed::new(cfg);
        for i in 0..prios.len() {
            let info = PathInfo::new(
                &format!("p{i}"),
                &format!("s{}", i % 2),
                &format!("t{}", i / 2),
            );
            b.map.add_path(b.now, PathId(i as u64), info).unwrap();
        }
        b.map.handle_timeout(b.now);
        for (i, prio) in prios.iter().enumerate() {
            b.check(PathId(i as u64), *prio);
        }
        b.drain();
        b.clear();
        b
    }

    fn drain(&mut self) {
        while let Some(e) = self.map.poll_event() {
            match e {
                Event::Dispatch { io, path } => self.dispatched.push((io, path)),
                Event::Done { io, result } => self.done.push((io, result)),
                Event::CheckPath(p) => self.checks.push(p),
                Event::Log { message, .. } => self.logs.push(message),
            }
        }
    }

    fn clear(&mut self) {
        self.dispatched.clear();
        self.done.clear();
        self.checks.clear();
        self.logs.clear();
    }

    fn submit(&mut self) -> IoId {
        let io = self.map.submit(self.now, 4096);
        self.drain();
        io
    }

    /// Submit `n` I/Os, completing each at once: the paths chosen, in order.
    fn sequence(&mut self, n: usize) -> Vec<u64> {
        (0..n)
            .map(|_| {
                let io = self.submit();
                let path = self.dispatched.last().unwrap().1;
                self.complete(io, Outcome::Final);
                path.0
            })
            .collect()
    }

    fn complete(&mut self, io: IoId, o: Outcome) {
        self.map.handle_completion(self.now, io, o).unwrap();
        self.drain();
    }

    /// The driver withdrew `io` from a dead path.
    fn withdrawn(&mut self, io: IoId) {
        let why = "withdrawn".into();
        self.complete(io, Outcome::PathError { why });
    }

    fn logged(&self, what: &str) -> bool {
        self.logs.iter().any(|l| l.contains(what))
    }

    fn check(&mut self, p: PathId, prio: i32) {
        let r = CheckResult::Up { prio, alua: None };
        self.map.handle_check(self.now, p, r).unwrap();
        self.drain();
    }

    fn check_down(&mut self, p: PathId) {
        let r = CheckResult::Down {
            why: "TEST UNIT READY timed out".into(),
        };
        self.map.handle_check(self.now, p, r).unwrap();
        self.drain();
    }

    fn down(&mut self, p: PathId) {
        let why = hydra_initiator::DownReason::NopTimeout.to_string();
        self.map
            .handle_path_event(self.now, p, PathEvent::Down { why })
            .unwrap();
        self.drain();
    }

    /// Both paths of a two-path map lose their session.
    fn both_down(&mut self) {
        self.down(P0);
        self.down(P1);
    }

    /// Move the virtual clock by `secs`, running every timeout on the way.
    fn advance(&mut self, secs: u64) {
        let end = self.now + Duration::from_secs(secs);
        while let Some(t) = self.map.poll_timeout().filter(|t| *t <= end) {
            self.now = self.now.max(t);
            self.map.handle_timeout(self.now);
            self.drain();
            // Outstanding checks are answered by the test, not here: stop if the
            // only deadline left is one already handled.
            if self.map.poll_timeout() == Some(t) {
                break;
            }
        }
        self.now = end;
        self.map.handle_timeout(self.now);
        self.drain();
    }

    fn state(&self, p: PathId) -> (DmState, CheckerState) {
        let p = self.map.path(p).unwrap();
        (p.dm_state, p.checker)
    }

    fn groups(&self) -> Vec<Vec<u64>> {
        self.map
            .groups()
            .iter()
            .map(|g| g.paths.iter().map(|p| p.0).collect())
            .collect()
    }

    fn secs(&self) -> u64 {
        (self.now - self.t0).as_secs()
    }
}

fn rr(policy: PgPolicy) -> MapConfig {
    config(
        policy,
        SelectorKind::RoundRobin,
        NoPathRetry::Fail,
        Failback::Manual,
    )
}

// ----- grouping --------------------------------------------------------------------

#[test]
fn failover_makes_one_group_per_path_highest_priority_first() {
    let b = Bed::with_paths(rr(PgPolicy::Failover), &[10, 50, 1]);
    assert_eq!(b.groups(), vec![vec![1], vec![0], vec![2]]);
    let prios: Vec<i32> = b.map.groups().iter().map(|g| g.prio).collect();
    assert_eq!(prios, vec![50, 10, 1]);
}

#[test]
fn multibus_puts_every_path_in_one_group_with_the_mean_priority() {
    let b = Bed::with_paths(rr(PgPolicy::Multibus), &[10, 50, 1]);
    assert_eq!(b.groups(), vec![vec![0, 1, 2]]);
    assert_eq!(b.map.groups()[0].prio, 20);
    assert_eq!(b.map.groups()[0].enabled_paths, 3);
}

#[test]
fn group_by_prio_groups_equal_priorities_best_first() {
    // ALUA: two active/optimized ports (50), one non-optimized (10), one standby (1).
    let b = Bed::with_paths(rr(PgPolicy::GroupByPrio), &[10, 50, 1, 50]);
    assert_eq!(b.groups(), vec![vec![1, 3], vec![0], vec![2]]);
    assert_eq!(AluaState::ActiveOptimized.prio(false), 50);
    assert_eq!(AluaState::ActiveNonOptimized.prio(true), 90);
}

#[test]
fn group_by_serial_and_node_name_use_their_keys() {
    // Path i: serial s<i % 2>, target t<i / 2>.
    let b = Bed::with_paths(rr(PgPolicy::GroupBySerial), &[1, 1, 1, 1]);
    assert_eq!(b.groups(), vec![vec![0, 2], vec![1, 3]]);
    let b = Bed::with_paths(rr(PgPolicy::GroupByNodeName), &[1, 1, 1, 1]);
    assert_eq!(b.groups(), vec![vec![0, 1], vec![2, 3]]);
}

#[test]
fn equal_priorities_rank_by_enabled_paths_and_down_paths_do_not_count() {
    let mut b = Bed::with_paths(rr(PgPolicy::GroupByNodeName), &[5, 5, 5, 5]);
    b.check_down(PathId(0));
    // A checker state change updates the groups' numbers but does not reorder them
    // (no reload)...
    assert_eq!(b.groups(), vec![vec![0, 1], vec![2, 3]]);
    assert_eq!(b.map.groups()[0].enabled_paths, 1);
    assert_eq!(b.map.groups()[0].prio, 5);
    // ...a reload does: group t0 has one path up (prio 5), t1 two, so t1 first.
    let order: Vec<Vec<PathId>> = group::build(PgPolicy::GroupByNodeName, b.map.paths())
        .into_iter()
        .map(|g| g.paths)
        .collect();
    assert_eq!(order, vec![vec![P2, PathId(3)], vec![P0, P1]]);
    b.map
        .add_path(b.now, PathId(4), PathInfo::new("p4", "s", "t9"))
        .unwrap();
    assert_eq!(b.groups()[..2], [vec![2, 3], vec![0, 1]]);
}

// ----- selectors ---------------------------------------------------------------------

#[test]
fn round_robin_takes_turns_and_honours_rr_min_io_rq() {
    let mut b = Bed::with_paths(rr(PgPolicy::Multibus), &[1, 1, 1]);
    assert_eq!(b.sequence(6), vec![0, 1, 2, 0, 1, 2]);
    let mut cfg = rr(PgPolicy::Multibus);
    cfg.rr_min_io_rq = 2;
    let mut b = Bed::with_paths(cfg, &[1, 1, 1]);
    assert_eq!(b.sequence(7), vec![0, 0, 1, 1, 2, 2, 0]);
}

#[test]
fn round_robin_with_rr_weight_priorities_sends_prio_times_more() {
    let mut cfg = rr(PgPolicy::Multibus);
    cfg.rr_weight = RrWeight::Priorities;
    let mut b = Bed::with_paths(cfg, &[3, 1]);
    assert_eq!(b.sequence(8), vec![0, 0, 0, 1, 0, 0, 0, 1]);
}

#[test]
fn round_robin_skips_a_failed_path() {
    let mut b = Bed::with_paths(rr(PgPolicy::Multibus), &[1, 1, 1]);
    b.map.fail_path(b.now, P1).unwrap();
    assert_eq!(b.sequence(4), vec![0, 2, 0, 2]);
}

#[test]
fn queue_length_picks_the_path_with_fewest_in_flight_and_rotates_ties() {
    let mut cfg = rr(PgPolicy::Multibus);
    cfg.selector = SelectorKind::QueueLength;
    let mut b = Bed::with_paths(cfg, &[1, 1, 1]);
    // Three I/Os held: one on each path, in rotation.
    let held: Vec<IoId> = (0..3).map(|_| b.submit()).collect();
    let on: Vec<u64> = b.dispatched.iter().map(|d| d.1 .0).collect();
    assert_eq!(on, vec![1, 2, 0]);
    // Path 2's I/O completes: it is the least loaded, whatever the rotation.
    let (io2, _) = b.dispatched[1];
    b.complete(io2, Outcome::Final);
    b.submit();
    assert_eq!(b.dispatched.last().unwrap().1, P2);
    b.submit();
    // Now all have one: the rotation decides.
    assert_eq!(b.map.paths().iter().map(|p| p.in_flight).sum::<u32>(), 4);
    assert_eq!(held.len(), 3);
}

#[test]
fn service_time_weighs_bytes_in_flight_by_relative_throughput() {
    let mut cfg = rr(PgPolicy::Multibus);
    cfg.selector = SelectorKind::ServiceTime;
    let mut b = Bed::new(cfg);
    let mut fast = PathInfo::new("fast", "s", "t");
    fast.relative_throughput = 4;
    b.map
        .add_path(b.now, P0, PathInfo::new("slow", "s", "t"))
        .unwrap();
    b.map.add_path(b.now, P1, fast).unwrap();
    b.drain();
    b.clear();
    // 1 MiB on each in turn: the fast path takes 4 before the slow one is worth it
    // ((4 MiB + 1 MiB)/4 > (0 + 1 MiB)/1 only at the fifth).
    let chosen: Vec<u64> = (0..6)
        .map(|_| {
            b.map.submit(b.now, 1 << 20);
            b.drain();
            b.dispatched.last().unwrap().1 .0
        })
        .collect();
    assert_eq!(chosen, vec![1, 1, 1, 1, 0, 1]);
}

// ----- failover ------------------------------------------------------------------------

fn failover_map(npr: NoPathRetry, failback: Failback) -> Bed {
    let cfg = config(PgPolicy::Failover, SelectorKind::ServiceTime, npr, failback);
    Bed::with_paths(cfg, &[50, 10])
}

#[test]
fn silent_cut_fails_the_path_and_the_io_goes_to_the_other_one() {
    let mut b = failover_map(NoPathRetry::Fail, Failback::Manual);
    let io = b.submit();
    assert_eq!(b.dispatched, vec![(io, P0)]);
    // NOP-Out unanswered: the session reports Down, the driver withdraws the I/O.
    b.down(P0);
    assert_eq!(b.state(P0), (DmState::Failed, CheckerState::Faulty));
    assert!(b.logged("no answer to NOP-Out"), "{:?}", b.logs);
    assert!(b.logged("remaining active paths: 1"));
    b.withdrawn(io);
    assert_eq!(b.dispatched, vec![(io, P0), (io, P1)]);
    assert_eq!(b.map.active_group(), Some(1));
    assert!(b.done.is_empty());
    b.complete(io, Outcome::Final);
    assert_eq!(b.done, vec![(io, IoResult::Completed)]);
    assert_eq!(b.map.stats().switch_group, 1);
}

#[test]
fn a_path_error_on_completion_fails_the_path_without_a_session_event() {
    let mut b = failover_map(NoPathRetry::Fail, Failback::Manual);
    let io = b.submit();
    // NOT READY, ALUA standby: a path error by Linux's rules.
    let o = Outcome::from_verdict(classify(0x02, Some((0x02, 0x04, 0x0b))));
    b.complete(io, o);
    assert_eq!(b.state(P0).0, DmState::Failed);
    assert_eq!(b.dispatched.last(), Some(&(io, P1)));
}

#[test]
fn target_error_goes_back_at_once_and_is_not_retried() {
    let mut b = failover_map(NoPathRetry::Queue, Failback::Manual);
    let io = b.submit();
    // MEDIUM ERROR, unrecovered read error.
    b.complete(
        io,
        Outcome::from_verdict(classify(0x02, Some((0x03, 0x11, 0x00)))),
    );
    assert_eq!(b.dispatched.len(), 1);
    assert_eq!(b.done, vec![(io, IoResult::Completed)]);
    assert_eq!(b.state(P0).0, DmState::Active);
}

#[test]
fn reservation_conflict_is_returned_at_once_on_every_path() {
    let mut b = Bed::with_paths(
        config(
            PgPolicy::Multibus,
            SelectorKind::RoundRobin,
            NoPathRetry::Queue,
            Failback::Manual,
        ),
        &[1, 1],
    );
    for want in [P0, P1, P0] {
        let io = b.submit();
        assert_eq!(b.dispatched.last(), Some(&(io, want)));
        b.complete(io, Outcome::from_verdict(classify(0x18, None)));
        assert_eq!(b.done.last(), Some(&(io, IoResult::Completed)));
    }
    assert_eq!(b.dispatched.len(), 3, "no I/O was sent twice");
    assert_eq!(b.map.usable_paths(), 2);
}

#[test]
fn retry_stays_on_the_path_a_bounded_number_of_times_then_fails_it() {
    let mut b = failover_map(NoPathRetry::Fail, Failback::Manual);
    let io = b.submit();
    for _ in 0..MAX_RETRIES {
        b.complete(io, Outcome::from_verdict(classify(0x08, None)));
        assert_eq!(b.dispatched.last(), Some(&(io, P0)));
    }
    b.complete(io, Outcome::Retry);
    assert_eq!(b.dispatched.last(), Some(&(io, P1)));
    assert_eq!(b.dispatched.len(), MAX_RETRIES as usize + 2);
    assert!(b.logged("retries exhausted"));
}

#[test]
fn both_paths_down_with_queue_holds_io_until_a_path_returns() {
    let mut b = failover_map(NoPathRetry::Queue, Failback::Manual);
    let io = b.submit();
    b.both_down();
    b.withdrawn(io);
    let io2 = b.submit();
    assert_eq!(b.map.queued(), 2);
    b.advance(3600);
    assert!(b.done.is_empty(), "queue holds for ever: {:?}", b.done);
    // The session logs in again; the checker answers; the I/O flows.
    b.map.handle_path_event(b.now, P1, PathEvent::Up).unwrap();
    b.drain();
    b.advance(0);
    assert!(b.checks.contains(&P1));
    b.check(P1, 10);
    assert_eq!(
        &b.dispatched[b.dispatched.len() - 2..],
        &[(io, P1), (io2, P1)]
    );
    assert!(b.logged("Recovered to normal mode"));
}

#[test]
fn no_path_retry_n_fails_queued_io_after_n_intervals_with_the_reason() {
    let mut b = failover_map(NoPathRetry::Retries(3), Failback::Manual);
    let io = b.submit();
    b.both_down();
    assert!(b.logged("Entering recovery mode: max_retries=3"));
    b.withdrawn(io);
    assert_eq!(b.map.queueing_display(b.now), "15 sec");
    b.advance(14);
    assert!(b.done.is_empty());
    b.advance(1);
    assert_eq!(b.secs(), 15);
    let [(done, IoResult::NoPath { why })] = &b.done[..] else {
        panic!("expected one EIO, got {:?}", b.done);
    };
    assert_eq!(*done, io);
    assert!(
        why.contains("no_path_retry 3") && why.contains("15 s"),
        "{why}"
    );
    assert!(b.logged("queueing disabled"));
    assert_eq!(b.map.stats().queue_timeouts, 1);
    // Queueing is off: a new I/O fails at once.
    let io2 = b.submit();
    assert!(matches!(b.done.last(), Some((i, IoResult::NoPath { .. })) if *i == io2));
    // A path comes back: queueing is armed again.
    b.check(P0, 50);
    assert!(b.logged("queue_if_no_path enabled"));
    assert_eq!(b.map.queueing_display(b.now), "3 chk");
}

#[test]
fn no_path_retry_fail_fails_at_once() {
    let mut b = failover_map(NoPathRetry::Fail, Failback::Manual);
    b.both_down();
    let io = b.submit();
    let [(done, IoResult::NoPath { why })] = &b.done[..] else {
        panic!("{:?}", b.done);
    };
    assert_eq!(*done, io);
    assert!(why.contains("no_path_retry is fail"), "{why}");
}

/// P0 (prio 50) fails, the map runs on P1; P0 comes back at t=0.
fn fail_over_and_back(failback: Failback) -> Bed {
    let mut b = failover_map(NoPathRetry::Fail, failback);
    b.down(P0);
    b.sequence(1);
    assert_eq!(b.map.active_group(), Some(1));
    b.check(P0, 50);
    assert_eq!(b.state(P0), (DmState::Active, CheckerState::Ready));
    b
}

#[test]
fn failback_immediate_returns_to_the_best_group_at_once() {
    let mut b = fail_over_and_back(Failback::Immediate);
    assert_eq!(b.map.active_group(), Some(0));
    assert_eq!(b.sequence(1), vec![0]);
}

#[test]
fn failback_manual_stays_until_the_operator_switches() {
    let mut b = fail_over_and_back(Failback::Manual);
    b.advance(600);
    assert_eq!(b.map.active_group(), Some(1));
    assert_eq!(b.sequence(1), vec![1]);
    b.map.switch_group(1).unwrap();
    assert_eq!(b.sequence(1), vec![0]);
    assert!(b.map.switch_group(3).is_err());
}

#[test]
fn failback_deferred_waits_n_seconds() {
    let mut b = fail_over_and_back(Failback::Deferred(30));
    b.advance(29);
    assert_eq!(b.map.active_group(), Some(1));
    b.advance(1);
    assert_eq!(b.map.active_group(), Some(0));
    assert!(b.logged("deferred failback"));
}

#[test]
fn failback_followover_only_when_the_best_group_comes_back() {
    let b = fail_over_and_back(Failback::FollowOver);
    assert_eq!(b.map.active_group(), Some(0));
    // Group by node name: {p0, p1} prio 50, {p2} prio 10. The operator moves to
    // the second group; p1 failing and coming back is not the group's return.
    let cfg = config(
        PgPolicy::GroupByNodeName,
        SelectorKind::RoundRobin,
        NoPathRetry::Fail,
        Failback::FollowOver,
    );
    let mut b = Bed::with_paths(cfg, &[50, 50, 10]);
    b.map.switch_group(2).unwrap();
    b.map.fail_path(b.now, P1).unwrap();
    b.check(P1, 50);
    assert_eq!(b.state(P1).0, DmState::Active);
    assert_eq!(b.map.active_group(), Some(1));
    // Both paths of the first group fail and one returns: the group came back.
    b.sequence(1);
    b.check_down(P0);
    b.check_down(P1);
    b.check(P0, 50);
    assert_eq!(b.map.active_group(), Some(0));
}

// ----- checker schedule ------------------------------------------------------------------

#[test]
fn checks_double_while_healthy_up_to_max_and_reset_on_change() {
    let mut b = Bed::new(rr(PgPolicy::Failover));
    b.map
        .add_path(b.now, P0, PathInfo::new("p0", "s", "t"))
        .unwrap();
    let mut asked = vec![];
    let mut answer = |b: &mut Bed, up: bool| {
        let t = b.map.poll_timeout().unwrap();
        b.advance((t - b.now).as_secs());
        assert_eq!(b.checks, vec![P0]);
        asked.push(b.secs());
        b.clear();
        if up {
            b.check(P0, 1)
        } else {
            b.check_down(P0)
        }
    };
    for up in [true, true, true, true, true, false, false, true, true] {
        answer(&mut b, up);
    }
    // Undef→ready is a change (5), then 10, 20, 20 (max), down (5), still down (5),
    // up (5), then doubling again.
    assert_eq!(asked, vec![0, 5, 15, 35, 55, 75, 80, 85, 90]);
    assert_eq!(
        b.map.path(P0).unwrap().check_interval,
        Duration::from_secs(10)
    );
}

#[test]
fn session_up_asks_for_a_check_at_once() {
    let mut b = failover_map(NoPathRetry::Fail, Failback::Manual);
    b.down(P0);
    b.advance(1);
    assert!(b.checks.is_empty());
    b.map.handle_path_event(b.now, P0, PathEvent::Up).unwrap();
    b.advance(0);
    assert_eq!(b.checks, vec![P0]);
}

// ----- operator commands and bad input ----------------------------------------------------

#[test]
fn fail_and_reinstate_path_by_hand() {
    let mut b = Bed::with_paths(rr(PgPolicy::Multibus), &[1, 1]);
    b.map.fail_path(b.now, P0).unwrap();
    assert!(b.map.poll_event().is_some());
    assert_eq!(b.state(P0).0, DmState::Failed);
    assert_eq!(
        b.map.path(P0).unwrap().failed_because.as_deref(),
        Some("failed by operator")
    );
    b.map.reinstate_path(b.now, P0).unwrap();
    assert_eq!(b.state(P0).0, DmState::Active);
    assert_eq!(b.map.stats().path_faults, 1);
}

#[test]
fn bad_handles_are_errors_naming_map_and_handle() {
    let mut b = Bed::with_paths(rr(PgPolicy::Multibus), &[1]);
    let e = b.map.fail_path(b.now, P2).unwrap_err();
    assert_eq!(e.to_string(), "mpatha: no path 2");
    let e = b
        .map
        .handle_completion(b.now, IoId(99), Outcome::Final)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "mpatha: completion for I/O 99, which is not in flight"
    );
    let e = b
        .map
        .add_path(b.now, P0, PathInfo::new("x", "s", "t"))
        .unwrap_err();
    assert!(e.to_string().contains("already in the map"));
    let io = b.submit();
    let e = b.map.remove_path(b.now, P0).unwrap_err();
    assert!(e.to_string().contains("1 I/Os in flight"), "{e}");
    b.complete(io, Outcome::Final);
    b.map.remove_path(b.now, P0).unwrap();
    assert!(b.map.groups().is_empty());
}

#[test]
fn a_new_path_releases_queued_io() {
    let mut b = Bed::new(config(
        PgPolicy::Failover,
        SelectorKind::RoundRobin,
        NoPathRetry::Queue,
        Failback::Manual,
    ));
    b.map
        .add_path(b.now, P0, PathInfo::new("p0", "s", "t"))
        .unwrap();
    b.down(P0);
    let io = b.submit();
    assert_eq!(b.map.queued(), 1);
    b.map
        .add_path(b.now, P1, PathInfo::new("p1", "s", "t"))
        .unwrap();
    b.drain();
    assert_eq!(b.dispatched.last(), Some(&(io, P1)));
}

#[test]
fn a_map_without_paths_queues_as_configured() {
    let mut b = Bed::new(config(
        PgPolicy::Failover,
        SelectorKind::RoundRobin,
        NoPathRetry::Retries(2),
        Failback::Manual,
    ));
    let io = b.submit();
    assert_eq!(b.map.queued(), 1);
    b.advance(10);
    assert!(
        matches!(&b.done[..], [(i, IoResult::NoPath { .. })] if *i == io),
        "{:?}",
        b.done
    );
}

#[test]
fn alua_switch_of_the_optimized_port_moves_io_with_failback_immediate() {
    // group_by_prio with the alua prioritizer: p0 active/optimized, p1 standby.
    let cfg = config(
        PgPolicy::GroupByPrio,
        SelectorKind::ServiceTime,
        NoPathRetry::Queue,
        Failback::Immediate,
    );
    let mut b = Bed::with_paths(cfg, &[50, 1]);
    assert_eq!(b.sequence(2), vec![0, 0]);
    // The target moves the optimized state to p1's port group (hydra tgtd can put a
    // portal group in standby); the checker sees it.
    let ghost = CheckResult::Ghost {
        prio: AluaState::Standby.prio(false),
        alua: Some(AluaState::Standby),
    };
    b.map.handle_check(b.now, P0, ghost).unwrap();
    b.drain();
    b.map
        .handle_check(
            b.now,
            P1,
            CheckResult::Up {
                prio: AluaState::ActiveOptimized.prio(false),
                alua: Some(AluaState::ActiveOptimized),
            },
        )
        .unwrap();
    b.drain();
    assert_eq!(b.groups(), vec![vec![1], vec![0]]);
    assert_eq!(b.map.group_status(0), GroupStatus::Active);
    assert_eq!(b.state(P0), (DmState::Active, CheckerState::Ghost));
    assert_eq!(b.sequence(2), vec![1, 1]);
}

#[test]
fn disablequeueing_fails_held_io_until_restorequeueing() {
    let mut b = failover_map(NoPathRetry::Queue, Failback::Manual);
    b.both_down();
    let io = b.submit();
    assert_eq!(b.map.queueing_display(b.now), "on");
    b.map.disable_queueing(b.now);
    b.drain();
    let [(done, IoResult::NoPath { why })] = &b.done[..] else {
        panic!("{:?}", b.done);
    };
    assert_eq!(*done, io);
    assert!(why.contains("disablequeueing"), "{why}");
    // A path that comes and goes does not turn queueing back on.
    b.check(P0, 50);
    b.check_down(P0);
    b.submit();
    assert_eq!(b.done.len(), 2);
    assert_eq!(b.map.queueing_display(b.now), "off");
    b.map.restore_queueing(b.now);
    b.drain();
    b.submit();
    assert_eq!((b.map.queued(), b.done.len()), (1, 2));
}

#[test]
fn session_up_during_a_check_asks_again_when_it_is_answered() {
    let mut b = failover_map(NoPathRetry::Fail, Failback::Manual);
    b.down(P0);
    b.advance(5);
    assert!(b.checks.contains(&P0));
    // The session logs in again while that check is out; the check then fails
    // (it went out on the dead connection), and the path is asked for again at once.
    b.map.handle_path_event(b.now, P0, PathEvent::Up).unwrap();
    b.check_down(P0);
    b.checks.clear();
    b.advance(0);
    assert_eq!(b.checks, vec![P0]);
    b.check(P0, 50);
    assert_eq!(b.state(P0), (DmState::Active, CheckerState::Ready));
}

#[test]
fn next_check_column_is_multipathds_progress_bar() {
    let mut b = Bed::new(rr(PgPolicy::Failover));
    b.map
        .add_path(b.now, P0, PathInfo::new("p0", "s", "t"))
        .unwrap();
    b.advance(0);
    assert_eq!(
        b.map.next_check_column(P0, b.now).unwrap(),
        ".......... 0/5"
    );
    b.check(P0, 1); // next in 5 s
    b.advance(5);
    b.check(P0, 1); // healthy: next in 10 s
    b.advance(5);
    b.check(P0, 1); // next in 20 s
    b.advance(11);
    assert_eq!(
        b.map.next_check_column(P0, b.now).unwrap(),
        "XXXX...... 9/20"
    );
    assert_eq!(b.map.next_check_column(P2, b.now), None);
}
