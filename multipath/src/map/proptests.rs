//! Random event sequences against the map's promises: every submitted I/O ends
//! exactly once; none ends with "no path" while a path is usable or queueing holds;
//! nothing is dispatched to a failed path; the map's counters agree with what the
//! driver has outstanding.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::tests::config;
use super::*;
use crate::config::{Failback, NoPathRetry, PgPolicy, SelectorKind};

const PATHS: u64 = 3;

#[derive(Debug, Clone)]
enum Op {
    Submit(u64),
    /// Complete the n-th in-flight I/O (modulo) with: 0 final, 1 retry, 2 path error.
    Complete(usize, u8),
    Down(u64),
    Up(u64),
    /// Answer an outstanding check of this path: 0 down, 1 ghost, 2.. up with prio.
    Check(u64, u8),
    Advance(u64),
    FailPath(u64),
    Reinstate(u64),
    Switch(usize),
    DisableQueueing,
    RestoreQueueing,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..1 << 20).prop_map(Op::Submit),
        4 => (any::<usize>(), 0u8..3).prop_map(|(i, o)| Op::Complete(i, o)),
        1 => (0..PATHS).prop_map(Op::Down),
        1 => (0..PATHS).prop_map(Op::Up),
        3 => (0..PATHS, 0u8..5).prop_map(|(p, r)| Op::Check(p, r)),
        2 => (0u64..30).prop_map(Op::Advance),
        1 => (0..PATHS).prop_map(Op::FailPath),
        1 => (0..PATHS).prop_map(Op::Reinstate),
        1 => (1usize..5).prop_map(Op::Switch),
        1 => Just(Op::DisableQueueing),
        1 => Just(Op::RestoreQueueing),
    ]
}

fn map_config() -> impl Strategy<Value = MapConfig> {
    (
        proptest::sample::select(PgPolicy::ALL.to_vec()),
        proptest::sample::select(vec![
            SelectorKind::RoundRobin,
            SelectorKind::QueueLength,
            SelectorKind::ServiceTime,
        ]),
        prop_oneof![
            Just(NoPathRetry::Fail),
            Just(NoPathRetry::Queue),
            (1u32..4).prop_map(NoPathRetry::Retries),
        ],
        prop_oneof![
            Just(Failback::Manual),
            Just(Failback::Immediate),
            Just(Failback::FollowOver),
            (1u32..20).prop_map(Failback::Deferred),
        ],
    )
        .prop_map(|(p, s, n, f)| config(p, s, n, f))
}

/// The driver's side: what it has in flight and which checks it owes.
struct Driver {
    map: Map,
    now: Instant,
    submitted: BTreeSet<IoId>,
    done: BTreeMap<IoId, IoResult>,
    in_flight: BTreeMap<IoId, PathId>,
    checks: BTreeSet<PathId>,
}

impl Driver {
    /// Run the map's events after one input, checking each against the map's state
    /// once the input is handled.
    fn drain(&mut self) -> std::result::Result<(), TestCaseError> {
        let mut dispatched = vec![];
        let mut no_path = false;
        while let Some(e) = self.map.poll_event() {
            match e {
                Event::Dispatch { io, path } => {
                    prop_assert!(self.submitted.contains(&io), "{io} never submitted");
                    prop_assert!(!self.done.contains_key(&io), "{io} dispatched after Done");
                    prop_assert!(
                        self.in_flight.insert(io, path).is_none(),
                        "{io} dispatched twice at once"
                    );
                    dispatched.push(path);
                }
                Event::Done { io, result } => {
                    prop_assert!(self.submitted.contains(&io));
                    prop_assert!(
                        !self.in_flight.contains_key(&io),
                        "{io} done while in flight"
                    );
                    no_path |= matches!(result, IoResult::NoPath { .. });
                    prop_assert!(self.done.insert(io, result).is_none(), "{io} done twice");
                }
                Event::CheckPath(p) => {
                    prop_assert!(self.checks.insert(p), "check of {p} asked twice");
                }
                Event::Log { .. } => {}
            }
        }
        let holding = matches!(self.map.queue_state(), QueueState::Recovery { .. });
        for p in dispatched {
            prop_assert!(
                self.map.path(p).is_some_and(Path::usable),
                "sent on failed {p}"
            );
        }
        if no_path {
            prop_assert_eq!(self.map.usable_paths(), 0, "EIO with a usable path");
            prop_assert!(!holding, "EIO while queueing holds");
        }
        if self.map.queued() > 0 {
            prop_assert_eq!(self.map.usable_paths(), 0, "queued with a usable path");
            prop_assert!(holding, "queued while queueing is off");
        }
        prop_assert_eq!(
            self.map.pending(),
            self.submitted.len() - self.done.len(),
            "pending count"
        );
        prop_assert_eq!(self.map.pending(), self.in_flight.len() + self.map.queued());
        let counted: u32 = self.map.paths().iter().map(|p| p.in_flight).sum();
        prop_assert_eq!(counted as usize, self.in_flight.len());
        Ok(())
    }

    fn step(&mut self, op: Op) -> std::result::Result<(), TestCaseError> {
        let now = self.now;
        match op {
            Op::Submit(bytes) => {
                let io = self.map.submit(now, bytes);
                self.submitted.insert(io);
            }
            Op::Complete(i, o) => {
                if self.in_flight.is_empty() {
                    return Ok(());
                }
                let io = *self.in_flight.keys().nth(i % self.in_flight.len()).unwrap();
                self.in_flight.remove(&io);
                let o = match o {
                    0 => Outcome::Final,
                    1 => Outcome::Retry,
                    _ => Outcome::PathError {
                        why: "connection reset".into(),
                    },
                };
                self.map.handle_completion(now, io, o).unwrap();
            }
            Op::Down(p) => {
                let why = "reset".into();
                self.map
                    .handle_path_event(now, PathId(p), PathEvent::Down { why })
                    .unwrap();
            }
            Op::Up(p) => self
                .map
                .handle_path_event(now, PathId(p), PathEvent::Up)
                .unwrap(),
            Op::Check(p, r) => {
                if !self.checks.remove(&PathId(p)) {
                    return Ok(());
                }
                let res = match r {
                    0 => CheckResult::Down { why: "tur".into() },
                    1 => CheckResult::Ghost {
                        prio: 1,
                        alua: None,
                    },
                    n => CheckResult::Up {
                        prio: 10 * n as i32,
                        alua: None,
                    },
                };
                self.map.handle_check(now, PathId(p), res).unwrap();
            }
            Op::Advance(s) => {
                self.now += Duration::from_secs(s);
                self.map.handle_timeout(self.now);
            }
            Op::FailPath(p) => self.map.fail_path(now, PathId(p)).unwrap(),
            Op::Reinstate(p) => self.map.reinstate_path(now, PathId(p)).unwrap(),
            Op::DisableQueueing => self.map.disable_queueing(now),
            Op::RestoreQueueing => self.map.restore_queueing(now),
            Op::Switch(g) => {
                let _ = self.map.switch_group(g);
            }
        }
        self.drain()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_io_ends_once_and_never_without_cause(
        cfg in map_config(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut d = Driver {
            map: Map::new(cfg),
            now: Instant::now(),
            submitted: BTreeSet::new(),
            done: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            checks: BTreeSet::new(),
        };
        for p in 0..PATHS {
            d.map.add_path(d.now, PathId(p), PathInfo::new(&format!("p{p}"), "s", "t")).unwrap();
        }
        d.drain()?;
        for op in ops {
            d.step(op)?;
        }
        // Settle: every path answers its checks and comes up, every dispatch ends.
        for round in 0..50 {
            for p in 0..PATHS {
                d.step(Op::Up(p))?;
                d.step(Op::Advance(0))?;
                d.step(Op::Check(p, 2))?;
            }
            while !d.in_flight.is_empty() {
                d.step(Op::Complete(0, (round % 3) as u8))?;
            }
            if d.map.pending() == 0 {
                break;
            }
        }
        prop_assert_eq!(d.map.pending(), 0);
        prop_assert_eq!(d.done.len(), d.submitted.len(), "an I/O never ended");
    }
}
