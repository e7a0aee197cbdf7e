//! The supervisor's decisions, without I/O: events in (the child started or exited, a probe
//! round's result, the restart timer, a stop), actions out (fail open, intercept, kill, spawn,
//! manage, release). The driver in `mod.rs` turns sockets, signals, timers and the child's exit
//! into events and carries out the actions in order; every transition is unit-tested below.

use std::time::{Duration, Instant};

/// The supervisor's fixed rules; the defaults are what it runs with (`hung_after` comes from
/// `-probefailures`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Failed probe rounds in a row after which a child that has answered is declared hung.
    pub hung_after: u32,
    /// How long a child that never answered may take before it is declared hung.
    pub startup_grace: Duration,
    /// The longest wait before starting the child again after it exited.
    pub max_backoff: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { hung_after: 2, startup_grace: Duration::from_secs(60), max_backoff: Duration::from_secs(5) }
    }
}

/// What happened, as the driver saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A child process was started.
    Spawned { pid: u32 },
    /// Starting a child failed.
    SpawnFailed,
    /// A child process ended (any child: the driver does not filter).
    Exited { pid: u32 },
    /// The restart timer set by [`Action::RestartAt`] fired.
    RestartDue,
    /// One probe round ended: whether every local IP answered (`None`: no child to probe), and
    /// what the other instances on the node look like at that moment.
    Probed { answered: Option<bool>, peers: Peers },
    /// A stop signal arrived.
    Stop { peers: Peers },
}

/// The other kdns node-cache instances on this node (a DaemonSet surge runs two).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Peers {
    /// At least one other instance runs.
    pub others: bool,
    /// At least one of them started after this one.
    pub newer: bool,
}

/// What the driver must do, in the order given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Hand DNS to the cluster DNS (the fail-open rule set), for this reason.
    FailOpen(&'static str),
    /// Take DNS on the local IPs back (the intercepting rule set).
    Intercept,
    /// Re-apply the rule set of the current mode (this instance just became the manager).
    Sync,
    /// Start managing (true) or stop managing (false) the interface and rules.
    Manage(bool),
    /// What `/ready` says.
    Ready(bool),
    /// SIGKILL the child: it did not answer `failed_rounds` probe rounds in a row.
    Kill { pid: u32, failed_rounds: u32 },
    /// Start the child now.
    Spawn,
    /// Emit [`Event::RestartDue`] at this time (replaces an earlier timer).
    RestartAt(Instant),
    /// A probe round failed (the counter).
    CountProbeFailure,
    /// The child with this pid is a restart after an exit (the counter, a log line).
    Restarted(u32),
    /// Remove interface and rules: the last instance on the node stops.
    TearDown,
    /// Leave interface and rules to the other instance and stop syncing.
    HandOver,
    /// Stop the child with the signal the supervisor got and wait for it.
    StopChild(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Child {
    pid: u32,
    /// Answered at least one probe round.
    answered: bool,
    started: Instant,
    /// Killed by us as hung; its exit is on the way.
    killed: bool,
}

/// The supervisor's state.
#[derive(Debug)]
pub struct Machine {
    limits: Limits,
    child: Option<Child>,
    /// Failed probe rounds in a row.
    failures: u32,
    backoff: Duration,
    /// A child is to be started at this time.
    restart_at: Option<Instant>,
    /// The next spawn is a restart (counted), not the first start.
    restarting: bool,
    failed_open: bool,
    managing: bool,
    /// Some child of ours has answered a probe: from then on a newer-less instance manages
    /// even while other instances run.
    answered_once: bool,
    stopped: bool,
}

impl Machine {
    /// A supervisor that has just started: failed open (DNS goes to the cluster DNS until the
    /// child answers) and managing when no other instance runs.
    pub fn new(limits: Limits, peers: Peers) -> (Machine, Vec<Action>) {
        let managing = !peers.others;
        let m = Machine {
            limits,
            child: None,
            failures: 0,
            backoff: Duration::ZERO,
            restart_at: None,
            restarting: false,
            failed_open: true,
            managing,
            answered_once: false,
            stopped: false,
        };
        (m, vec![Action::Manage(managing), Action::Sync, Action::Spawn])
    }

    pub fn is_failed_open(&self) -> bool {
        self.failed_open
    }

    pub fn is_managing(&self) -> bool {
        self.managing
    }

    /// The child the machine tracks, if any.
    pub fn child(&self) -> Option<u32> {
        self.child.map(|c| c.pid)
    }

    /// Whether a probe round means anything now: a child runs and is not being killed.
    pub fn wants_probe(&self) -> bool {
        self.child.is_some_and(|c| !c.killed)
    }

    /// Feeds one event at time `now`; returns what to do.
    pub fn on(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.stopped {
            return out;
        }
        match event {
            Event::Spawned { pid } => {
                if std::mem::take(&mut self.restarting) {
                    out.push(Action::Restarted(pid));
                }
                self.child = Some(Child { pid, answered: false, started: now, killed: false });
                self.failures = 0;
            }
            Event::SpawnFailed => {
                self.restarting = true;
                self.schedule_restart(now + self.limits.max_backoff, &mut out);
            }
            Event::Exited { pid } => {
                if self.child.is_none_or(|c| c.pid != pid) {
                    return out;
                }
                self.child = None;
                self.failures = 0;
                out.push(Action::Ready(false));
                self.fail_open("exited", &mut out);
                self.restarting = true;
                self.schedule_restart(now + self.backoff, &mut out);
                self.backoff = (self.backoff * 2).clamp(Duration::from_millis(200), self.limits.max_backoff);
            }
            Event::RestartDue => {
                if self.restart_at.take().is_some() && self.child.is_none() {
                    out.push(Action::Spawn);
                }
            }
            Event::Probed { answered, peers } => self.probed(answered, peers, now, &mut out),
            Event::Stop { peers } => {
                self.stopped = true;
                self.restart_at = None;
                out.push(Action::Ready(false));
                if peers.others {
                    self.managing = false;
                    out.push(Action::Manage(false));
                    out.push(Action::HandOver);
                } else {
                    out.push(Action::TearDown);
                }
                if let Some(c) = self.child.take() {
                    out.push(Action::StopChild(c.pid));
                }
            }
        }
        out
    }

    fn probed(&mut self, answered: Option<bool>, peers: Peers, now: Instant, out: &mut Vec<Action>) {
        // Only a live child's answers count: one being killed is judged by its exit, and
        // without a child a result is stray.
        let answered = if self.wants_probe() { answered } else { None };
        if answered == Some(true) {
            self.answered_once = true;
        }
        // The newest instance manages, but only once a server of its own answers: a surge
        // instance that is still starting leaves the running one's interception alone.
        let manage = !peers.newer && (self.answered_once || !peers.others);
        if manage != self.managing {
            self.managing = manage;
            out.push(Action::Manage(manage));
            // Taking over: put this instance's rule set in place, unless intercepting below
            // does it anyway.
            if manage && !(answered == Some(true) && self.failed_open) {
                out.push(Action::Sync);
            }
        }
        out.push(Action::Ready(answered == Some(true)));
        let Some(child) = self.child.as_mut() else { return };
        match answered {
            None => {}
            Some(true) => {
                child.answered = true;
                self.failures = 0;
                if self.failed_open {
                    self.failed_open = false;
                    out.push(Action::Intercept);
                    self.backoff = Duration::ZERO;
                }
            }
            Some(false) => {
                self.failures += 1;
                out.push(Action::CountProbeFailure);
                let hung = if child.answered {
                    self.failures >= self.limits.hung_after
                } else {
                    now.saturating_duration_since(child.started) > self.limits.startup_grace
                };
                if hung {
                    child.killed = true;
                    let (pid, failed_rounds) = (child.pid, self.failures);
                    self.failures = 0;
                    self.fail_open("hung", out);
                    out.push(Action::Kill { pid, failed_rounds });
                }
            }
        }
    }

    fn fail_open(&mut self, reason: &'static str, out: &mut Vec<Action>) {
        if !self.failed_open {
            self.failed_open = true;
            out.push(Action::FailOpen(reason));
        }
    }

    fn schedule_restart(&mut self, at: Instant, out: &mut Vec<Action>) {
        self.restart_at = Some(at);
        out.push(Action::RestartAt(at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    const ALONE: Peers = Peers { others: false, newer: false };
    const OLDER_PEER: Peers = Peers { others: true, newer: false };
    const NEWER_PEER: Peers = Peers { others: true, newer: true };
    const MS: Duration = Duration::from_millis(1);

    fn answered(ok: bool) -> Event {
        Event::Probed { answered: Some(ok), peers: ALONE }
    }

    /// A lone supervisor whose child (pid 10) has answered once: intercepting, managing.
    fn serving(t0: Instant) -> Machine {
        let (mut m, _) = Machine::new(Limits::default(), ALONE);
        m.on(Event::Spawned { pid: 10 }, t0);
        assert_eq!(m.on(answered(true), t0), vec![Ready(true), Intercept]);
        m
    }

    #[test]
    fn a_new_supervisor_falls_back_manages_when_alone_and_starts_the_child() {
        let (m, first) = Machine::new(Limits::default(), ALONE);
        assert_eq!(first, vec![Manage(true), Sync, Spawn]);
        assert!(m.is_failed_open() && m.is_managing());
        let (m, first) = Machine::new(Limits::default(), OLDER_PEER);
        assert_eq!(first, vec![Manage(false), Sync, Spawn], "a surge instance leaves the running one alone");
        assert!(!m.is_managing());
    }

    #[test]
    fn the_first_answer_intercepts_and_later_answers_change_nothing() {
        let t0 = Instant::now();
        let mut m = serving(t0);
        assert!(!m.is_failed_open());
        assert_eq!(m.on(answered(true), t0 + 500 * MS), vec![Ready(true)]);
    }

    /// The table: after a serving child, these probe results in a row lead to these actions.
    #[test]
    fn probe_failures_in_a_row() {
        let cases: &[(&[bool], &[Action])] = &[
            (&[false], &[Ready(false), CountProbeFailure]),
            (&[false, true], &[Ready(true)]),
            (&[false, false], &[Ready(false), CountProbeFailure, FailOpen("hung"), Kill { pid: 10, failed_rounds: 2 }]),
            // A success in between starts the count again.
            (&[false, true, false], &[Ready(false), CountProbeFailure]),
            // Once killed, rounds count for nothing until its exit is seen.
            (&[false, false, false], &[Ready(false)]),
        ];
        for (rounds, last) in cases {
            let t0 = Instant::now();
            let mut m = serving(t0);
            let mut got = Vec::new();
            for (i, ok) in rounds.iter().enumerate() {
                got = m.on(answered(*ok), t0 + (i as u32 + 1) * 500 * MS);
            }
            assert_eq!(&got[..], *last, "rounds {rounds:?}");
        }
    }

    #[test]
    fn a_child_that_never_answered_gets_the_startup_grace() {
        let t0 = Instant::now();
        let (mut m, _) = Machine::new(Limits::default(), ALONE);
        m.on(Event::Spawned { pid: 7 }, t0);
        for i in 1..=100 {
            let acts = m.on(answered(false), t0 + i * 500 * MS);
            assert_eq!(acts, vec![Ready(false), CountProbeFailure], "round {i} is inside the grace");
        }
        let acts = m.on(answered(false), t0 + Duration::from_secs(61));
        assert_eq!(
            acts,
            vec![Ready(false), CountProbeFailure, Kill { pid: 7, failed_rounds: 101 }],
            "already failed open"
        );
    }

    #[test]
    fn an_exit_fails_open_and_restarts_with_a_growing_backoff_that_an_answer_resets() {
        let t0 = Instant::now();
        let mut m = serving(t0);
        assert_eq!(m.on(Event::Exited { pid: 99 }, t0), vec![], "not our child");
        assert_eq!(m.on(Event::Exited { pid: 10 }, t0), vec![Ready(false), FailOpen("exited"), RestartAt(t0)]);
        assert_eq!(m.child(), None);
        assert_eq!(m.on(answered(true), t0), vec![Ready(false)], "nothing to probe: a stray result changes nothing");
        assert_eq!(m.on(Event::RestartDue, t0), vec![Spawn]);
        assert_eq!(m.on(Event::RestartDue, t0), vec![], "one timer, one spawn");
        assert_eq!(m.on(Event::Spawned { pid: 11 }, t0), vec![Restarted(11)]);
        // It dies again before answering: already failed open, the backoff has grown.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(m.on(Event::Exited { pid: 11 }, t1), vec![Ready(false), RestartAt(t1 + 200 * MS)]);
        m.on(Event::RestartDue, t1);
        m.on(Event::Spawned { pid: 12 }, t1);
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(m.on(Event::Exited { pid: 12 }, t2), vec![Ready(false), RestartAt(t2 + 400 * MS)]);
        m.on(Event::RestartDue, t2);
        m.on(Event::Spawned { pid: 13 }, t2);
        assert_eq!(m.on(answered(true), t2), vec![Ready(true), Intercept]);
        let t3 = t2 + Duration::from_secs(1);
        assert_eq!(m.on(Event::Exited { pid: 13 }, t3), vec![Ready(false), FailOpen("exited"), RestartAt(t3)]);
    }

    #[test]
    fn the_backoff_stops_at_its_limit_and_a_failed_spawn_waits_for_it() {
        let t0 = Instant::now();
        let mut m = serving(t0);
        let mut at = Vec::new();
        for pid in 11..20 {
            for a in m.on(Event::Exited { pid: m.child().unwrap() }, t0) {
                if let RestartAt(t) = a {
                    at.push(t - t0);
                }
            }
            m.on(Event::RestartDue, t0);
            m.on(Event::Spawned { pid }, t0);
        }
        let ms: Vec<u128> = at.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![0, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        m.on(Event::Exited { pid: 19 }, t0);
        m.on(Event::RestartDue, t0);
        assert_eq!(m.on(Event::SpawnFailed, t0), vec![RestartAt(t0 + Duration::from_secs(5))]);
        assert_eq!(m.on(Event::RestartDue, t0), vec![Spawn]);
        assert_eq!(m.on(Event::Spawned { pid: 20 }, t0), vec![Restarted(20)]);
    }

    #[test]
    fn a_kill_followed_by_the_exit_restarts_at_once() {
        let t0 = Instant::now();
        let mut m = serving(t0);
        m.on(answered(false), t0);
        let acts = m.on(answered(false), t0);
        assert!(acts.contains(&Kill { pid: 10, failed_rounds: 2 }));
        assert!(!m.wants_probe(), "a child being killed is not probed");
        assert_eq!(m.on(Event::Exited { pid: 10 }, t0), vec![Ready(false), RestartAt(t0)], "failed open already");
    }

    #[test]
    fn a_surge_instance_takes_over_only_once_its_own_server_answers() {
        let t0 = Instant::now();
        let (mut m, _) = Machine::new(Limits::default(), OLDER_PEER);
        m.on(Event::Spawned { pid: 5 }, t0);
        let probed = |ok, peers| Event::Probed { answered: Some(ok), peers };
        assert_eq!(m.on(probed(false, OLDER_PEER), t0), vec![Ready(false), CountProbeFailure]);
        assert!(!m.is_managing());
        // Its server answers: manage, and intercepting puts the rule set in (no separate sync).
        assert_eq!(m.on(probed(true, OLDER_PEER), t0), vec![Manage(true), Ready(true), Intercept]);
        // A newer instance appears: hand over, keep answering.
        assert_eq!(m.on(probed(true, NEWER_PEER), t0), vec![Manage(false), Ready(true)]);
        // It goes away again: take over, with a sync as nothing else writes the rules.
        assert_eq!(m.on(probed(true, OLDER_PEER), t0), vec![Manage(true), Sync, Ready(true)]);
    }

    #[test]
    fn stopping_tears_down_when_last_and_hands_over_otherwise() {
        let t0 = Instant::now();
        let mut m = serving(t0);
        assert_eq!(m.on(Event::Stop { peers: ALONE }, t0), vec![Ready(false), TearDown, StopChild(10)]);
        assert_eq!(m.on(Event::Exited { pid: 10 }, t0), vec![], "nothing happens after a stop");
        assert_eq!(m.on(answered(false), t0), vec![]);
        let mut m = serving(t0);
        assert_eq!(
            m.on(Event::Stop { peers: NEWER_PEER }, t0),
            vec![Ready(false), Manage(false), HandOver, StopChild(10)]
        );
        let (mut m, _) = Machine::new(Limits::default(), ALONE);
        m.on(Event::Spawned { pid: 3 }, t0);
        m.on(Event::Exited { pid: 3 }, t0);
        assert_eq!(m.on(Event::Stop { peers: ALONE }, t0), vec![Ready(false), TearDown], "no child to stop");
        assert_eq!(m.on(Event::RestartDue, t0), vec![], "a pending restart is cancelled");
    }
}
