//! The end state every fault-injection case checks: for every agent, each report it took is in
//! ClickHouse exactly once with the values the agent sent, or was reported lost by the agent's
//! spool; and the agent's spool is empty.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;

use crate::clickhouse::ClickHouse;
use crate::procs::Agent;
use crate::util::wait_for;

/// One line of an agent's report log.
#[derive(Debug, Deserialize)]
struct Logged {
    seq: u64,
    samples: Vec<serde_json::Value>,
}

/// What was found for one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Highest sequence number the agent used.
    pub taken: u64,
    /// Reports stored.
    pub stored: u64,
    /// Reports the agent reported as discarded.
    pub reported_lost: u64,
    /// Stored values compared with the agent's own log.
    pub values_checked: u64,
}

/// Waits until the agent has nothing unacknowledged and ClickHouse holds its newest report.
pub fn wait_drained(ch: &ClickHouse, db: &str, agent: &Agent, timeout: Duration) {
    let device = agent.device_id();
    wait_for(timeout, "the agent's spool to drain", || {
        let pending = agent.status()["spool"]["pending"].as_u64();
        let newest_logged = newest_logged(agent);
        let stored_max = ch.query_u64(&format!(
            "SELECT max(seq) FROM {db}.ingest_ledger WHERE device_id = toUUID('{device}')"
        ));
        (pending == Some(0) && stored_max >= newest_logged).then_some(())
    });
}

fn newest_logged(agent: &Agent) -> u64 {
    std::fs::read_to_string(agent.report_log())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Logged>(l).ok())
        .map(|l| l.seq)
        .max()
        .unwrap_or(0)
}

/// Checks the end state for one agent; panics with the first discrepancy.
pub fn exactly_once(ch: &ClickHouse, db: &str, agent: &Agent) -> Summary {
    let device = agent.device_id();
    let mut logged: BTreeMap<u64, Logged> = BTreeMap::new();
    for line in std::fs::read_to_string(agent.report_log()).unwrap().lines() {
        let l: Logged = serde_json::from_str(line).unwrap_or_else(|e| panic!("report log line {line}: {e}"));
        logged.insert(l.seq, l);
    }
    // Merge away the duplicates a crash between insert and acknowledgement may leave.
    for table in ["ingest_ledger", "host_metrics"] {
        ch.query(&format!("OPTIMIZE TABLE {db}.{table} FINAL"));
    }
    let mut ledger: BTreeMap<u64, u64> = BTreeMap::new();
    for line in ch
        .query(&format!(
            "SELECT seq, count() FROM {db}.ingest_ledger WHERE device_id = toUUID('{device}') GROUP BY seq"
        ))
        .lines()
    {
        let mut f = line.split('\t');
        let (seq, n) = (f.next().unwrap().parse().unwrap(), f.next().unwrap().parse().unwrap());
        ledger.insert(seq, n);
    }
    for (seq, n) in &ledger {
        assert_eq!(*n, 1, "device {device}: report {seq} stored {n} times");
    }
    let mut lost = BTreeSet::new();
    let mut reported_lost = 0;
    for line in ch
        .query(&format!(
            "SELECT first_seq, last_seq, reports FROM {db}.spool_losses WHERE device_id = toUUID('{device}') ORDER BY first_seq LIMIT 1 BY seq, first_seq"
        ))
        .lines()
    {
        let f: Vec<u64> = line.split('\t').map(|x| x.parse().unwrap()).collect();
        lost.extend(f[0]..=f[1]);
        reported_lost += f[2];
    }
    let taken = logged.keys().max().copied().unwrap_or(0).max(ledger.keys().max().copied().unwrap_or(0));
    for seq in 1..=taken {
        assert!(
            ledger.contains_key(&seq) || lost.contains(&seq),
            "device {device}: report {seq} of 1..={taken} is neither stored nor reported lost"
        );
    }
    // Values: what ClickHouse holds is what the agent measured.
    #[derive(Deserialize)]
    struct Row {
        seq: String,
        uptime_s: String,
        mem_total: String,
        mem_used: String,
        boot_time: u32,
        cpu_percent: f32,
    }
    let rows: Vec<Row> = ch.query_rows(&format!(
        "SELECT seq, uptime_s, mem_total, mem_used, toUInt32(boot_time) AS boot_time, cpu_percent FROM {db}.host_metrics WHERE device_id = toUUID('{device}')"
    ));
    let mut values_checked = 0;
    for r in rows {
        let seq: u64 = r.seq.parse().unwrap();
        let Some(l) = logged.get(&seq) else { continue };
        let m = l
            .samples
            .iter()
            .find_map(|s| s.get("HostMetrics"))
            .unwrap_or_else(|| panic!("report {seq} logged without metrics"));
        let num = |k: &str| m[k].as_u64().unwrap();
        assert_eq!(r.uptime_s.parse::<u64>().unwrap(), num("uptime_s"), "report {seq}: uptime");
        assert_eq!(r.mem_total.parse::<u64>().unwrap(), num("mem_total"), "report {seq}: memory total");
        assert_eq!(r.mem_used.parse::<u64>().unwrap(), num("mem_used"), "report {seq}: memory used");
        assert_eq!(u64::from(r.boot_time), num("boot_time"), "report {seq}: boot time");
        assert_eq!(r.cpu_percent, m["cpu_percent"].as_f64().unwrap() as f32, "report {seq}: cpu");
        values_checked += 1;
    }
    let stored = ledger.len() as u64;
    let comparable = logged
        .iter()
        .filter(|(s, l)| ledger.contains_key(s) && l.samples.iter().any(|x| x.get("HostMetrics").is_some()))
        .count() as u64;
    assert_eq!(
        values_checked, comparable,
        "device {device}: every stored report the agent logged was compared"
    );
    assert_eq!(agent.status()["spool"]["pending"].as_u64(), Some(0), "device {device}: the spool is empty");
    // Usage intervals: every logged interval of a stored report is in ClickHouse once, and the
    // host's intervals tile the agent's whole life without overlap (and without gaps unless
    // reports were lost).
    let mut logged_iv: Vec<(i64, i64, String)> = Vec::new();
    for (seq, l) in &logged {
        if !ledger.contains_key(seq) {
            continue;
        }
        for s in &l.samples {
            if let Some(list) = s.get("Usage").and_then(|u| u.as_array()) {
                for i in list.iter().filter(|i| i["subject"] == "host") {
                    let n = |k: &str| i[k].as_i64().unwrap();
                    logged_iv.push((n("start_ms"), n("end_ms"), i["state"].as_str().unwrap().to_owned()));
                }
            }
        }
    }
    logged_iv.sort();
    // (A report the agent spooled and sent but was killed before logging is stored and not
    // logged, as in the ledger check above: compare only reports both logged and stored.)
    let all_iv: Vec<(i64, i64, String, u64)> = ch
        .query(&format!(
            "SELECT start_ms, end_ms, state, seq FROM {db}.usage_intervals FINAL WHERE device_id = toUUID('{device}') ORDER BY start_ms"
        ))
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].to_owned(), f[3].parse().unwrap())
        })
        .collect();
    let compared: Vec<(i64, i64, String)> =
        all_iv.iter().filter(|i| logged.contains_key(&i.3)).map(|i| (i.0, i.1, i.2.clone())).collect();
    assert_eq!(compared, logged_iv, "device {device}: usage intervals stored exactly as sent");
    let stored_iv: Vec<(i64, i64, String)> = all_iv.into_iter().map(|i| (i.0, i.1, i.2)).collect();
    for w in stored_iv.windows(2) {
        assert!(w[0].1 <= w[1].0, "device {device}: overlapping intervals {:?} {:?}", w[0], w[1]);
        if reported_lost == 0 {
            assert_eq!(w[0].1, w[1].0, "device {device}: gap between intervals {:?} {:?}", w[0], w[1]);
        }
    }
    Summary { taken, stored, reported_lost, values_checked }
}
