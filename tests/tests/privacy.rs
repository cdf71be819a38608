//! No user name leaves the device (152-ФЗ; issue 19, item 9). A pupil `ivanov` works on a PC
//! named after him (`kab214-ivanov`, as schools name machines); his USB stick is mounted at
//! `/media/ivanov/USB` and a disk at `/mnt/ivanov`, both real ext4 filesystems on loop devices
//! in the agent's own mount namespace. Over a whole run with a fake logind, with the host name
//! hashed and user hashes salted from a 0640 file, his name appears in no report the agent
//! spooled, in no byte ClickHouse stored, and in no line the agent logged — while his use is
//! counted (class pupil, a salted key) and the machine's own filesystems are reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parta_tests::clickhouse::ClickHouse;
use parta_tests::fixtures::{self, Tree};
use parta_tests::logind::{Bus, FakeLogind};
use parta_tests::procs::{Agent, AgentSpec, Collector};
use parta_tests::util::{artifacts_dir, wait_for};

const SCHOOL: &str = "74-0012";
const NAME: &str = "ivanov";

fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// An 8 MiB ext4 image.
fn ext4_image(path: &std::path::Path) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(8 << 20).unwrap();
    let out = Command::new("mkfs.ext4").args(["-q", "-F"]).arg(path).output().unwrap();
    assert!(out.status.success(), "mkfs.ext4: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn no_user_name_leaves_the_device() {
    let art = artifacts_dir("privacy");
    let ch = ClickHouse::start();
    let db = "parta_privacy";
    let c = Collector::start(&ch, db, &art);
    let token = c.create_token(SCHOOL);
    let bus = Bus::start();
    let logind = FakeLogind::start(&bus);

    let dir = tempfile::tempdir().unwrap();
    let tree = Tree::new(&dir.path().join("root"));
    tree.dmi(fixtures::AQUARIUS_LAPTOP_DMI)
        .procfs(&format!("kab214-{NAME}"), "3f2a1b0c-0000-4000-8000-00000000e001", now_ms() / 1000 - 600)
        .cpu("Intel(R) Core(TM) i5-1135G7", 8, 4, 16_318_412)
        .nic("enp2s0", "00:e0:4c:68:00:07", Some(1000), false, true)
        .os(fixtures::ASTRA_OS_RELEASE, &[("etc/astra_version", "SE 1.7.5\n")])
        .file("etc/passwd", format!("{NAME}:x:1001:2000::/home/{NAME}:/bin/bash\n"))
        .file("etc/group", format!("pupils:x:2000:{NAME}\n"));
    let salt = dir.path().join("user-hash-salt");
    std::fs::write(&salt, "9d1c5e0f3a7b2c4d6e8f0a1b2c3d4e5f\n").unwrap();
    std::fs::set_permissions(&salt, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (usb, disk) = (dir.path().join("usb.img"), dir.path().join("disk.img"));
    ext4_image(&usb);
    ext4_image(&disk);
    // The agent's own mount namespace: the host's /media and /mnt are covered by empty tmpfs,
    // then the stick and the disk are mounted where a desktop and an admin would mount them.
    let setup = format!(
        "set -e; mount -t tmpfs -o size=1m,mode=755 parta-media /media; mkdir -p /media/{NAME}/USB; \
         mount -o loop {usb} /media/{NAME}/USB; mount -t tmpfs -o size=1m,mode=755 parta-mnt /mnt; \
         mkdir -p /mnt/{NAME}; mount -o loop {disk} /mnt/{NAME}; exec \"$0\" \"$@\"",
        usb = usb.display(),
        disk = disk.display()
    );
    let mut spec = AgentSpec::new(&c, SCHOOL, &token)
        .tree(&tree)
        .env("PARTA_LOGIND_BUS", &bus.address)
        .env("PARTA_USAGE_POLL", "100ms")
        .env("PARTA_USAGE_FLUSH", "2s")
        .env("PARTA_HOSTNAME_MODE", "hash")
        .env("PARTA_USER_HASH_SALT_FILE", &salt.display().to_string());
    spec.wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c", &setup]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let mut agent = Agent::start(spec, &art, "agent");
    let device = agent.device_id();

    // The agent does see the stick and the disk: both are ext4 mounts in its namespace.
    let mounts = std::fs::read_to_string(format!("/proc/{}/mounts", agent.pid())).unwrap();
    for m in [format!("/media/{NAME}/USB ext4"), format!("/mnt/{NAME} ext4")] {
        assert!(mounts.contains(&m), "{m} in the agent's namespace:\n{mounts}");
    }

    logind.open("c1", NAME, now_ms());
    let pupil_use = format!(
        "SELECT count() FROM {db}.usage_intervals WHERE device_id = toUUID('{device}') \
         AND state = 'in_use' AND user_class = 'pupil' AND user_key != 0"
    );
    wait_for(Duration::from_secs(60), "the pupil's use, counted with a salted key", || {
        (ch.query_u64(&pupil_use) > 0).then_some(())
    });
    logind.close("c1");
    let filesystems =
        format!("SELECT count() FROM {db}.host_filesystems WHERE device_id = toUUID('{device}')");
    wait_for(Duration::from_secs(30), "filesystems reported", || {
        (ch.query_u64(&filesystems) > 0).then_some(())
    });
    agent.stop();

    // Nothing the agent spooled names him.
    let reports = std::fs::read_to_string(agent.report_log()).unwrap();
    assert!(reports.lines().count() > 1, "reports were logged");
    assert!(!reports.to_lowercase().contains(NAME), "a report names the user:\n{reports}");
    // The machine's own filesystems are reported (the root at least).
    assert!(reports.contains("\"mount\":\"/\""), "the root filesystem is reported");
    // Nor anything ClickHouse stored, in any table of the database.
    for table in ch.query(&format!("SHOW TABLES FROM {db}")).lines() {
        let rows = ch.query(&format!("SELECT * FROM {db}.`{table}` FORMAT TabSeparated"));
        assert!(!rows.to_lowercase().contains(NAME), "{db}.{table} names the user:\n{rows}");
    }
    let hostnames = ch.query(&format!("SELECT DISTINCT hostname FROM {db}.host_info"));
    assert!(
        hostnames.lines().all(|h| h.starts_with("h-") && h.len() == 18),
        "hashed host names: {hostnames}"
    );
    // Nor its log.
    let log = agent.log();
    assert!(!log.to_lowercase().contains(NAME), "the agent's log names the user:\n{log}");
}
