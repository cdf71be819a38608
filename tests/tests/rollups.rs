//! The daily rollups on the real ClickHouse 18.16, through the collector's own storage code:
//! recomputations in quick succession always end with the latest (one monotonic version
//! source), and an insert recomputes exactly the days it touched.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use parta_collector::config::ClickHouseConfig;
use parta_collector::storage::Store;
use parta_collector::storage::rows::{Accepted, Batch};
use parta_protocol::usage::{Subject, UsageInterval, UsageState, UserClass};
use parta_protocol::{DeviceId, DeviceKind, Report, Sample};
use parta_tests::clickhouse::ClickHouse;

const SCHOOL: &str = "74-0012";
const DAY_MS: i64 = 86_400_000;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Report `seq` of `device`: one in-use interval of `minutes` at `seq` o'clock UTC of `day`.
fn usage(device: DeviceId, seq: u64, day: i32, minutes: i64) -> Arc<Batch> {
    let start = i64::from(day) * DAY_MS + i64::try_from(seq).unwrap() * 3_600_000;
    let interval = UsageInterval {
        subject: Subject::Host,
        start_ms: start,
        end_ms: start + minutes * 60_000,
        state: UsageState::InUse,
        user_class: UserClass::Teacher,
        user_key: None,
        local_day: day,
    };
    let report = Report { seq, agent_time_ms: start, samples: vec![Sample::Usage(vec![interval])] };
    let mut b = Batch::default();
    b.add_report(&Accepted {
        device_id: device,
        school_id: SCHOOL.into(),
        kind: DeviceKind::Computer,
        agent_version: "test".into(),
        report,
        bytes: 100,
        received: u32::try_from(start / 1000).unwrap(),
        received_ms: start,
    });
    Arc::new(b)
}

#[test]
fn recomputations_end_with_the_latest_and_touch_only_their_days() {
    let ch = ClickHouse::start();
    let rt = rt();
    let store = rt.block_on(async {
        let cfg = ClickHouseConfig {
            url: ch.url(),
            database: "rollups".into(),
            user: "default".into(),
            password: String::new(),
        };
        let s = Store::connect(&cfg).await.unwrap();
        s.migrate().await.unwrap();
        s
    });
    let device = DeviceId::random();
    let day = 20_400;
    let in_use_ms = |day: i32| {
        ch.query_u64(&format!(
            "SELECT sum(ms) FROM (SELECT argMax(total_ms, version) AS ms FROM rollups.usage_daily \
             WHERE device_id = toUUID('{device}') AND local_day = toDate('{}') AND state = 'in_use' \
             GROUP BY local_day, state, user_class)",
            parta_collector::storage::queries::day_string(u16::try_from(day).unwrap())
        ))
    };
    // Three inserts of the same device and day within one second: each recomputation sees more
    // intervals; the last must win (with versions in seconds they tied, and argMax picked one).
    rt.block_on(async {
        for (seq, minutes) in [(1, 60), (2, 30), (3, 15)] {
            store.insert_batch(&usage(device, seq, day, minutes)).await.unwrap();
        }
    });
    assert_eq!(in_use_ms(day), 105 * 60_000, "the last recomputation counts all three intervals");
    let school_day = ch.query_u64(&format!(
        "SELECT s_used FROM (SELECT argMax(in_use_ms, version) AS s_used FROM rollups.school_days \
         WHERE school_id = '{SCHOOL}' AND local_day = toDate('{}'))",
        parta_collector::storage::queries::day_string(u16::try_from(day).unwrap())
    ));
    assert_eq!(school_day, 105 * 60_000);

    // Days 0, 5 and 10 have data; an insert touching days 0 and 10 recomputes those two only:
    // their latest version moves on, day 5's stays (versions, not row counts: background merges
    // of the ReplacingMergeTree fold rows away at any time).
    let version_of = |d: i32| {
        ch.query_u64(&format!(
            "SELECT max(version) FROM rollups.school_days WHERE school_id = '{SCHOOL}' AND local_day = toDate('{}')",
            parta_collector::storage::queries::day_string(u16::try_from(d).unwrap())
        ))
    };
    let other = DeviceId::random();
    rt.block_on(async {
        for (seq, d) in [(1, day + 5), (2, day + 10)] {
            store.insert_batch(&usage(other, seq, d, 10)).await.unwrap();
        }
    });
    let (before_0, before_5, before_10) = (version_of(day), version_of(day + 5), version_of(day + 10));
    let mut both = Batch::default();
    for b in [usage(other, 3, day, 5), usage(other, 4, day + 10, 5)] {
        let b = Arc::try_unwrap(b).unwrap();
        both.usage.extend(b.usage);
        both.ledger.extend(b.ledger);
    }
    rt.block_on(store.insert_batch(&Arc::new(both))).unwrap();
    assert!(version_of(day) > before_0, "day 0 recomputed");
    assert!(version_of(day + 10) > before_10, "day 10 recomputed");
    assert_eq!(version_of(day + 5), before_5, "a day the insert did not touch is not recomputed");
    assert_eq!(in_use_ms(day + 10), 0, "the other device's day is its own");
}
