//! Small helpers: binaries, artifact directories, free ports, waiting.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// The directory holding the binaries of the profile this test was built with.
fn bin_dir() -> PathBuf {
    // Tests run from target/<profile>/deps/<test>, bench binaries from target/<profile>/<bench>.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap().to_owned()
    } else {
        dir.to_owned()
    }
}

/// Path of a workspace binary, built first (once per test process) unless
/// `PARTA_TEST_SKIP_BUILD` is set by a script that already built them.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if std::env::var_os("PARTA_TEST_SKIP_BUILD").is_some() {
            return;
        }
        let release = bin_dir().file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(workspace_root()).args([
            "build",
            "--quiet",
            "-p",
            "parta-agent",
            "-p",
            "parta-collector",
            "-p",
            "parta-release",
        ]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building the binaries failed");
    });
    let path = bin_dir().join(name);
    assert!(path.exists(), "{} is missing; run `cargo build --bins`", path.display());
    path
}

/// A directory for this test's logs and screenshots: `target/test-artifacts/<name>/`, emptied.
pub fn artifacts_dir(name: &str) -> PathBuf {
    let dir = bin_dir().parent().unwrap().join("test-artifacts").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A UDP port free on 127.0.0.1 right now.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `f` every 100 ms until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// HTTP GET on loopback: status and body.
pub fn http_get(url: &str) -> (u16, String) {
    http_get_as(url, None)
}

/// HTTP GET on loopback with an API token (`Authorization: Bearer`): status and body.
pub fn http_get_as(url: &str, token: Option<&str>) -> (u16, String) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent();
    let mut req = agent.get(url);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    match req.call() {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            (status, resp.body_mut().read_to_string().unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// Sends a signal with `kill(1)` (keeps the tests free of unsafe code).
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
}

/// (RSS KiB, peak RSS KiB, CPU seconds) of a process, from `/proc` (benchmarks).
pub fn footprint(pid: u32) -> (u64, u64, f64) {
    (status_kib(pid, "VmRSS:"), status_kib(pid, "VmHWM:"), cpu_seconds(pid))
}

/// One KiB figure of `/proc/PID/status` (`VmRSS:`, `RssAnon:`, `RssFile:`…).
pub fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find(|l| l.starts_with(key)).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// User + system CPU seconds a process has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

/// The public recordings of real devices (`shared/corpus/realworld`: EDIDs, os-release files,
/// SNMP recordings) next to the repository, or where `PARTA_REALWORLD` says. They are not
/// copied into the project; a missing corpus fails the test that needs it, naming where it
/// looked.
pub fn realworld_dir() -> PathBuf {
    let candidates: Vec<PathBuf> = std::env::var_os("PARTA_REALWORLD")
        .map(PathBuf::from)
        .into_iter()
        .chain(workspace_root().ancestors().skip(1).map(|a| a.join("shared/corpus/realworld")))
        .collect();
    candidates.iter().find(|p| p.is_dir()).cloned().unwrap_or_else(|| {
        panic!("the real-world corpus is not there (set PARTA_REALWORLD); looked in {candidates:?}")
    })
}

/// The files in `dir` with extension `ext`, sorted.
pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}
