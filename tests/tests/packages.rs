//! Parta's packages (`scripts/package.sh`) installed for real: the `.deb`s with `dpkg` in a
//! Debian root made by `debootstrap` — installed with enrollment from `PARTA_JOIN`, upgraded,
//! removed, reinstalled and purged — checked by `lintian` and `systemd-analyze verify`; the
//! `.rpm`s read with Debian's `rpm` tools and installed, upgraded and erased by `rpm --root` in
//! such a root, where their scriptlets run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use parta_tests::clickhouse::ClickHouse;
use parta_tests::debroot::DebRoot;
use parta_tests::procs::Collector;
use parta_tests::util::{artifacts_dir, binary, workspace_root};

/// Builds the packages of `formats` from the test binaries with package release `release`
/// into `out`, and returns their paths.
fn package(out: &Path, release: &str, formats: &str) -> Vec<PathBuf> {
    let bin = binary("parta-agent").parent().unwrap().to_owned();
    let _ = binary("parta-collector");
    let res = Command::new(workspace_root().join("scripts/package.sh"))
        .env("PARTA_PKG_BIN_DIR", &bin)
        .env("PARTA_PKG_OUT", out)
        .env("PARTA_PKG_RELEASE", release)
        .env("PARTA_PKG_FORMATS", formats)
        .env("PARTA_PKG_COMPRESS", "fast")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "scripts/package.sh: {err}");
    let paths: Vec<PathBuf> = String::from_utf8(res.stdout).unwrap().lines().map(PathBuf::from).collect();
    assert!(!paths.is_empty() && paths.iter().all(|p| p.is_file()), "{paths:?} {err}");
    paths
}

fn find<'a>(paths: &'a [PathBuf], prefix: &str, ext: &str) -> &'a Path {
    paths
        .iter()
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(prefix) && n.ends_with(ext)
        })
        .unwrap_or_else(|| panic!("no {prefix}…{ext} in {paths:?}"))
}

/// `stat` of each path in the root: "MODE USER GROUP" lines.
fn modes(root: &DebRoot, paths: &[&str]) -> Vec<String> {
    root.sh_ok(&format!("stat -c '%a %U %G' {}", paths.join(" ")), &[]).lines().map(str::to_owned).collect()
}

/// Every file under a directory of the root with its SHA-256, sorted.
fn snapshot(root: &DebRoot, dir: &str) -> String {
    root.sh_ok(&format!("cd {dir} && find . -type f | sort | xargs sha256sum"), &[])
}

fn passwd_entry(root: &DebRoot, user: &str) -> Vec<String> {
    std::fs::read_to_string(root.file("/etc/passwd"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .unwrap_or_else(|| panic!("no user {user} in the root's /etc/passwd"))
        .split(':')
        .map(str::to_owned)
        .collect()
}

#[test]
fn deb_packages_install_enroll_upgrade_and_remove_in_a_debian_root() {
    let art = artifacts_dir("packages-deb");
    let out = tempfile::tempdir().unwrap();
    let (v1, v2) = (out.path().join("v1"), out.path().join("v2"));
    let first = package(&v1, "1", "deb");
    let second = package(&v2, "2", "deb");

    // lintian: clean, but for the tags the packages override with their reason.
    let lint = Command::new("lintian").args(["--fail-on", "error,warning"]).args(&first).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&lint.stdout), String::from_utf8_lossy(&lint.stderr));
    assert!(lint.status.success(), "lintian: {text}");
    assert!(!text.lines().any(|l| l.starts_with("E:") || l.starts_with("W:")), "lintian: {text}");

    let ch = ClickHouse::start();
    // The region's release key: join strings carry it, enrollment pins it, and the package
    // gives root's installer its own copy.
    let keys = tempfile::tempdir().unwrap();
    let keygen = Command::new(binary("parta-release"))
        .args(["keygen", "--out"])
        .arg(keys.path().join("k"))
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{}", String::from_utf8_lossy(&keygen.stderr));
    let release_pub = keys.path().join("k/release.pub");
    let collector =
        Collector::start_with(&ch, "pkgdeb", &art, &[("PARTA_RELEASE_KEY", release_pub.to_str().unwrap())]);
    let school = "74-0012";
    let (_, join) = collector.create_join(school, &["--uses", "3"]);
    let root = DebRoot::fresh();
    let agent1 = root.put(find(&first, "parta-agent_", ".deb"));
    let agent2 = root.put(find(&second, "parta-agent_", ".deb"));

    // Installed with the join string in the environment: the device enrolls, the service is
    // enabled (started where systemd runs; a chroot has none).
    let said = root.sh_ok(&format!("dpkg -i {agent1}"), &[("PARTA_JOIN", &join), ("PARTA_ROOM", "каб. 214")]);
    assert!(said.contains("enrolled as device") && said.contains(school), "{said}");
    let id = std::fs::read_to_string(root.file("/var/lib/parta-agent/device-id")).unwrap().trim().to_owned();
    let list = collector.command().args(["device", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.lines().any(|l| l.contains(&id) && l.contains(school)), "device list: {list}");
    let user = passwd_entry(&root, "parta-agent");
    assert!(user[2].parse::<u32>().unwrap() < 1000, "a system user: {user:?}");
    assert_eq!(user[6], "/usr/sbin/nologin", "{user:?}");
    assert_eq!(
        modes(
            &root,
            &[
                "/usr/bin/parta-agent",
                "/var/lib/parta-agent",
                "/var/lib/parta-agent/device.key",
                "/var/lib/parta-agent/device.pem",
                "/etc/parta/agent.toml",
                "/etc/parta/release.pub",
            ]
        ),
        [
            "755 root root",
            "700 parta-agent parta-agent",
            "600 parta-agent parta-agent",
            "600 parta-agent parta-agent",
            "644 root root",
            "644 root root"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(root.file("/etc/parta/release.pub")).unwrap(),
        std::fs::read_to_string(&release_pub).unwrap(),
        "root's installer trusts the region's key"
    );
    let config = std::fs::read_to_string(root.file("/etc/parta/agent.toml")).unwrap();
    assert!(config.contains(&collector.quic_addr()) && config.contains("room = \"каб. 214\""), "{config}");
    let wants = root.file("/etc/systemd/system/multi-user.target.wants/parta-agent.service");
    assert!(wants.symlink_metadata().is_ok(), "an enrolled device's agent is enabled");
    for (target, unit) in [("paths", "parta-agent-update.path"), ("multi-user", "parta-agent-update.service")]
    {
        let wants = root.file(&format!("/etc/systemd/system/{target}.target.wants/{unit}"));
        assert!(wants.symlink_metadata().is_ok(), "the update installer {unit} is enabled");
    }
    // The installed units, as systemd reads them on the installed system.
    let verify = root.sh(
        "systemd-analyze verify --man=no /lib/systemd/system/parta-agent.service \
         /lib/systemd/system/parta-agent-update.path /lib/systemd/system/parta-agent-update.service",
        &[],
    );
    let verr = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && verr.trim().is_empty(), "systemd-analyze verify: {verr}");
    // The manual page is there and names the commands.
    let man = root.sh_ok("zcat /usr/share/man/man1/parta-agent.1.gz", &[]);
    assert!(man.contains("enroll"), "{man}");

    // The installed agent runs as its user with the written configuration; with the collector
    // gone, its reports wait in the spool.
    drop(collector);
    root.sh_ok(
        "runuser -u parta-agent -- env PARTA_INTERVAL=1s PARTA_LOGIND_BUS=none PARTA_STATE_DIR=/var/lib/parta-agent \
         parta-agent --config /etc/parta/agent.toml run >/tmp/agent.log 2>&1 & \
         pid=$!; for i in $(seq 1 300); do \
           [ -n \"$(find /var/lib/parta-agent/spool -type f -size +0 2>/dev/null)\" ] && break; sleep 0.1; done; \
         kill $pid; wait $pid || true; find /var/lib/parta-agent/spool -type f -size +0 | grep -q . \
         || { cat /tmp/agent.log; exit 1; }",
        &[],
    );
    let state = snapshot(&root, "/var/lib/parta-agent");
    assert!(state.contains("./spool/"), "{state}");

    // Upgrade to the second package: same user, same configuration (the enrolled one, not the
    // example), the identity and spool untouched, still enabled.
    let said = root.sh_ok(&format!("dpkg -i {agent2}"), &[]);
    assert!(!said.contains("not enrolled"), "{said}");
    let status = root.sh_ok("dpkg-query -W -f '${Version} ${Status}' parta-agent", &[]);
    assert!(status.ends_with("-2 install ok installed"), "{status}");
    assert_eq!(passwd_entry(&root, "parta-agent"), user);
    assert_eq!(std::fs::read_to_string(root.file("/etc/parta/agent.toml")).unwrap(), config);
    let leftovers = root.sh_ok("ls /etc/parta", &[]);
    assert!(!leftovers.contains("dpkg-"), "{leftovers}");
    assert_eq!(snapshot(&root, "/var/lib/parta-agent"), state, "the upgrade kept the state");
    assert!(wants.symlink_metadata().is_ok(), "still enabled after the upgrade");

    // Removal: the program goes, the identity, credential, spool and configuration stay.
    root.sh_ok("dpkg -r parta-agent", &[]);
    assert!(!root.file("/usr/bin/parta-agent").exists());
    assert_eq!(snapshot(&root, "/var/lib/parta-agent"), state, "removal kept the state");
    assert_eq!(std::fs::read_to_string(root.file("/etc/parta/agent.toml")).unwrap(), config);
    // Reinstalled with a join string again: the device is the same one, nothing re-enrolls.
    let said = root.sh_ok(&format!("dpkg -i {agent2}"), &[("PARTA_JOIN", &join)]);
    assert!(said.contains("already enrolled"), "{said}");
    assert_eq!(snapshot(&root, "/var/lib/parta-agent"), state);
    // Purge: everything of the device goes.
    root.sh_ok("dpkg -P parta-agent", &[]);
    assert!(!root.file("/var/lib/parta-agent").exists() && !root.file("/etc/parta/agent.toml").exists());

    // The collector's package: its user, a configuration only it can read, not started on a
    // first installation (it needs its names and ClickHouse first); an edited configuration
    // survives the upgrade.
    let c1 = root.put(find(&first, "parta-collector_", ".deb"));
    let c2 = root.put(find(&second, "parta-collector_", ".deb"));
    let said = root.sh_ok(&format!("dpkg -i {c1}"), &[]);
    assert!(said.contains("set tls_names"), "{said}");
    passwd_entry(&root, "parta-collector");
    assert_eq!(
        modes(&root, &["/etc/parta/collector.toml", "/var/lib/parta-collector"]),
        ["640 root parta-collector", "700 parta-collector parta-collector"]
    );
    assert!(
        root.file("/etc/systemd/system/multi-user.target.wants/parta-collector.service")
            .symlink_metadata()
            .is_err()
    );
    root.sh_ok("echo 'tls_names = \"parta.region.ru\"' >> /etc/parta/collector.toml", &[]);
    let edited = std::fs::read_to_string(root.file("/etc/parta/collector.toml")).unwrap();
    root.sh_ok(&format!("dpkg -i {c2}"), &[]);
    assert_eq!(std::fs::read_to_string(root.file("/etc/parta/collector.toml")).unwrap(), edited);
    assert_eq!(modes(&root, &["/etc/parta/collector.toml"]), ["640 root parta-collector"]);
    let verify = root.sh("systemd-analyze verify --man=no /lib/systemd/system/parta-collector.service", &[]);
    let verr = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && verr.trim().is_empty(), "systemd-analyze verify: {verr}");
}

/// `rpm -qp QUERY PACKAGE` on the host.
fn rpm_q(args: &[&str], package: &Path) -> String {
    let out = Command::new("rpm").args(args).arg(package).output().unwrap();
    assert!(out.status.success(), "rpm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn rpm_packages_read_right_and_install_upgrade_erase_with_rpm_root() {
    let out = tempfile::tempdir().unwrap();
    let first = package(&out.path().join("v1"), "1", "rpm");
    let second = package(&out.path().join("v2"), "2", "rpm");
    let agent1 = find(&first, "parta-agent-", ".rpm");
    let agent2 = find(&second, "parta-agent-", ".rpm");

    let files = rpm_q(&["-qpl"], agent1);
    for f in [
        "/usr/bin/parta-agent",
        "/usr/lib/systemd/system/parta-agent.service",
        "/usr/lib/sysusers.d/parta-agent.conf",
        "/usr/lib/tmpfiles.d/parta-agent.conf",
        "/etc/parta/agent.toml",
        "/usr/share/man/man1/parta-agent.1.gz",
    ] {
        assert!(files.lines().any(|l| l == f), "{f} not in {files}");
    }
    assert_eq!(rpm_q(&["-qp", "--configfiles"], agent1).trim(), "/etc/parta/agent.toml");
    let requires = rpm_q(&["-qp", "--requires"], agent1);
    assert!(requires.contains("libc.so.6(GLIBC_") && requires.lines().any(|l| l == "systemd"), "{requires}");
    let scripts = rpm_q(&["-qp", "--scripts"], agent1);
    assert!(
        scripts.contains("agent_enroll") && scripts.contains("useradd") && scripts.contains("preuninstall"),
        "{scripts}"
    );
    // Metadata in Russian as well as English.
    let ru = rpm_q(&["-qp", "--qf", "%{SUMMARY}"], agent1);
    assert!(ru.starts_with("Parta agent"), "{ru}");
    let header = rpm_q(&["-qp", "--qf", "[%{HEADERI18NTABLE}\n]"], agent1);
    assert!(header.lines().any(|l| l == "ru"), "{header}");

    // Installed into a Debian root by the host's rpm: the scriptlets run chrooted there (the
    // root's rpm database knows nothing of Debian's packages, hence --nodeps).
    let root = DebRoot::fresh();
    let rpm = |args: &[&str]| {
        let mut all = vec!["rpm", "--root"];
        let r = root.path().to_str().unwrap().to_owned();
        all.push(&r);
        all.extend(["--dbpath", "/var/lib/rpm"]);
        all.extend(args);
        let o = root.mounted(&all);
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success(), "{all:?}: {text}");
        text
    };
    rpm(&["--initdb"]);
    let said = rpm(&["-i", "--nodeps", agent1.to_str().unwrap()]);
    assert!(said.contains("not enrolled"), "{said}");
    let user = passwd_entry(&root, "parta-agent");
    assert_eq!(
        modes(&root, &["/usr/bin/parta-agent", "/var/lib/parta-agent", "/etc/parta/agent.toml"]),
        ["755 root root", "700 parta-agent parta-agent", "644 root root"]
    );
    // An edited configuration survives the upgrade and is verified as changed.
    root.sh_ok(
        "echo 'room = \"каб. 101\"' >> /etc/parta/agent.toml && touch /var/lib/parta-agent/marker",
        &[],
    );
    let edited = std::fs::read_to_string(root.file("/etc/parta/agent.toml")).unwrap();
    rpm(&["-U", "--nodeps", agent2.to_str().unwrap()]);
    assert_eq!(rpm(&["-q", "parta-agent"]).trim(), "parta-agent-0.1.0-2.x86_64");
    assert_eq!(std::fs::read_to_string(root.file("/etc/parta/agent.toml")).unwrap(), edited);
    assert!(!root.file("/etc/parta/agent.toml.rpmnew").exists());
    assert_eq!(passwd_entry(&root, "parta-agent"), user);
    // Erased: the program goes, the state stays, the edited configuration is saved aside.
    rpm(&["-e", "--nodeps", "parta-agent"]);
    assert!(!root.file("/usr/bin/parta-agent").exists());
    assert!(root.file("/var/lib/parta-agent/marker").exists());
    assert_eq!(std::fs::read_to_string(root.file("/etc/parta/agent.toml.rpmsave")).unwrap(), edited);

    let c1 = find(&first, "parta-collector-", ".rpm");
    let said = rpm(&["-i", "--nodeps", c1.to_str().unwrap()]);
    assert!(said.contains("set tls_names"), "{said}");
    assert_eq!(modes(&root, &["/etc/parta/collector.toml"]), ["640 root parta-collector"]);
}

#[test]
fn ansible_playbook_installs_and_enrolls_the_agent_once() {
    let art = artifacts_dir("packages-ansible");
    let out = tempfile::tempdir().unwrap();
    let pkgs = package(out.path(), "1", "deb");
    let ch = ClickHouse::start();
    let collector = Collector::start(&ch, "pkgansible", &art);
    let school = "74-0345";
    let (_, join) = collector.create_join(school, &["--uses", "2"]);
    let root = DebRoot::fresh();
    // The inventory a municipality would write: one line per device, the join string once per
    // school; the device here is the Debian root, reached with Ansible's chroot connection.
    let inventory = out.path().join("schools.ini");
    std::fs::write(
        &inventory,
        format!(
            "[school_74_0345]\n{} ansible_connection=community.general.chroot ansible_python_interpreter=/usr/bin/python3 parta_room=\"каб. 301\"\n\
             [school_74_0345:vars]\nparta_join=\"{join}\"\n",
            root.path().display()
        ),
    )
    .unwrap();
    let playbook = workspace_root().join("installers/ansible/parta-agent.yml");
    let deb = find(&pkgs, "parta-agent_", ".deb");
    let run = || {
        let o = root.mounted(&[
            "ansible-playbook".as_ref(),
            "-i".as_ref(),
            inventory.as_os_str(),
            playbook.as_os_str(),
            "-e".as_ref(),
            format!("parta_package={}", deb.display()).as_ref(),
        ]);
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        std::fs::write(art.join("ansible.log"), &text).unwrap();
        assert!(o.status.success(), "ansible-playbook: {text}");
        text
    };
    let first = run();
    assert!(first.contains("failed=0"), "{first}");
    let id = std::fs::read_to_string(root.file("/var/lib/parta-agent/device-id")).unwrap().trim().to_owned();
    let list = collector.command().args(["device", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.lines().any(|l| l.contains(&id) && l.contains(school)), "device list: {list}");
    let config = std::fs::read_to_string(root.file("/etc/parta/agent.toml")).unwrap();
    assert!(config.contains("room = \"каб. 301\""), "{config}");
    assert!(!root.file("/etc/parta/join").exists(), "the school's token does not stay on the device");
    assert!(!first.contains(&join) && !first.contains("pt1_"), "the join string is never logged: {first}");
    // Run again: nothing changes on the enrolled device (no second enrollment, no join file).
    let second = run();
    assert!(second.contains("changed=0"), "{second}");
    assert_eq!(std::fs::read_to_string(root.file("/var/lib/parta-agent/device-id")).unwrap().trim(), id);
    assert!(!root.file("/etc/parta/join").exists());
}
