//! The usage tracker: turns observations (sessions with idle hints, display power) into exact,
//! non-overlapping intervals, and boots and shutdowns into power events. Pure logic: the runner
//! feeds it observations and times, persists [`TrackerState`] and spools what it emits.
//!
//! ## Rules
//! - The host is **in use** while an interactive session exists whose input happened within
//!   `idle_after` (default 5 minutes): a session without the idle hint is in use since the hint
//!   last changed (or since it started); a session with the idle hint set at time *T* stays in
//!   use until *T* + `idle_after`, then the host is **idle**. These times come from logind, so
//!   transitions are exact whatever the poll period; only a session's disappearance is known
//!   to the poll (it ends at the poll that no longer sees it).
//! - **Whose use** (teacher, pupil, staff) when several sessions are in use at once (two seats,
//!   a user switch): the session that made the host in use keeps it while it stays in use,
//!   whoever else logs in. When it stops being in use — its idle hint's time plus `idle_after`,
//!   or the poll that found it gone — the host passes at that moment to the session whose
//!   current use began first (idle in between if that use began later). When several sessions
//!   start at once, the one whose use began first wins; equal times go by session id. So the
//!   split between classes follows from logind's times alone, not from when the agent polled
//!   or cut intervals (`flush`). A pause shorter than the poll period between two looks at a
//!   session is not seen.
//! - With logind unavailable the host is powered on with use **unmonitored**.
//! - A display is **in use** while connected and on (DPMS `On`), **off** while connected and in
//!   power saving; a disconnected display has no intervals.
//! - Intervals never cross local midnight (so each belongs to one local day) and are cut every
//!   `flush` (default 10 minutes) so that the collector is never far behind.
//! - Across restarts, the state file carries the open intervals and the last time the agent saw
//!   the system alive: the same boot gives an `unmonitored` gap while the agent was down; a new
//!   boot gives `unmonitored` until the shutdown, `off` until the boot, and the power events.
//!
//! ## Exactly once
//! Closed intervals wait in `pending` (persisted) until a report carrying them is spooled. The
//! runner marks them with the sequence number the report will get before spooling, and clears
//! them after: a crash in between is resolved on restart by comparing with the spool's next
//! sequence number.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use parta_protocol::DeviceId;
use parta_protocol::usage::{PowerEvent, PowerEventKind, Subject, UsageInterval, UsageState, UserClass};
use serde::{Deserialize, Serialize};

use crate::sources::power::BootInfo;

/// Version of the state file layout.
const STATE_VERSION: u32 = 1;

/// Tracker settings.
#[derive(Debug, Clone)]
pub struct UsageConfig {
    /// Input within this long keeps a session in use.
    pub idle_after_ms: i64,
    /// Open intervals are cut at least this often.
    pub flush_ms: i64,
    /// Local time zone for day boundaries.
    pub tz: TimeZone,
}

/// A session as the tracker needs it (interactive sessions only; the name already mapped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    /// Session id.
    pub id: String,
    /// Idle hint.
    pub idle_hint: bool,
    /// When the idle hint last changed, ms (0 unknown).
    pub idle_since_ms: i64,
    /// Session start, ms.
    pub created_ms: i64,
    /// User class.
    pub user_class: UserClass,
    /// Salted user hash.
    pub user_key: Option<u64>,
}

/// An open interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Open {
    /// State.
    pub state: UsageState,
    /// User class.
    pub user_class: UserClass,
    /// User hash.
    pub user_key: Option<u64>,
    /// Start, ms.
    pub since_ms: i64,
}

impl Open {
    fn new(state: UsageState, since_ms: i64) -> Self {
        Self { state, user_class: UserClass::None, user_key: None, since_ms }
    }

    fn same_as(&self, other: &Open) -> bool {
        self.state == other.state && self.user_class == other.user_class && self.user_key == other.user_key
    }
}

/// What the runner persists (`usage.json` in the state directory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackerState {
    /// Layout version.
    pub version: u32,
    /// Boot this state belongs to.
    pub boot_id: String,
    /// Its boot time, ms.
    pub boot_ms: i64,
    /// The host's open interval.
    pub host: Open,
    /// Open intervals of connected displays.
    pub displays: Vec<(DeviceId, Open)>,
    /// Last time the agent saw the system alive, ms.
    pub last_seen_ms: i64,
    /// The agent stopped cleanly (as it does when the system shuts down).
    pub stopped_cleanly: bool,
    /// Closed intervals not yet spooled.
    pub pending: Vec<UsageInterval>,
    /// Power events not yet spooled.
    pub pending_events: Vec<PowerEvent>,
    /// Sequence number the report carrying the first `pending_taken` intervals and events was
    /// about to get.
    pub pending_seq: Option<u64>,
    /// How many pending intervals and events that report carries.
    #[serde(default)]
    pub pending_taken: (usize, usize),
    /// Sessions in use at the last observation (older agents' field: ids only, read and
    /// dropped).
    #[serde(default, skip_serializing)]
    pub in_use_sessions: Vec<String>,
    /// Sessions in use at the last observation.
    #[serde(default)]
    pub in_use: Vec<InUse>,
    /// The session the host's in-use interval belongs to.
    #[serde(default)]
    pub owner: Option<String>,
}

/// A session in use, as last observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InUse {
    /// Session id.
    pub id: String,
    /// When its current use began, ms.
    pub began_ms: i64,
    /// When it stops being in use without new input (`i64::MAX` while it has input), ms.
    pub until_ms: i64,
}

/// The tracker.
#[derive(Debug)]
pub struct Tracker {
    config: UsageConfig,
    state: TrackerState,
}

/// How the previous run ended, as found at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// No state: first run.
    Fresh,
    /// Same boot: the agent was restarted.
    SameBoot,
    /// The system rebooted: clean or not.
    Rebooted {
        /// The previous boot ended in an orderly shutdown.
        clean: bool,
    },
}

impl Tracker {
    /// Starts tracking at `now_ms`, resuming from `saved` (the persisted state, if any).
    /// `shutdown_between(after, before)` finds an orderly shutdown record (wtmp), and
    /// `next_seq` is the spool's next sequence number.
    pub fn start(
        config: UsageConfig,
        saved: Option<TrackerState>,
        boot: &BootInfo,
        shutdown_between: impl FnOnce(i64, i64) -> Option<i64>,
        next_seq: u64,
        now_ms: i64,
    ) -> (Self, Resumed) {
        let fresh = TrackerState {
            version: STATE_VERSION,
            boot_id: boot.boot_id.clone(),
            boot_ms: boot.boot_ms,
            host: Open::new(UsageState::Unmonitored, now_ms),
            displays: Vec::new(),
            last_seen_ms: now_ms,
            stopped_cleanly: false,
            pending: Vec::new(),
            pending_events: Vec::new(),
            pending_seq: None,
            pending_taken: (0, 0),
            in_use_sessions: Vec::new(),
            in_use: Vec::new(),
            owner: None,
        };
        let mut t = Self { config, state: fresh };
        let Some(saved) = saved.filter(|s| s.version == STATE_VERSION) else {
            t.booted(&boot.boot_id, boot.boot_ms, now_ms);
            return (t, Resumed::Fresh);
        };
        // Carry what the previous run had not spooled yet.
        t.state.pending = saved.pending.clone();
        t.state.pending_events = saved.pending_events.clone();
        if saved.pending_seq.is_some_and(|s| next_seq > s) {
            t.state.pending_taken = saved.pending_taken;
            t.spooled();
        }
        t.state.pending_seq = None;
        let last_seen = saved.last_seen_ms.max(saved.host.since_ms);
        t.close_span(Subject::Host, saved.host, last_seen);
        for (id, open) in &saved.displays {
            t.close_span(Subject::Display(*id), *open, last_seen.max(open.since_ms));
        }
        if saved.boot_id == boot.boot_id {
            t.close_span(Subject::Host, Open::new(UsageState::Unmonitored, last_seen), now_ms);
            return (t, Resumed::SameBoot);
        }
        let boot_ms = boot.boot_ms.max(last_seen);
        // A shutdown record written during the previous boot is that boot's end.
        let recorded = shutdown_between(saved.boot_ms, boot_ms);
        let clean = recorded.is_some() || saved.stopped_cleanly;
        let shutdown_ms = recorded.unwrap_or(last_seen).clamp(last_seen, boot_ms);
        t.close_span(Subject::Host, Open::new(UsageState::Unmonitored, last_seen), shutdown_ms);
        t.state.pending_events.push(PowerEvent {
            kind: PowerEventKind::Shutdown { clean },
            at_ms: shutdown_ms,
            boot_id: saved.boot_id.clone(),
        });
        t.close_span(Subject::Host, Open::new(UsageState::Off, shutdown_ms), boot_ms);
        t.booted(&boot.boot_id, boot_ms, now_ms);
        (t, Resumed::Rebooted { clean })
    }

    /// The boot at `at_ms`, and the host powered on with use unknown from then until the agent
    /// started at `now_ms`.
    fn booted(&mut self, boot_id: &str, at_ms: i64, now_ms: i64) {
        self.state.pending_events.push(PowerEvent {
            kind: PowerEventKind::Boot,
            at_ms,
            boot_id: boot_id.to_owned(),
        });
        self.close_span(Subject::Host, Open::new(UsageState::Unmonitored, at_ms), now_ms);
    }

    /// New idle threshold and flush period (a policy changed them); they apply from the next
    /// observation.
    pub fn set_config(&mut self, config: UsageConfig) {
        self.config = config;
    }

    /// The state to persist.
    pub fn state(&self) -> &TrackerState {
        &self.state
    }

    /// Feeds one observation: `sessions` is `None` when logind is unavailable; `displays` lists
    /// connected displays and whether each is on.
    pub fn observe(&mut self, now_ms: i64, sessions: Option<&[SessionView]>, displays: &[(DeviceId, bool)]) {
        let now = now_ms.max(self.state.last_seen_ms);
        self.observe_host(now, sessions);
        self.observe_displays(now, displays);
        self.flush_long(now);
        self.state.last_seen_ms = now;
        self.state.stopped_cleanly = false;
    }

    fn observe_host(&mut self, now: i64, sessions: Option<&[SessionView]>) {
        let Some(sessions) = sessions else {
            self.state.in_use.clear();
            self.state.owner = None;
            self.transition_host(Open::new(UsageState::Unmonitored, now), now);
            return;
        };
        let idle_after = self.config.idle_after_ms;
        // Sessions in use now, with when their current use began and until when it lasts
        // without new input; sessions that stopped being in use, with when.
        let mut in_use: Vec<(InUse, &SessionView)> = Vec::new();
        let mut ended: Vec<(String, i64)> = Vec::new();
        for s in sessions {
            let before = self.state.in_use.iter().find(|u| u.id == s.id).map(|u| (u.began_ms, u.until_ms));
            let (hinted_since, until) = if s.idle_hint {
                (None, s.idle_since_ms.saturating_add(idle_after))
            } else {
                (Some(s.created_ms.max(s.idle_since_ms)), i64::MAX)
            };
            if now >= until {
                if let Some((_, was_until)) = before {
                    ended.push((s.id.clone(), until.min(was_until)));
                }
                continue;
            }
            let began = match (before, hinted_since) {
                // In use since the last look, without a pause longer than `idle_after`.
                (Some((began, was_until)), Some(active_since)) if active_since <= was_until => began,
                (Some((began, _)), None) => began,
                // It had stopped (between two looks) and is in use again since its input.
                (Some((_, was_until)), Some(active_since)) => {
                    ended.push((s.id.clone(), was_until));
                    active_since
                }
                (None, Some(active_since)) => active_since,
                // Seen for the first time in its grace period: in use since it started, as far
                // as anyone knows.
                (None, None) => s.created_ms,
            };
            in_use.push((InUse { id: s.id.clone(), began_ms: began, until_ms: until }, s));
        }
        // A session that was in use and is gone ended at the poll that found it gone.
        for u in &self.state.in_use {
            if !sessions.iter().any(|s| s.id == u.id) {
                ended.push((u.id.clone(), now.min(u.until_ms)));
            }
        }
        in_use.sort_by(|a, b| a.0.began_ms.cmp(&b.0.began_ms).then_with(|| a.0.id.cmp(&b.0.id)));
        self.state.in_use = in_use.iter().map(|(u, _)| u.clone()).collect();
        let owner = self.state.owner.clone().filter(|_| self.state.host.state == UsageState::InUse);
        let owner_end = owner.as_ref().and_then(|o| ended.iter().find(|(id, _)| id == o)).map(|e| e.1);
        if owner_end.is_none() && owner.as_ref().is_some_and(|o| in_use.iter().any(|(u, _)| &u.id == o)) {
            // The session using the host keeps it while it is in use, whoever else logs in.
            return;
        }
        let mut handover = None;
        if let Some(end) = owner_end {
            // Handed over at the moment the owner stopped being in use: to the session whose
            // current use began first (idle in between if that was later), else idle.
            self.transition_host(Open::new(UsageState::Idle, end), now);
            handover = Some(end);
        }
        match in_use.first() {
            Some((u, s)) => {
                self.state.owner = Some(u.id.clone());
                let since = handover.map_or(u.began_ms, |end| u.began_ms.max(end));
                let target = Open {
                    state: UsageState::InUse,
                    user_class: s.user_class,
                    user_key: s.user_key,
                    since_ms: since,
                };
                self.transition_host(target, now);
            }
            None => {
                self.state.owner = None;
                let since = ended.iter().map(|e| e.1).max().unwrap_or(now);
                self.transition_host(Open::new(UsageState::Idle, since), now);
            }
        }
    }

    /// Moves the host to `target` at `target.since_ms` clamped into [current start, now].
    fn transition_host(&mut self, target: Open, now: i64) {
        let current = self.state.host;
        if current.same_as(&target) {
            return;
        }
        let at = target.since_ms.clamp(current.since_ms, now);
        self.close_span(Subject::Host, current, at);
        self.state.host = Open { since_ms: at, ..target };
    }

    fn observe_displays(&mut self, now: i64, displays: &[(DeviceId, bool)]) {
        let mut kept = Vec::with_capacity(displays.len());
        for (id, on) in displays {
            let state = if *on { UsageState::InUse } else { UsageState::Off };
            match self.state.displays.iter().find(|(d, _)| d == id).map(|(_, o)| *o) {
                Some(open) if open.state == state => kept.push((*id, open)),
                Some(open) => {
                    self.close_span(Subject::Display(*id), open, now);
                    kept.push((*id, Open::new(state, now)));
                }
                None => kept.push((*id, Open::new(state, now))),
            }
        }
        let gone: Vec<(DeviceId, Open)> = self
            .state
            .displays
            .iter()
            .filter(|(d, _)| !displays.iter().any(|(id, _)| id == d))
            .copied()
            .collect();
        for (id, open) in gone {
            self.close_span(Subject::Display(id), open, now);
        }
        self.state.displays = kept;
    }

    /// Cuts open intervals older than `flush` at `now`.
    fn flush_long(&mut self, now: i64) {
        let flush = self.config.flush_ms;
        if now - self.state.host.since_ms >= flush {
            let open = self.state.host;
            self.close_span(Subject::Host, open, now);
            self.state.host.since_ms = now;
        }
        for i in 0..self.state.displays.len() {
            let (id, open) = self.state.displays[i];
            if now - open.since_ms >= flush {
                self.close_span(Subject::Display(id), open, now);
                self.state.displays[i].1.since_ms = now;
            }
        }
    }

    /// The agent is stopping at `now_ms`: closes every open interval.
    pub fn stop(&mut self, now_ms: i64) {
        let now = now_ms.max(self.state.last_seen_ms);
        let host = self.state.host;
        self.close_span(Subject::Host, host, now);
        for (id, open) in std::mem::take(&mut self.state.displays) {
            self.close_span(Subject::Display(id), open, now);
        }
        self.state.host = Open::new(UsageState::Unmonitored, now);
        self.state.last_seen_ms = now;
        self.state.stopped_cleanly = true;
    }

    /// Whether anything waits to be spooled.
    pub fn has_pending(&self) -> bool {
        !self.state.pending.is_empty() || !self.state.pending_events.is_empty()
    }

    /// Up to `max_intervals` intervals and `max_events` events waiting to be spooled, marked as
    /// going into report `seq` (persist the state after this call, then spool, then call
    /// [`Tracker::spooled`]).
    pub fn take_for_report(
        &mut self,
        seq: u64,
        max_intervals: usize,
        max_events: usize,
    ) -> (Vec<UsageInterval>, Vec<PowerEvent>) {
        let n = self.state.pending.len().min(max_intervals);
        let m = self.state.pending_events.len().min(max_events);
        self.state.pending_seq = Some(seq);
        self.state.pending_taken = (n, m);
        (self.state.pending[..n].to_vec(), self.state.pending_events[..m].to_vec())
    }

    /// The report carrying what [`Tracker::take_for_report`] returned was spooled.
    pub fn spooled(&mut self) {
        let (n, m) = self.state.pending_taken;
        self.state.pending.drain(..n.min(self.state.pending.len()));
        self.state.pending_events.drain(..m.min(self.state.pending_events.len()));
        self.state.pending_seq = None;
        self.state.pending_taken = (0, 0);
    }

    /// Spooling failed: the intervals stay pending for the next report.
    pub fn not_spooled(&mut self) {
        self.state.pending_seq = None;
        self.state.pending_taken = (0, 0);
    }

    /// Closes `open` at `end_ms` into pending intervals, split at local midnights.
    fn close_span(&mut self, subject: Subject, open: Open, end_ms: i64) {
        let mut start = open.since_ms;
        while start < end_ms {
            let (day, next_midnight) = local_day(&self.config.tz, start);
            let end = end_ms.min(next_midnight);
            self.state.pending.push(UsageInterval {
                subject,
                start_ms: start,
                end_ms: end,
                state: open.state,
                user_class: open.user_class,
                user_key: open.user_key,
                local_day: day,
            });
            start = end;
        }
    }
}

/// The local day of `ms` (days since 1970-01-01) and the next local midnight, ms.
pub fn local_day(tz: &TimeZone, ms: i64) -> (i32, i64) {
    let fallback =
        (i32::try_from(ms.div_euclid(86_400_000)).unwrap_or(0), (ms.div_euclid(86_400_000) + 1) * 86_400_000);
    let Ok(ts) = Timestamp::from_millisecond(ms) else { return fallback };
    let date = ts.to_zoned(tz.clone()).date();
    let epoch = Date::constant(1970, 1, 1);
    let day = date.since(epoch).map(|s| s.get_days()).unwrap_or(fallback.0);
    let next = date
        .tomorrow()
        .and_then(|d| d.to_zoned(tz.clone()))
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or(fallback.1);
    // Guard against a time zone whose next midnight is not after `ms`.
    (day, if next > ms { next } else { fallback.1.max(ms + 1) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    /// 2026-11-23 00:00 Moscow (UTC+3) = 2026-11-22 21:00 UTC.
    const DAY0: i64 = 1_795_381_200_000;

    fn cfg() -> UsageConfig {
        UsageConfig {
            idle_after_ms: 5 * MIN,
            flush_ms: 24 * 60 * MIN,
            tz: TimeZone::fixed(jiff::tz::offset(3)),
        }
    }

    fn boot(id: &str, ms: i64) -> BootInfo {
        BootInfo { boot_id: id.into(), boot_ms: ms }
    }

    fn sess(id: &str, idle: bool, since: i64, created: i64) -> SessionView {
        SessionView {
            id: id.into(),
            idle_hint: idle,
            idle_since_ms: since,
            created_ms: created,
            user_class: UserClass::Pupil,
            user_key: None,
        }
    }

    fn totals(iv: &[UsageInterval], subject: Subject) -> std::collections::BTreeMap<UsageState, i64> {
        let mut m = std::collections::BTreeMap::new();
        for i in iv.iter().filter(|i| i.subject == subject) {
            *m.entry(i.state).or_insert(0) += i.duration_ms();
        }
        m
    }

    fn assert_contiguous(iv: &[UsageInterval], subject: Subject) {
        let mut v: Vec<&UsageInterval> = iv.iter().filter(|i| i.subject == subject).collect();
        v.sort_by_key(|i| i.start_ms);
        for w in v.windows(2) {
            assert_eq!(w[0].end_ms, w[1].start_ms, "{:?} then {:?}", w[0], w[1]);
        }
        assert!(v.iter().all(|i| i.start_ms < i.end_ms));
    }

    #[test]
    fn first_run_is_unmonitored_since_boot_then_exact_transitions() {
        let t0 = DAY0 + 8 * 60 * MIN;
        let (mut t, r) = Tracker::start(cfg(), None, &boot("b1", t0 - 10 * MIN), |_, _| None, 0, t0);
        assert_eq!(r, Resumed::Fresh);
        t.observe(t0, Some(&[]), &[]);
        // Session opens at t0+2m (seen at t0+3m), idle hint set at t0+20m (seen at t0+30m).
        t.observe(t0 + 3 * MIN, Some(&[sess("1", false, 0, t0 + 2 * MIN)]), &[]);
        t.observe(t0 + 30 * MIN, Some(&[sess("1", true, t0 + 20 * MIN, t0 + 2 * MIN)]), &[]);
        // Input again at t0+40m.
        t.observe(t0 + 41 * MIN, Some(&[sess("1", false, t0 + 40 * MIN, t0 + 2 * MIN)]), &[]);
        // Session gone, seen at t0+50m.
        t.observe(t0 + 50 * MIN, Some(&[]), &[]);
        t.stop(t0 + 60 * MIN);
        let iv = &t.state().pending;
        assert_contiguous(iv, Subject::Host);
        let m = totals(iv, Subject::Host);
        assert_eq!(m[&UsageState::Unmonitored], 10 * MIN);
        assert_eq!(m[&UsageState::InUse], 23 * MIN + 10 * MIN);
        assert_eq!(m[&UsageState::Idle], 2 * MIN + 15 * MIN + 10 * MIN);
        assert_eq!(t.state().pending_events.len(), 1);
    }

    fn class_sess(id: &str, class: UserClass, idle: bool, since: i64, created: i64) -> SessionView {
        SessionView { user_class: class, ..sess(id, idle, since, created) }
    }

    /// Runs a script of logind states, each `(from, sessions)` valid until the next `from`,
    /// polled every `poll` and cut every `flush`, and returns the host's time per class.
    fn split(
        script: &[(i64, Vec<SessionView>)],
        end: i64,
        poll: i64,
        flush: i64,
    ) -> std::collections::BTreeMap<(UsageState, UserClass), i64> {
        let t0 = script[0].0;
        let config = UsageConfig { flush_ms: flush, ..cfg() };
        let (mut t, _) = Tracker::start(config, None, &boot("b", t0 - MIN), |_, _| None, 0, t0);
        let mut now = t0;
        while now < end {
            let sessions = &script.iter().rev().find(|(from, _)| *from <= now).unwrap().1;
            t.observe(now, Some(sessions), &[]);
            now += poll;
        }
        t.stop(end);
        let iv = &t.state().pending;
        assert_contiguous(iv, Subject::Host);
        let mut m = std::collections::BTreeMap::new();
        for i in iv.iter().filter(|i| i.subject == Subject::Host && i.start_ms >= t0) {
            *m.entry((i.state, i.user_class)).or_insert(0) += i.duration_ms();
        }
        m
    }

    #[test]
    fn overlapping_sessions_hand_over_when_the_owner_stops_whatever_the_poll_and_flush() {
        use UserClass::{Pupil, Teacher};
        let t0 = DAY0 + 8 * 60 * MIN;
        let m = |x: i64| t0 + x * MIN;
        // A teacher in use from 8:01; a pupil logs in on a second seat at 8:10 and types until
        // 9:00; the teacher's last input is at 8:30 (in use until 8:35), then types again at
        // 8:50 (the pupil has the host by then) and logs out at 9:10.
        let teacher = |idle: bool, since: i64| class_sess("t", Teacher, idle, since, m(0));
        let pupil = |idle: bool, since: i64| class_sess("p", Pupil, idle, since, m(10));
        let script = vec![
            (m(0), vec![]),
            (m(1), vec![teacher(false, m(1))]),
            (m(10), vec![teacher(false, m(1)), pupil(false, m(10))]),
            (m(30), vec![teacher(true, m(30)), pupil(false, m(10))]),
            (m(50), vec![teacher(false, m(50)), pupil(false, m(10))]),
            (m(60), vec![teacher(false, m(50)), pupil(true, m(60))]),
            (m(70), vec![]),
        ];
        let expected: std::collections::BTreeMap<(UsageState, UserClass), i64> = [
            // 8:00–8:01 before the teacher's session, 9:10–9:20 after.
            ((UsageState::Idle, UserClass::None), MIN + 10 * MIN),
            // 8:01–8:35; then from 9:05 (the pupil's grace ends) to 9:10.
            ((UsageState::InUse, Teacher), 34 * MIN + 5 * MIN),
            // 8:35–9:05.
            ((UsageState::InUse, Pupil), 30 * MIN),
        ]
        .into_iter()
        .collect();
        for (poll, flush) in
            [(MIN / 2, 24 * 60 * MIN), (MIN / 2, MIN), (MIN, 3 * MIN), (MIN, 7 * MIN), (MIN, 10 * MIN)]
        {
            assert_eq!(split(&script, m(80), poll, flush), expected, "poll {poll} ms, flush {flush} ms");
        }
    }

    #[test]
    fn a_user_switch_hands_over_at_the_poll_that_finds_the_session_gone() {
        use UserClass::{Pupil, Teacher};
        let t0 = DAY0 + 8 * 60 * MIN;
        let m = |x: i64| t0 + x * MIN;
        let teacher = class_sess("t", Teacher, false, m(0), m(0));
        // The pupil's session starts at 8:20 while the teacher's is open (a user switch); the
        // teacher's session is gone at 8:30.
        let pupil = class_sess("p", Pupil, false, m(20), m(20));
        let script =
            vec![(m(0), vec![teacher.clone()]), (m(20), vec![teacher, pupil.clone()]), (m(30), vec![pupil])];
        for flush in [MIN, 4 * MIN, 24 * 60 * MIN] {
            let got = split(&script, m(40), MIN, flush);
            assert_eq!(got[&(UsageState::InUse, Teacher)], 30 * MIN, "flush {flush}");
            assert_eq!(got[&(UsageState::InUse, Pupil)], 10 * MIN, "flush {flush}");
        }
    }

    #[test]
    fn sessions_in_their_grace_period_go_by_when_their_use_began() {
        use UserClass::{Admin as Staff, Pupil, Teacher};
        let t0 = DAY0 + 8 * 60 * MIN;
        let m = |x: i64| t0 + x * MIN;
        // Three sessions; the owner (staff, 8:00) stops at 8:25; of the other two, both idle
        // but in their grace then, the pupil's use began at 8:05 and the teacher's at 8:10: the
        // pupil has the host from 8:25 until its grace ends at 8:27, then the teacher until
        // 8:29.
        let script = vec![
            (m(0), vec![class_sess("s", Staff, false, m(0), m(0))]),
            (
                m(5),
                vec![
                    class_sess("s", Staff, false, m(0), m(0)),
                    class_sess("p", Pupil, false, m(5), m(5)),
                    class_sess("t", Teacher, false, m(10), m(9)),
                ],
            ),
            (
                m(20),
                vec![
                    class_sess("s", Staff, true, m(20), m(0)),
                    class_sess("p", Pupil, true, m(22), m(5)),
                    class_sess("t", Teacher, true, m(24), m(9)),
                ],
            ),
        ];
        let got = split(&script, m(40), MIN, 24 * 60 * MIN);
        assert_eq!(got[&(UsageState::InUse, Staff)], 25 * MIN);
        assert_eq!(got[&(UsageState::InUse, Pupil)], 2 * MIN);
        assert_eq!(got[&(UsageState::InUse, Teacher)], 2 * MIN);
        assert_eq!(got[&(UsageState::Idle, UserClass::None)], 11 * MIN);
    }

    #[test]
    fn state_files_of_older_agents_still_load() {
        let (t, _) = Tracker::start(cfg(), None, &boot("b", DAY0), |_, _| None, 0, DAY0 + MIN);
        let mut v = serde_json::to_value(t.state()).unwrap();
        let o = v.as_object_mut().unwrap();
        assert!(o.remove("in_use").is_some() && o.remove("owner").is_some());
        o.insert("in_use_sessions".into(), serde_json::json!(["3"]));
        let back: TrackerState = serde_json::from_value(v).unwrap();
        assert!(back.in_use.is_empty() && back.owner.is_none());
        assert_eq!(back.pending, t.state().pending, "what was not spooled yet is kept");
    }

    #[test]
    fn intervals_split_at_local_midnight() {
        let t0 = DAY0 - 30 * MIN;
        let (mut t, _) = Tracker::start(cfg(), None, &boot("b", t0), |_, _| None, 0, t0);
        t.observe(t0 + MIN, Some(&[]), &[]);
        t.observe(t0 + 60 * MIN, Some(&[]), &[]);
        t.stop(t0 + 60 * MIN);
        let idle: Vec<_> = t.state().pending.iter().filter(|i| i.state == UsageState::Idle).collect();
        assert_eq!(idle.len(), 2);
        assert_eq!(idle[0].end_ms, DAY0);
        assert_eq!(idle[1].local_day, idle[0].local_day + 1);
        assert_eq!(local_day(&cfg().tz, DAY0).0, 20_780);
    }

    #[test]
    fn displays_follow_dpms_and_disconnects() {
        let t0 = DAY0 + 9 * 60 * MIN;
        let d = DeviceId(uuid::Uuid::from_u128(9));
        let (mut t, _) = Tracker::start(cfg(), None, &boot("b", t0), |_, _| None, 0, t0);
        t.observe(t0, None, &[(d, true)]);
        t.observe(t0 + 10 * MIN, None, &[(d, false)]);
        t.observe(t0 + 15 * MIN, None, &[(d, true)]);
        t.observe(t0 + 45 * MIN, None, &[]);
        t.observe(t0 + 50 * MIN, None, &[]);
        let m = totals(&t.state().pending, Subject::Display(d));
        assert_eq!(m[&UsageState::InUse], 40 * MIN);
        assert_eq!(m[&UsageState::Off], 5 * MIN);
        assert_contiguous(&t.state().pending, Subject::Display(d));
    }

    #[test]
    fn reboot_while_offline_fills_the_gap() {
        let t0 = DAY0 + 8 * 60 * MIN;
        let (mut t, _) = Tracker::start(cfg(), None, &boot("b1", t0), |_, _| None, 0, t0);
        t.observe(t0, Some(&[]), &[]);
        t.observe(t0 + 30 * MIN, Some(&[]), &[]);
        let mut saved = t.state().clone();
        saved.pending.clear();
        saved.pending_events.clear();
        // Shut down cleanly at t0+31m (wtmp), booted at t0+90m, agent up at t0+91m.
        let (t2, r) = Tracker::start(
            cfg(),
            Some(saved),
            &boot("b2", t0 + 90 * MIN),
            |a, b| {
                assert!(a <= t0 + 30 * MIN && b == t0 + 90 * MIN);
                Some(t0 + 31 * MIN)
            },
            5,
            t0 + 91 * MIN,
        );
        assert_eq!(r, Resumed::Rebooted { clean: true });
        let iv = &t2.state().pending;
        assert_contiguous(iv, Subject::Host);
        let m = totals(iv, Subject::Host);
        assert_eq!(m[&UsageState::Off], 59 * MIN);
        assert_eq!(m[&UsageState::Unmonitored], 2 * MIN);
        assert_eq!(m[&UsageState::Idle], 30 * MIN);
        let kinds: Vec<_> = t2.state().pending_events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [PowerEventKind::Shutdown { clean: true }, PowerEventKind::Boot]);
    }

    #[test]
    fn pending_survives_a_crash_before_spooling_but_not_after() {
        let t0 = DAY0 + 8 * 60 * MIN;
        let (mut t, _) = Tracker::start(cfg(), None, &boot("b1", t0), |_, _| None, 0, t0);
        t.observe(t0 + MIN, Some(&[]), &[]);
        let (iv, _) = t.take_for_report(7, usize::MAX, usize::MAX);
        assert!(!iv.is_empty());
        let saved = t.state().clone();
        // Crash before the append: next_seq is still 7 → carried.
        let (t2, _) =
            Tracker::start(cfg(), Some(saved.clone()), &boot("b1", t0), |_, _| None, 7, t0 + 2 * MIN);
        assert!(t2.state().pending.len() > iv.len());
        // Crash after the append: next_seq is 8 → not repeated.
        let (t3, _) = Tracker::start(cfg(), Some(saved), &boot("b1", t0), |_, _| None, 8, t0 + 2 * MIN);
        assert!(t3.state().pending.iter().all(|i| i.start_ms >= t0 + MIN));
    }
}
