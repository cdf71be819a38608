//! Usage end to end: a fake systemd-logind on a private D-Bus bus and a fixture sysfs drive a
//! compressed school day (one minute = one second); the collector's API must give the script's
//! totals. A device rebooted while the agent was down gets complete, non-overlapping intervals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parta_agent::sources::inventory::DISPLAY_NAMESPACE;
use parta_agent::sources::power::WtmpEvent;
use parta_tests::clickhouse::ClickHouse;
use parta_tests::fixtures::{self, Tree};
use parta_tests::logind::{Bus, FakeLogind};
use parta_tests::procs::{Agent, AgentSpec, Collector};
use parta_tests::util::{artifacts_dir, wait_for};
use parta_tests::verify;
use serde_json::Value;

const SCHOOL: &str = "74-0012";
/// One scripted minute.
const MINUTE: Duration = Duration::from_secs(1);

fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

fn device_tree(root: &std::path::Path, boot_id: &str, btime: i64) -> Tree {
    let t = Tree::new(root);
    t.dmi(fixtures::AQUARIUS_LAPTOP_DMI)
        .procfs("kab214-teacher", boot_id, btime)
        .cpu("Intel(R) Core(TM) i5-1135G7", 8, 4, 16_318_412)
        .disk("nvme0n1", "KINGSTON SNV2S500G", 976_773_168, false, false)
        .nic("enp2s0", "00:e0:4c:68:00:01", Some(1000), false, true)
        .connector("HDMI-A-2", &fixtures::panel_edid(), false, false)
        .os(fixtures::ASTRA_OS_RELEASE, &[("etc/astra_version", "SE 1.7.5\n")])
        .file(
            "etc/passwd",
            "ivanova:x:1001:1001::/home/ivanova:/bin/bash\npetya:x:1002:2000::/home/petya:/bin/bash\n",
        )
        .file("etc/group", "ivanova:x:1001:\nteachers:x:3000:ivanova\npupils:x:2000:\n");
    t
}

fn usage_spec(c: &Collector, token: &str, tree: &Tree, bus: Option<&Bus>) -> AgentSpec {
    AgentSpec::new(c, SCHOOL, token)
        .env("PARTA_USAGE_POLL", "100ms")
        .env("PARTA_IDLE_AFTER", "5s")
        .env("PARTA_USAGE_FLUSH", "20s")
        .env("PARTA_EQUIPMENT_CLASS", "teacher_laptop")
        .env("PARTA_ROOM", "каб. 214")
        .env("PARTA_LOGIND_BUS", &bus.map_or_else(|| "none".to_owned(), |b| b.address.clone()))
        .env("TZ", "Europe/Moscow")
        .tree(tree)
}

/// Sum of a field over the days of a usage response.
fn total(usage: &Value, field: &str) -> f64 {
    usage["days"].as_array().unwrap().iter().map(|d| d[field].as_f64().unwrap_or(0.0)).sum()
}

fn by_class(usage: &Value, class: &str) -> f64 {
    usage["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["in_use_by_user_class_s"][class].as_f64().unwrap_or(0.0))
        .sum()
}

fn range() -> String {
    let today = time::OffsetDateTime::now_utc().date();
    let f = time::macros::format_description!("[year]-[month]-[day]");
    format!(
        "from={}&to={}",
        (today - time::Duration::days(1)).format(f).unwrap(),
        (today + time::Duration::days(1)).format(f).unwrap()
    )
}

fn get_json(c: &Collector, path: &str) -> Value {
    let (status, body) = c.get(path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn close_to(what: &str, got: f64, want_ms: i64, tolerance_s: f64) {
    let want = want_ms as f64 / 1000.0;
    assert!(
        (got - want).abs() <= tolerance_s,
        "{what}: API says {got} s, the script says {want} s (±{tolerance_s})"
    );
}

#[test]
fn scripted_day_totals_match_the_api() {
    let art = artifacts_dir("usage_scripted_day");
    let ch = ClickHouse::start();
    let c = Collector::start(&ch, "u1", &art);
    let token = c.create_token(SCHOOL);
    let bus = Bus::start();
    let logind = FakeLogind::start(&bus);
    let dir = tempfile::tempdir().unwrap();
    let boot_s = now_ms() / 1000 - 600;
    let tree = device_tree(dir.path(), "3f2a1b0c-0000-4000-8000-00000000d001", boot_s);
    let mut agent = Agent::start(usage_spec(&c, &token, &tree, Some(&bus)), &art, "agent");
    let host = agent.device_id();
    wait_for(Duration::from_secs(30), "the agent's first usage observation", || {
        agent.log().contains("usage tracking starts").then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));

    // The script: (minute, action). Times are recorded as the actions happen.
    let base = Instant::now();
    let at = |minute: u64| {
        let due = base + MINUTE * u32::try_from(minute).unwrap();
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        now_ms()
    };
    let t2 = at(2);
    logind.open("1", "ivanova", t2); // a teacher logs in
    let t5 = at(5);
    tree.set_connector("HDMI-A-2", true, true); // the panel is switched on
    let t10 = at(10);
    logind.set_idle("1", true, t10); // the teacher stops typing
    let t20 = at(20);
    logind.set_idle("1", false, t20); // ... and starts again
    let t26 = at(26);
    logind.close("1"); // logs out
    let t28 = at(28);
    logind.open("2", "petya", t28); // a pupil logs in
    let t30 = at(30);
    tree.set_connector("HDMI-A-2", true, false); // panel to standby
    let t35 = at(35);
    tree.set_connector("HDMI-A-2", true, true); // and back on
    let t40 = at(40);
    let t36 = t40 - 4 * 1000;
    logind.set_idle("2", true, t36); // the desktop reports the pupil idle since minute 36
    let t45 = at(45);
    logind.close("2");
    let t50 = at(50);
    tree.set_connector("HDMI-A-2", false, false); // panel unplugged
    at(52);
    let stopped = now_ms();
    assert!(agent.stop().unwrap().success());
    let _ = t45;

    let idle_after = 5_000;
    let teacher = (t10 + idle_after - t2) + (t26 - t20);
    let pupil = t36 + idle_after - t28;
    let powered = stopped - boot_s * 1000;
    let panel_on = (t30 - t5) + (t50 - t35);
    let panel_standby = t35 - t30;

    let usage = wait_for(Duration::from_secs(30), "the usage to be stored", || {
        let u = get_json(&c, &format!("/api/v1/devices/{host}/usage?{}", range()));
        (total(&u, "powered_s") >= (powered as f64 / 1000.0) - 1.0).then_some(u)
    });
    eprintln!("{usage:#}");
    // Session ends and display changes are seen by the 100 ms poll; session starts and idle
    // times come from logind and are exact. "To the minute" at one minute per second is ±1 s.
    close_to("teacher in use", by_class(&usage, "teacher"), teacher, 0.5);
    close_to("pupil in use", by_class(&usage, "pupil"), pupil, 0.3);
    close_to("in use", total(&usage, "in_use_s"), teacher + pupil, 0.5);
    close_to("powered on", total(&usage, "powered_s"), powered, 0.8);
    assert_eq!(total(&usage, "off_s"), 0.0);
    let unmonitored = total(&usage, "unmonitored_s");
    assert!((600.0..620.0).contains(&unmonitored), "boot to agent start is unmonitored: {unmonitored}");

    // The panel is a device of its own, in use while connected and on.
    // The agent names it by its EDID; the collector stores it in the school's namespace.
    let reported = uuid::Uuid::new_v5(&DISPLAY_NAMESPACE, b"edid:NTC:29953:NP75B2200417");
    let panel = parta_protocol::ids::school_display(SCHOOL, parta_protocol::DeviceId(reported)).to_string();
    let pu = get_json(&c, &format!("/api/v1/devices/{panel}/usage?{}", range()));
    close_to("panel in use", total(&pu, "in_use_s"), panel_on, 0.8);
    close_to("panel in standby", total(&pu, "off_s"), panel_standby, 0.5);
    let detail = get_json(&c, &format!("/api/v1/devices/{panel}"));
    assert_eq!(
        (detail["kind"].as_str(), detail["equipment_class"].as_str(), detail["host_id"].as_str()),
        (Some("panel"), Some("interactive_complex"), Some(host.as_str())),
        "{detail}"
    );
    assert_eq!(detail["inventory"]["serial"], "NP75B2200417");
    let detail = get_json(&c, &format!("/api/v1/devices/{host}"));
    assert_eq!(detail["equipment_class"], "teacher_laptop");
    assert_eq!(detail["room"], "каб. 214");
    assert_eq!(detail["inventory"]["dmi"]["serial"], "QCNS6850123456");

    // The school: one teacher laptop and one interactive complex, both used.
    let util = get_json(&c, &format!("/api/v1/schools/{SCHOOL}/utilization?{}", range()));
    let classes = util["classes"].as_array().unwrap();
    let class = |name: &str| {
        classes.iter().find(|c| c["equipment_class"] == name).unwrap_or_else(|| panic!("{name} in {util}"))
    };
    assert_eq!(
        (class("teacher_laptop")["devices"].as_u64(), class("teacher_laptop")["devices_used"].as_u64()),
        (Some(1), Some(1))
    );
    close_to(
        "school: teacher laptops in use",
        class("teacher_laptop")["in_use_s"].as_f64().unwrap(),
        teacher + pupil,
        0.3,
    );
    assert_eq!(class("interactive_complex")["devices_used"].as_u64(), Some(1));

    // By room: both devices are in каб. 214.
    let rooms = get_json(&c, &format!("/api/v1/schools/{SCHOOL}/utilization?by=room&{}", range()));
    let rooms = rooms["rooms"].as_array().unwrap();
    assert_eq!(rooms.len(), 2, "{rooms:?}");
    assert!(rooms.iter().all(|r| r["room"] == "каб. 214" && r["devices_used"] == 1), "{rooms:?}");
    let (status, body) = c.get(&format!("/api/v1/schools/{SCHOOL}/utilization?by=floor"));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("by"), "{body}");

    // Privacy: no user name reached ClickHouse.
    let dump = ch.query("SELECT * FROM u1.usage_intervals FORMAT TSV");
    assert!(!dump.contains("ivanova") && !dump.contains("petya"));
}

#[test]
fn reboots_while_offline_leave_complete_non_overlapping_intervals() {
    let art = artifacts_dir("usage_reboot_offline");
    let ch = ClickHouse::start();
    let mut c = Collector::start(&ch, "u2", &art);
    let token = c.create_token(SCHOOL);
    let dir = tempfile::tempdir().unwrap();
    let boot1 = now_ms() / 1000 - 120;
    let tree = device_tree(dir.path(), "b0000000-0000-4000-8000-000000000001", boot1);
    let mut agent = Agent::start(usage_spec(&c, &token, &tree, None), &art, "agent");
    let host = agent.device_id();
    std::thread::sleep(Duration::from_secs(3));
    // The collector goes away; the machine shuts down cleanly (agent stopped, wtmp record),
    // boots again, and the agent starts while the collector is still away.
    c.stop();
    std::thread::sleep(Duration::from_secs(1));
    assert!(agent.stop().unwrap().success());
    let shutdown1 = now_ms() + 300;
    tree.wtmp(&[WtmpEvent::Shutdown(shutdown1)]);
    std::thread::sleep(Duration::from_secs(3));
    let boot2 = now_ms() / 1000;
    tree.wtmp(&[WtmpEvent::Boot(boot2 * 1000)]).boot("b0000000-0000-4000-8000-000000000002", boot2);
    std::thread::sleep(Duration::from_secs(1));
    agent.restart();
    std::thread::sleep(Duration::from_secs(3));
    // Power cut: kill -9, no shutdown record; boot again.
    agent.kill();
    std::thread::sleep(Duration::from_secs(2));
    let boot3 = now_ms() / 1000;
    tree.boot("b0000000-0000-4000-8000-000000000003", boot3);
    std::thread::sleep(Duration::from_secs(1));
    agent.restart();
    std::thread::sleep(Duration::from_secs(2));
    c.restart();
    verify::wait_drained(&ch, "u2", &agent, Duration::from_secs(60));
    assert!(agent.stop().unwrap().success());
    // Every report once, every interval once, the host's intervals tile its life.
    let s = verify::exactly_once(&ch, "u2", &agent);
    assert_eq!(s.reported_lost, 0);
    let events = ch.query(&format!(
        "SELECT kind, clean, at_ms, boot_id FROM u2.power_events FINAL WHERE device_id = toUUID('{host}') ORDER BY at_ms FORMAT TSV"
    ));
    let rows: Vec<Vec<&str>> = events.lines().map(|l| l.split('\t').collect()).collect();
    let kinds: Vec<(&str, &str)> = rows.iter().map(|r| (r[0], r[1])).collect();
    assert_eq!(
        kinds,
        [("boot", "0"), ("shutdown", "1"), ("boot", "0"), ("shutdown", "0"), ("boot", "0")],
        "boot, clean shutdown, boot, power cut, boot: {events}"
    );
    assert_eq!(rows[1][2], shutdown1.to_string(), "the clean shutdown's time comes from wtmp");
    assert_eq!(rows[2][2], (boot2 * 1000).to_string());
    assert_eq!(rows[4][2], (boot3 * 1000).to_string());
    // Off between each shutdown and the next boot.
    let off = ch.query(&format!(
        "SELECT start_ms, end_ms FROM u2.usage_intervals FINAL WHERE device_id = toUUID('{host}') AND state = 'off' ORDER BY start_ms FORMAT TSV"
    ));
    let off: Vec<(i64, i64)> = off
        .lines()
        .map(|l| {
            let f: Vec<i64> = l.split('\t').map(|x| x.parse().unwrap()).collect();
            (f[0], f[1])
        })
        .collect();
    assert_eq!(off.first(), Some(&(shutdown1, boot2 * 1000)), "{off:?}");
    assert_eq!(off.last().map(|o| o.1), Some(boot3 * 1000), "{off:?}");
    let first: i64 = ch
        .query(&format!(
            "SELECT min(start_ms) FROM u2.usage_intervals FINAL WHERE device_id = toUUID('{host}')"
        ))
        .trim()
        .parse()
        .unwrap();
    assert_eq!(first, boot1 * 1000, "intervals start at the first boot");
}
