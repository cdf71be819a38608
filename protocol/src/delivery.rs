//! The agent's delivery state machine, sans-IO: it decides what to send next and keeps the
//! window, the acknowledgements and the reconnect logic; the caller owns the spool, the stream
//! and the clock (`now` is passed in).
//!
//! Order of sending within a session:
//! 1. **live** reports — appended since the session started — oldest first, ahead of anything
//!    else, so dashboards stay current while a backlog drains;
//! 2. the **backlog** — everything older that is neither acknowledged nor discarded — oldest
//!    first, in batches as large as the window allows (the live share of the window,
//!    [`DeliveryConfig::live_reserve`], is kept free for live reports).
//!
//! Acknowledgements are ranges, so the collector may store and acknowledge in any order. After a
//! reconnect everything unacknowledged is eligible again, oldest first; the collector recognises
//! resends by `(device, sequence)`.

use std::time::{Duration, Instant};

use crate::message::{Ack, Welcome};
use crate::seqset::SeqSet;

/// Tuning of the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Reports sent and not yet acknowledged, at most.
    pub window: usize,
    /// Part of the window only live reports may use.
    pub live_reserve: usize,
}

impl Default for DeliveryConfig {
    /// 1024 reports in flight (~130 KB) cover a long-latency link while the collector batches
    /// inserts; 16 of them stay free for live reports, more than arrive during one insert round.
    fn default() -> Self {
        Self { window: 1024, live_reserve: 16 }
    }
}

/// What to send next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The live report with this sequence number.
    Live(u64),
    /// Backlog reports with sequence numbers in `from..below`, at most `max` of them, skipping
    /// numbers that are acknowledged or discarded.
    Backlog {
        /// First candidate.
        from: u64,
        /// End of the backlog (exclusive): live reports start here.
        below: u64,
        /// How many the window allows.
        max: usize,
    },
    /// Nothing: not connected, window full, or everything sent.
    Nothing,
}

/// The delivery state of one device.
#[derive(Debug, Clone)]
pub struct Delivery {
    cfg: DeliveryConfig,
    /// Stored by the collector.
    acked: SeqSet,
    /// Sent in this session, not yet acknowledged.
    in_flight: SeqSet,
    in_flight_count: usize,
    /// Highest sequence number appended.
    newest: u64,
    /// Session state: `None` while disconnected.
    session: Option<Session>,
}

#[derive(Debug, Clone, Copy)]
struct Session {
    /// First sequence number appended during this session.
    live_from: u64,
    /// Next live candidate.
    live_next: u64,
    /// Next backlog candidate.
    backlog_next: u64,
    /// Last time an acknowledgement made progress (or the session started).
    progress_at: Instant,
}

impl Delivery {
    /// A device that has never sent anything.
    pub fn new(cfg: DeliveryConfig) -> Self {
        Self {
            cfg,
            acked: SeqSet::new(),
            in_flight: SeqSet::new(),
            in_flight_count: 0,
            newest: 0,
            session: None,
        }
    }

    /// Restores what the spool knows after a restart: acknowledged numbers, newest number.
    /// Numbers the spool no longer holds (thinned, expired) need no telling: reading the backlog
    /// simply does not find them.
    pub fn restore(&mut self, acked: &SeqSet, newest: u64) {
        self.acked = acked.clone();
        self.newest = newest;
    }

    /// A report was appended to the spool.
    pub fn on_appended(&mut self, seq: u64) {
        self.newest = self.newest.max(seq);
    }

    /// A session started. Returns the numbers the collector reports as stored that were not known
    /// to be acknowledged (the caller tells the spool).
    pub fn on_connected(&mut self, welcome: &Welcome, now: Instant) -> SeqSet {
        let mut newly = SeqSet::new();
        if welcome.stored_up_to > 0 {
            newly.insert_range(1, welcome.stored_up_to);
            for &(a, b) in self.acked.ranges() {
                newly.remove_range(a, b);
            }
            self.acked.insert_range(1, welcome.stored_up_to);
        }
        self.in_flight = SeqSet::new();
        self.in_flight_count = 0;
        let live_from = self.newest + 1;
        self.session = Some(Session {
            live_from,
            live_next: live_from,
            backlog_next: self.first_unresolved(1),
            progress_at: now,
        });
        newly
    }

    /// The session ended; what was in flight will be sent again next time.
    pub fn on_disconnected(&mut self) {
        self.session = None;
        self.in_flight = SeqSet::new();
        self.in_flight_count = 0;
    }

    /// What to send next.
    pub fn poll_send(&self) -> Next {
        let Some(s) = self.session else { return Next::Nothing };
        if self.in_flight_count >= self.cfg.window {
            return Next::Nothing;
        }
        let live = self.first_unresolved(s.live_next);
        if live <= self.newest {
            return Next::Live(live);
        }
        let backlog_room = self.cfg.window.saturating_sub(self.cfg.live_reserve);
        let from = self.first_unresolved(s.backlog_next);
        if from < s.live_from && self.in_flight_count < backlog_room {
            return Next::Backlog { from, below: s.live_from, max: backlog_room - self.in_flight_count };
        }
        Next::Nothing
    }

    /// Reports were written to the stream. `scanned_to` is the last number the caller looked at:
    /// everything up to it is done, including numbers the spool no longer holds (a `Live` report
    /// that was discarded meanwhile is answered with `on_sent(&[], seq)`).
    pub fn on_sent(&mut self, seqs: &[u64], scanned_to: u64) {
        for &seq in seqs {
            if !self.in_flight.contains(seq) {
                self.in_flight.insert(seq);
                self.in_flight_count += 1;
            }
        }
        if let Some(s) = &mut self.session {
            if scanned_to >= s.live_from {
                s.live_next = s.live_next.max(scanned_to + 1);
            } else {
                s.backlog_next = s.backlog_next.max(scanned_to + 1);
            }
        }
    }

    /// An acknowledgement arrived. Returns the numbers newly known as stored.
    pub fn on_ack(&mut self, ack: &Ack, now: Instant) -> SeqSet {
        let mut newly = SeqSet::new();
        for r in &ack.ranges {
            if r.is_empty() {
                continue;
            }
            newly.insert_range(r.first, r.last);
        }
        for &(a, b) in self.acked.ranges() {
            newly.remove_range(a, b);
        }
        for &(a, b) in newly.ranges() {
            self.acked.insert_range(a, b);
            self.forget_in_flight(a, b);
        }
        if !newly.is_empty()
            && let Some(s) = &mut self.session
        {
            s.progress_at = now;
        }
        newly
    }

    fn forget_in_flight(&mut self, a: u64, b: u64) {
        let n = usize::try_from(self.in_flight.within(a, b).len()).unwrap_or(usize::MAX);
        self.in_flight.remove_range(a, b);
        self.in_flight_count = self.in_flight_count.saturating_sub(n);
    }

    /// Reports in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight_count
    }

    /// How long reports have been in flight without any acknowledgement making progress;
    /// `None` when nothing is in flight. A long wait means the collector cannot store (its
    /// database may be down); it is reported, not acted on — reconnecting would not help.
    pub fn waiting_for_ack(&self, now: Instant) -> Option<Duration> {
        let s = self.session?;
        (self.in_flight_count > 0).then(|| now.saturating_duration_since(s.progress_at))
    }

    /// Acknowledged numbers.
    pub fn acked(&self) -> &SeqSet {
        &self.acked
    }

    /// Whether a number is acknowledged.
    pub fn is_acked(&self, seq: u64) -> bool {
        self.acked.contains(seq)
    }

    /// Highest number appended.
    pub fn newest(&self) -> u64 {
        self.newest
    }

    fn first_unresolved(&self, from: u64) -> u64 {
        let mut v = from.max(1);
        loop {
            let next = self.in_flight.next_absent(self.acked.next_absent(v));
            if next == v {
                return v;
            }
            v = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: DeliveryConfig = DeliveryConfig { window: 8, live_reserve: 2 };

    fn welcome(stored: u64) -> Welcome {
        crate::examples::welcome_at(stored, stored)
    }

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn nothing_to_send_while_disconnected() {
        let mut d = Delivery::new(CFG);
        d.on_appended(1);
        assert_eq!(d.poll_send(), Next::Nothing);
    }

    #[test]
    fn backlog_in_window_sized_batches_then_wait_for_acks() {
        let mut d = Delivery::new(CFG);
        for s in 1..=20 {
            d.on_appended(s);
        }
        let now = t0();
        d.on_connected(&welcome(0), now);
        // All 20 are backlog (appended before the session): 6 = window - live reserve.
        assert_eq!(d.poll_send(), Next::Backlog { from: 1, below: 21, max: 6 });
        d.on_sent(&[1, 2, 3, 4, 5, 6], 6);
        assert_eq!(d.poll_send(), Next::Nothing, "backlog share of the window is full");
        let newly = d.on_ack(&Ack::range(1, 4), now);
        assert_eq!(newly.ranges(), &[(1, 4)]);
        assert_eq!(d.in_flight(), 2);
        assert_eq!(d.poll_send(), Next::Backlog { from: 7, below: 21, max: 4 });
    }

    #[test]
    fn live_reports_go_ahead_of_the_backlog_even_with_a_full_backlog_window() {
        let mut d = Delivery::new(CFG);
        for s in 1..=100 {
            d.on_appended(s);
        }
        d.on_connected(&welcome(0), t0());
        d.on_sent(&[1, 2, 3, 4, 5, 6], 6);
        d.on_appended(101);
        assert_eq!(d.poll_send(), Next::Live(101));
        d.on_sent(&[101], 101);
        d.on_appended(102);
        assert_eq!(d.poll_send(), Next::Live(102));
        d.on_sent(&[102], 102);
        // Window (8) now full: nothing, not even live.
        d.on_appended(103);
        assert_eq!(d.poll_send(), Next::Nothing);
        // Out-of-order acknowledgement of the live reports frees room.
        d.on_ack(&Ack::range(101, 102), t0());
        assert_eq!(d.poll_send(), Next::Live(103));
    }

    #[test]
    fn reconnect_resends_unacked_in_order_and_skips_what_the_collector_has() {
        let mut d = Delivery::new(CFG);
        for s in 1..=10 {
            d.on_appended(s);
        }
        d.on_connected(&welcome(0), t0());
        d.on_sent(&[1, 2, 3, 4, 5, 6], 6);
        d.on_ack(&Ack::range(1, 2), t0());
        d.on_disconnected();
        // The collector stored up to 4 before the connection died (acks 3–4 were lost).
        let newly = d.on_connected(&welcome(4), t0());
        assert_eq!(newly.ranges(), &[(3, 4)]);
        assert_eq!(d.in_flight(), 0);
        assert_eq!(d.poll_send(), Next::Backlog { from: 5, below: 11, max: 6 });
    }

    #[test]
    fn a_discarded_live_report_is_passed_over() {
        let mut d = Delivery::new(CFG);
        d.on_connected(&welcome(0), t0());
        d.on_appended(1);
        assert_eq!(d.poll_send(), Next::Live(1));
        d.on_sent(&[], 1);
        assert_eq!(d.poll_send(), Next::Nothing);
    }

    #[test]
    fn backlog_scan_past_gaps_advances_the_cursor() {
        let mut d = Delivery::new(CFG);
        for s in 1..=10 {
            d.on_appended(s);
        }
        d.on_connected(&welcome(0), t0());
        // The spool found only 9 and 10 between 1 and 10 (1–8 were thinned without telling us).
        d.on_sent(&[9, 10], 10);
        assert_eq!(d.poll_send(), Next::Nothing);
    }

    #[test]
    fn waiting_for_ack_uses_the_injected_clock() {
        let mut d = Delivery::new(CFG);
        d.on_appended(1);
        let start = t0();
        d.on_connected(&welcome(0), start);
        assert_eq!(d.waiting_for_ack(start + Duration::from_secs(5)), None, "nothing in flight");
        d.on_sent(&[1], 1);
        assert_eq!(d.waiting_for_ack(start + Duration::from_secs(90)), Some(Duration::from_secs(90)));
        d.on_ack(&Ack::range(1, 1), start + Duration::from_secs(100));
        assert_eq!(d.waiting_for_ack(start + Duration::from_secs(100)), None);
        d.on_appended(2);
        d.on_sent(&[2], 2);
        assert_eq!(d.waiting_for_ack(start + Duration::from_secs(130)), Some(Duration::from_secs(30)));
    }

    #[test]
    fn duplicate_and_unknown_acks_change_nothing_twice() {
        let mut d = Delivery::new(CFG);
        for s in 1..=3 {
            d.on_appended(s);
        }
        d.on_connected(&welcome(0), t0());
        d.on_sent(&[1, 2, 3], 3);
        assert_eq!(d.on_ack(&Ack::range(1, 3), t0()).len(), 3);
        assert!(d.on_ack(&Ack::range(1, 3), t0()).is_empty());
        assert_eq!(d.in_flight(), 0);
        // An inverted range is ignored.
        assert!(d.on_ack(&Ack { ranges: vec![crate::SeqRange::new(9, 5)] }, t0()).is_empty());
    }

    #[test]
    fn restored_state_continues_where_the_spool_left_off() {
        let mut d = Delivery::new(CFG);
        d.restore(&SeqSet::span(1, 60), 70);
        d.on_connected(&welcome(50), t0());
        assert_eq!(d.poll_send(), Next::Backlog { from: 61, below: 71, max: 6 });
        assert!(d.is_acked(55) && !d.is_acked(61));
    }
}
