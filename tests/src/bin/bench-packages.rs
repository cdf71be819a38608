//! Packages: their sizes, how long `scripts/package.sh` takes, and how long installing the
//! agent's `.deb` takes in a Debian root made by `debootstrap` (maintainer scripts included:
//! the user, the state directory, the unit's state) and its `.rpm` with `rpm --root`, against a
//! baseline measured in the same run: unpacking the same `.deb` with `dpkg-deb -x` (the files
//! alone, no package database, no scripts).
//!
//! ```sh
//! cargo run --release -p parta-tests --bin bench-packages [-- ROUNDS]
//! ```
//!
//! Packages the release binaries (built first unless `PARTA_TEST_SKIP_BUILD` is set), xz as
//! shipped. No enrollment (that is a network round trip, measured by `bench-fleet`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use parta_tests::debroot::DebRoot;
use parta_tests::util::{binary, workspace_root};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?}: {text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mib(path: &Path) -> f64 {
    std::fs::metadata(path).unwrap().len() as f64 / 1_048_576.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args().nth(1).map_or(5, |a| a.parse().expect("ROUNDS: a number"));
    let bin = binary("parta-agent").parent().unwrap().to_owned();
    let _ = binary("parta-collector");
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let listed = run(Command::new(workspace_root().join("scripts/package.sh"))
        .env("PARTA_PKG_BIN_DIR", &bin)
        .env("PARTA_PKG_OUT", out.path()));
    let packaging = started.elapsed().as_secs_f64();
    let pkgs: Vec<PathBuf> = listed.lines().map(PathBuf::from).collect();
    println!("bench-packages: {} packages built in {packaging:.1} s from {}", pkgs.len(), bin.display());
    for name in ["parta-agent", "parta-collector"] {
        println!("  {name}: binary {:.1} MiB", mib(&bin.join(name)));
    }
    for p in &pkgs {
        println!("  {}: {:.2} MiB", p.file_name().unwrap().to_string_lossy(), mib(p));
    }
    let pick = |prefix: &str, ext: &str| {
        pkgs.iter()
            .find(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.starts_with(prefix) && n.ends_with(ext)
            })
            .unwrap()
            .clone()
    };
    let (deb, rpm) = (pick("parta-agent_", ".deb"), pick("parta-agent-", ".rpm"));

    let root = DebRoot::fresh();
    let inside = root.put(&deb);
    let rpm_path = rpm.to_str().unwrap().to_owned();
    let root_path = root.path().to_str().unwrap().to_owned();
    // The host's rpm on the root, its scriptlets running chrooted there.
    let rpm_root = |args: &[&str]| {
        let mut all = vec!["rpm", "--root", &root_path, "--dbpath", "/var/lib/rpm"];
        all.extend(args);
        let o = root.mounted(&all);
        assert!(o.status.success(), "{all:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    rpm_root(&["--initdb"]);
    let (mut install, mut remove, mut unpack, mut rpm_install) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        root.sh_ok(&format!("dpkg -i {inside}"), &[]);
        install.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        root.sh_ok("dpkg -P parta-agent", &[]);
        remove.push(t.elapsed().as_secs_f64());
        // Baseline: the same files unpacked, nothing else.
        let x = tempfile::tempdir().unwrap();
        let t = Instant::now();
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(x.path()));
        unpack.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        rpm_root(&["-i", "--nodeps", &rpm_path]);
        rpm_install.push(t.elapsed().as_secs_f64());
        rpm_root(&["-e", "--nodeps", "parta-agent"]);
    }
    let (i, r, u, ri) = (median(install), median(remove), median(unpack), median(rpm_install));
    println!(
        "agent .deb: dpkg -i {i:.2} s, dpkg -P {r:.2} s (median of {rounds}; maintainer scripts included)"
    );
    println!("agent .rpm: rpm -i {ri:.2} s (median of {rounds}; scriptlets included)");
    println!("baseline: dpkg-deb -x of the same .deb {u:.2} s");
    println!("ratio dpkg -i / dpkg-deb -x: {:.2}", i / u.max(1e-3));
}
