//! Agents installed the way the packages install them, for update tests: each device has its
//! own copy of the agent binary (`DIR/bin/parta-agent`), a supervisor that restarts it when it
//! exits or is told to (the stand-in for `parta-agent.service` with `Restart=`), root's copy of
//! the release key, and a watcher that runs `parta-agent update install` when the agent's
//! `update/ready` appears (the stand-in for `parta-agent-update.path`). The installer is the
//! real one; only systemd is replaced, since tests have no systemd to run units under.
//!
//! [`Releases`] makes the region's release key and signed builds: the test's agent build
//! stripped as a package strips it, stamped with a version (`parta-release stamp`), signed
//! (`parta-release sign`), and a build that exits at start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::procs::{Agent, AgentSpec};
use crate::util::binary;

/// The region's release key and the builds it signed.
pub struct Releases {
    dir: tempfile::TempDir,
}

impl Default for Releases {
    fn default() -> Self {
        Self::new()
    }
}

impl Releases {
    /// A new key pair (`parta-release keygen`).
    pub fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("parta-releases-").tempdir().unwrap();
        run_ok(Command::new(binary("parta-release")).args(["keygen", "--out"]).arg(dir.path().join("key")));
        Self { dir }
    }

    /// The public key file (`release.pub`).
    pub fn public(&self) -> PathBuf {
        self.dir.path().join("key/release.pub")
    }

    /// The private key file.
    pub fn private(&self) -> PathBuf {
        self.dir.path().join("key/release.key")
    }

    /// The agent as packaged (stripped), unstamped: the version the crate says.
    pub fn base_build(&self) -> PathBuf {
        let out = self.dir.path().join("parta-agent-base");
        if !out.exists() {
            run_ok(Command::new("strip").arg("-o").arg(&out).arg(binary("parta-agent")));
        }
        out
    }

    /// The agent stamped as `version` (`parta-release stamp`).
    pub fn build(&self, version: &str) -> PathBuf {
        let out = self.dir.path().join(format!("parta-agent-{version}"));
        run_ok(
            Command::new(binary("parta-release"))
                .args(["stamp", "--version", version, "--out"])
                .arg(&out)
                .arg(self.base_build()),
        );
        out
    }

    /// A build of `version` that exits at start with status 70 (it carries a version slot, so
    /// it passes every check before it runs).
    pub fn broken_build(&self, version: &str) -> PathBuf {
        let out = self.dir.path().join(format!("parta-agent-{version}-broken"));
        let mut script =
            b"#!/bin/sh\necho \"parta-agent (broken test build): exiting at start\" >&2\nexit 70\n# "
                .to_vec();
        script.extend_from_slice(&parta_protocol::release::stamp_slot(version));
        script.push(b'\n');
        std::fs::write(&out, script).unwrap();
        set_mode(&out, 0o755);
        out
    }

    /// Signs `artifact` as `version` with this key (`parta-release sign`): the `.sig` path.
    pub fn sign(&self, artifact: &Path, version: &str) -> PathBuf {
        self.sign_with(&self.private(), artifact, version)
    }

    /// Signs with another private key.
    pub fn sign_with(&self, key: &Path, artifact: &Path, version: &str) -> PathBuf {
        run_ok(
            Command::new(binary("parta-release"))
                .args(["sign", "--key"])
                .arg(key)
                .args(["--version", version])
                .arg(artifact),
        );
        let mut sig = artifact.as_os_str().to_owned();
        sig.push(".sig");
        PathBuf::from(sig)
    }
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// One device with the agent installed.
pub struct Device {
    /// The running agent (its process is the supervisor).
    pub agent: Agent,
    /// The device's root: `bin/parta-agent`, `state/`, `installer/`, `release.pub`.
    pub dir: PathBuf,
    /// Its name in the artifacts (`NAME.log`, `NAME.installer.log`).
    pub name: String,
}

impl Device {
    /// The installed binary.
    pub fn binary(&self) -> PathBuf {
        self.dir.join("bin/parta-agent")
    }

    /// The version the installed binary carries.
    pub fn installed_version(&self) -> String {
        let bytes = std::fs::read(self.binary()).unwrap();
        parta_protocol::release::read_stamp(&bytes).map(|v| v.to_string()).unwrap_or_else(|e| e)
    }

    /// Process id of the agent the supervisor runs now.
    pub fn agent_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("pid")).ok()?.trim().parse().ok()
    }

    /// A file of the agent's `update/` directory.
    pub fn update_file(&self, name: &str) -> PathBuf {
        self.dir.join("state/update").join(name)
    }

    /// The installer's command, as `parta-agent-update.service` runs it.
    pub fn installer(&self, health_timeout: &str) -> Command {
        Installer { dir: self.dir.clone() }.command(health_timeout)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("stop"), b"");
        if let Some(pid) = self.agent_pid() {
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// Installs the agent build `build` on a new device under `root/NAME` the way the package and
/// an enrollment with the region's join string leave it (the release key pinned in the state
/// directory and in root's keeping), with `device_id` kept from before if given, and starts it.
pub fn install_device(
    root: &Path,
    name: &str,
    build: &Path,
    release_pub: &Path,
    device_id: Option<uuid::Uuid>,
    spec: AgentSpec,
    artifacts: &Path,
) -> Device {
    let dir = root.join(name);
    let state = dir.join("state");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    std::fs::copy(build, dir.join("bin/parta-agent")).unwrap();
    set_mode(&dir.join("bin/parta-agent"), 0o755);
    std::fs::copy(release_pub, dir.join("release.pub")).unwrap();
    set_mode(&dir.join("release.pub"), 0o644);
    std::fs::copy(release_pub, state.join("release.pub")).unwrap();
    if let Some(id) = device_id {
        std::fs::write(state.join("device-id"), format!("{id}\n")).unwrap();
    }
    let d = dir.display();
    std::fs::write(
        dir.join("supervise"),
        format!(
            "#!/bin/sh\n# The harness's parta-agent.service: runs the installed agent, again when it exits.\n\
             shift\ntrap 'kill $(cat {d}/pid) 2>/dev/null; wait; exit 0' TERM INT\n\
             while [ ! -e {d}/stop ]; do\n  {d}/bin/parta-agent \"$@\" &\n  echo $! > {d}/pid\n  wait $!\n  sleep 0.3\ndone\n"
        ),
    )
    .unwrap();
    set_mode(&dir.join("supervise"), 0o755);
    std::fs::write(dir.join("restart"), format!("#!/bin/sh\nkill $(cat {d}/pid)\n")).unwrap();
    set_mode(&dir.join("restart"), 0o755);
    let mut spec = spec;
    spec.state_dir = Some(state);
    spec.wrapper = vec!["/bin/sh".into(), dir.join("supervise").display().to_string()];
    let agent = Agent::start(spec, artifacts, name);
    Device { agent, dir, name: name.to_owned() }
}

/// Installs a device for each of `ids` (an id kept from before, or `None` for a new one) under
/// `root/PREFIXnn`, as [`install_device`] does.
pub fn install_devices(
    root: &Path,
    prefix: &str,
    build: &Path,
    release_pub: &Path,
    ids: impl IntoIterator<Item = Option<uuid::Uuid>>,
    spec: impl Fn() -> AgentSpec,
    artifacts: &Path,
) -> Vec<Device> {
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| {
            install_device(root, &format!("{prefix}{i:02}"), build, release_pub, id, spec(), artifacts)
        })
        .collect()
}

/// The stand-in for `parta-agent-update.path`: runs each device's installer when its agent
/// writes `update/ready`, one at a time per device, logging to `artifacts/NAME.installer.log`.
pub struct PathWatch {
    stop: Arc<AtomicBool>,
    running: Arc<Mutex<HashMap<PathBuf, u32>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PathWatch {
    /// Watches `devices` (their directories and log names); installers get `health_timeout`.
    pub fn start(devices: Vec<(PathBuf, String)>, artifacts: &Path, health_timeout: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let running: Arc<Mutex<HashMap<PathBuf, u32>>> = Arc::default();
        let (s, r, art, timeout) =
            (Arc::clone(&stop), Arc::clone(&running), artifacts.to_owned(), health_timeout.to_owned());
        let thread = std::thread::spawn(move || {
            let mut children: HashMap<PathBuf, Child> = HashMap::new();
            while !s.load(Ordering::SeqCst) {
                children.retain(|dir, c| {
                    let done = c.try_wait().ok().flatten().is_some();
                    if done {
                        r.lock().unwrap().remove(dir);
                    }
                    !done
                });
                for (dir, name) in &devices {
                    if children.contains_key(dir) || !dir.join("state/update/ready").exists() {
                        continue;
                    }
                    let log = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(art.join(format!("{name}.installer.log")))
                        .unwrap();
                    let dev = Installer { dir: dir.clone() };
                    let mut cmd = dev.command(&timeout);
                    cmd.stdout(log.try_clone().unwrap()).stderr(log);
                    let child = cmd.spawn().unwrap();
                    r.lock().unwrap().insert(dir.clone(), child.id());
                    children.insert(dir.clone(), child);
                }
                // The harness polls where systemd would be told by inotify.
                std::thread::sleep(Duration::from_millis(100));
            }
            for (_, mut c) in children {
                let _ = c.kill();
                let _ = c.wait();
            }
        });
        Self { stop, running, thread: Some(thread) }
    }

    /// Watches every device of `devices`.
    pub fn over(devices: &[Device], artifacts: &Path, health_timeout: &str) -> Self {
        Self::start(
            devices.iter().map(|d| (d.dir.clone(), d.name.clone())).collect(),
            artifacts,
            health_timeout,
        )
    }

    /// Process id of the installer running for the device in `dir`.
    pub fn installer_pid(&self, dir: &Path) -> Option<u32> {
        self.running.lock().unwrap().get(dir).copied()
    }
}

impl Drop for PathWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Installer {
    dir: PathBuf,
}

impl Installer {
    fn command(&self, timeout: &str) -> Command {
        let mut cmd = Command::new(self.dir.join("bin/parta-agent"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PARTA_STATE_DIR", self.dir.join("state"))
            .env("PARTA_LOG_LEVEL", "debug")
            .args(["update", "install", "--binary"])
            .arg(self.dir.join("bin/parta-agent"))
            .arg("--work-dir")
            .arg(self.dir.join("installer"))
            .arg("--key")
            .arg(self.dir.join("release.pub"))
            .args(["--update-health-timeout", timeout, "--restart-command"])
            .arg(self.dir.join("restart"));
        cmd
    }
}

/// `parta-collector release status --devices --format json`: (device, version) → (state, detail).
pub fn statuses(collector: &crate::procs::Collector) -> HashMap<(String, String), (String, String)> {
    let out = run_ok(collector.command().args(["release", "status", "--devices", "--format", "json"]));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    doc["devices"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| {
                    (
                        (
                            d["device_id"].as_str().unwrap().to_owned(),
                            d["version"].as_str().unwrap().to_owned(),
                        ),
                        (
                            d["state"].as_str().unwrap().to_owned(),
                            d["detail"].as_str().unwrap_or("").to_owned(),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Devices of `ids` whose state with `version` is `state`.
pub fn in_state(
    collector: &crate::procs::Collector,
    ids: &[String],
    version: &str,
    state: &str,
) -> std::collections::BTreeSet<String> {
    let s = statuses(collector);
    ids.iter()
        .filter(|id| s.get(&((*id).clone(), version.to_owned())).is_some_and(|(st, _)| st == state))
        .cloned()
        .collect()
}

/// Waits until every device of `ids` is in `state` with `version`.
pub fn wait_state(
    collector: &crate::procs::Collector,
    ids: &[String],
    version: &str,
    state: &str,
    timeout: Duration,
) {
    crate::util::wait_for(timeout, &format!("{} devices {state} with {version}", ids.len()), || {
        (in_state(collector, ids, version, state).len() == ids.len()).then_some(())
    });
}

/// Runs a `parta-collector` command and returns its standard output; panics on failure.
pub fn collector_ok(collector: &crate::procs::Collector, args: &[&str]) -> String {
    run_ok(collector.command().args(args))
}
