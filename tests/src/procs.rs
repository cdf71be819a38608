//! The collector and agent binaries as child processes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::clickhouse::ClickHouse;
use crate::fixtures::Tree;
use crate::logind::Bus;
use crate::util::{binary, free_tcp_port, free_udp_port, http_get, signal, wait_for};

/// Prints the tail of a log file to stderr (used when a test fails).
fn dump_log(what: &str, path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(60)..];
    eprintln!("----- last lines of {what} ({}) -----\n{}", path.display(), tail.join("\n"));
}

/// A child process whose output goes to a log file; killed when dropped, its log printed when
/// a test fails.
pub struct Proc {
    what: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    pub fn new(what: &'static str, log: PathBuf) -> Self {
        Self { what, child: None, log }
    }

    /// Starts `cmd` (the previous run must have ended).
    pub fn spawn(&mut self, mut cmd: Command) {
        assert!(self.child.is_none(), "{} already running", self.what);
        let out = File::options().create(true).append(true).open(&self.log).unwrap();
        cmd.stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out);
        self.child = Some(cmd.spawn().unwrap_or_else(|e| panic!("start {cmd:?}: {e}")));
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap_or_else(|| panic!("{} not running", self.what)).id()
    }

    /// The exit status, if the process has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut c = self.child.take().unwrap_or_else(|| panic!("{} not running", self.what));
        wait_for(timeout, &format!("{} to exit", self.what), || c.try_wait().unwrap())
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let pid = self.child.as_ref()?.id();
        signal(pid, "TERM");
        Some(self.wait_exit(Duration::from_secs(30)))
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            dump_log(self.what, &self.log);
        }
    }
}

/// A running collector with its own data directory and ports.
pub struct Collector {
    /// The process.
    pub process: Proc,
    data_dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    /// HTTP port on 127.0.0.1.
    pub http_port: u16,
    /// QUIC port.
    pub quic_port: u16,
    /// Address agents connect to.
    quic_ip: String,
    /// Speed-test service port (UDP, on the QUIC address).
    pub speedtest_port: u16,
    /// An admin's API token, made on first use.
    admin_token: std::sync::OnceLock<String>,
}

impl Collector {
    /// Starts a collector on `ch`, database `db`, and waits until its HTTP API answers.
    pub fn start(ch: &ClickHouse, db: &str, artifacts: &Path) -> Self {
        Self::start_with(ch, db, artifacts, &[])
    }

    /// Like [`Self::start`] with extra `PARTA_*` variables.
    pub fn start_with(ch: &ClickHouse, db: &str, artifacts: &Path, extra: &[(&str, &str)]) -> Self {
        let data_dir = tempfile::Builder::new().prefix("parta-collector-").tempdir().unwrap();
        let http_port = free_tcp_port();
        let quic_port = free_udp_port();
        let speedtest_port = free_udp_port();
        let mut env = vec![
            ("PARTA_CLICKHOUSE_URL".to_owned(), ch.url()),
            ("PARTA_CLICKHOUSE_DATABASE".to_owned(), db.to_owned()),
            ("PARTA_DATA_DIR".to_owned(), data_dir.path().display().to_string()),
            ("PARTA_QUIC_LISTEN".to_owned(), format!("127.0.0.1:{quic_port}")),
            ("PARTA_HTTP_LISTEN".to_owned(), format!("127.0.0.1:{http_port}")),
            ("PARTA_LOG_LEVEL".to_owned(), "info,parta_collector=debug".to_owned()),
        ];
        // A test may listen elsewhere (a veth address): `PARTA_QUIC_LISTEN=IP` (port added);
        // the speed-test service listens on the same address.
        let mut quic_ip = "127.0.0.1".to_owned();
        for (k, v) in extra {
            if *k == "PARTA_QUIC_LISTEN" {
                quic_ip = (*v).to_owned();
                env.push(((*k).to_owned(), format!("{v}:{quic_port}")));
            } else {
                env.push(((*k).to_owned(), (*v).to_owned()));
            }
        }
        if !env.iter().any(|(k, _)| k == "PARTA_SPEEDTEST_LISTEN") {
            env.push(("PARTA_SPEEDTEST_LISTEN".to_owned(), format!("{quic_ip}:{speedtest_port}")));
        }
        let process = Proc::new("collector", artifacts.join("collector.log"));
        let mut c = Self {
            process,
            data_dir,
            env,
            http_port,
            quic_port,
            quic_ip,
            speedtest_port,
            admin_token: std::sync::OnceLock::new(),
        };
        c.restart();
        c
    }

    /// The collector's data directory.
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// A `parta-collector` command with this collector's configuration in its environment.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(binary("parta-collector"));
        cmd.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Starts the process (again) and waits for `/healthz`.
    pub fn restart(&mut self) {
        let mut cmd = self.command();
        cmd.arg("serve");
        self.process.spawn(cmd);
        let url = self.url("/healthz");
        wait_for(Duration::from_secs(60), "the collector's /healthz", || {
            if let Some(status) = self.process.try_exit() {
                panic!("collector exited early with {status}");
            }
            (http_get(&url).0 == 200).then_some(())
        });
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGTERM and wait for the exit.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.process.stop()
    }

    /// Process id of the running collector.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// URL of an HTTP path.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    /// GET on the API as an admin (an account `parta-test-admin` and its API token are made on
    /// first use).
    pub fn get(&self, path: &str) -> (u16, String) {
        crate::util::http_get_as(&self.url(path), Some(self.admin_token()))
    }

    /// The test admin's API token.
    pub fn admin_token(&self) -> &str {
        self.admin_token.get_or_init(|| {
            self.add_user("parta-test-admin", "admin", "all", "parta-test-password");
            self.api_token("parta-test-admin")
        })
    }

    /// Runs `parta-collector user add LOGIN --role ROLE --scope SCOPE --password-stdin`.
    pub fn add_user(&self, login: &str, role: &str, scope: &str, password: &str) {
        use std::io::Write as _;
        let mut child = self
            .command()
            .args(["user", "add", login, "--role", role, "--scope", scope, "--password-stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "user add: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Runs `parta-collector api-token create --user LOGIN` and returns the token.
    pub fn api_token(&self, login: &str) -> String {
        let out = self.command().args(["api-token", "create", "--user", login]).output().unwrap();
        assert!(out.status.success(), "api-token create: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// The settings a probe of `school` needs to reach this collector (and its speed-test
    /// service) from `check espd`, as environment variables; logind off.
    pub fn probe_env(&self, school: &str, token: &str) -> Vec<(&'static str, String)> {
        vec![
            ("PARTA_COLLECTOR", self.quic_addr()),
            ("PARTA_CA_CERT", self.ca().display().to_string()),
            ("PARTA_SCHOOL", school.to_owned()),
            ("PARTA_ENROLL_TOKEN", token.to_owned()),
            ("PARTA_LOGIND_BUS", "none".to_owned()),
        ]
    }

    /// `host:port` for agents.
    pub fn quic_addr(&self) -> String {
        format!("{}:{}", self.quic_ip, self.quic_port)
    }

    /// The generated CA certificate agents must trust.
    pub fn ca(&self) -> PathBuf {
        self.data_dir.path().join("ca.pem")
    }

    /// Runs `parta-collector token create --school SCHOOL` and returns the token.
    pub fn create_token(&self, school: &str) -> String {
        self.create_join(school, &[]).0
    }

    /// Runs `parta-collector token create --school SCHOOL --collector ADDR ARGS…` and returns
    /// the token and the join string.
    pub fn create_join(&self, school: &str, args: &[&str]) -> (String, String) {
        let addr = self.quic_addr();
        let out = self
            .command()
            .args(["token", "create", "--school", school, "--collector", &addr])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "token create: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        let token = lines.next().unwrap_or_default().trim().to_owned();
        let join = lines.next().unwrap_or_default().trim().to_owned();
        assert!(token.starts_with("pt1_") && join.starts_with("parta://"), "token create printed: {text}");
        (token, join)
    }

    /// Runs `parta-collector token revoke TOKEN`.
    pub fn revoke_token(&self, token: &str) {
        let out = self.command().args(["token", "revoke", token]).output().unwrap();
        assert!(out.status.success(), "token revoke: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `/metrics` as served, after checking it with `promtool check metrics` (Debian's
    /// prometheus package): the exposition Prometheus scrapes must lint clean.
    pub fn metrics_checked(&self) -> String {
        let (status, text) = crate::util::http_get_as(&self.url("/metrics"), None);
        assert_eq!(status, 200);
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool (Debian package prometheus, installed by scripts/install-deps.sh)");
        {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// The value of one metric line from `/metrics`, e.g. `parta_rejected_total{reason="malformed"}`;
    /// 0 when absent.
    pub fn metric(&self, name: &str) -> f64 {
        // `/metrics` is open, as Prometheus scrapes it; no account is needed (nor made: this
        // works while ClickHouse is down).
        let (status, text) = crate::util::http_get_as(&self.url("/metrics"), None);
        assert_eq!(status, 200);
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// How to start an agent.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// Collector `host:port`.
    pub collector: String,
    /// CA file.
    pub ca: PathBuf,
    /// School.
    pub school: String,
    /// Enrollment token.
    pub token: String,
    /// Interval, e.g. `1s`.
    pub interval: String,
    /// Extra environment.
    pub extra: Vec<(String, String)>,
    /// Run inside this network namespace.
    pub netns: Option<String>,
    /// Run through this command (e.g. `unshare …`), which ends by executing its argument list
    /// (the agent's path and arguments follow it).
    pub wrapper: Vec<String>,
    /// Use this state directory instead of a fresh temporary one.
    pub state_dir: Option<PathBuf>,
    /// Write the report log the tests read (`false` for benchmarks: it is not part of a
    /// production agent's work).
    pub report_log: bool,
}

impl AgentSpec {
    /// An agent of `school` reporting every second to `collector`.
    pub fn new(collector: &Collector, school: &str, token: &str) -> Self {
        Self {
            collector: collector.quic_addr(),
            ca: collector.ca(),
            school: school.to_owned(),
            token: token.to_owned(),
            interval: "1s".to_owned(),
            extra: Vec::new(),
            netns: None,
            wrapper: Vec::new(),
            state_dir: None,
            report_log: true,
        }
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.extra.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Points the agent's sources at a fake system tree.
    pub fn tree(mut self, tree: &Tree) -> Self {
        for (k, v) in tree.env() {
            self = self.env(&k, &v);
        }
        self
    }

    /// The teacher `ivanova` (group `teachers`) works on this device: her account goes into
    /// `tree`, her sessions come from the fake logind on `bus`, polled every 200 ms and flushed
    /// every 2 s.
    pub fn teacher_session(self, tree: &Tree, bus: &Bus) -> Self {
        tree.file("etc/passwd", "ivanova:x:1001:1001::/home/ivanova:/bin/bash\n")
            .file("etc/group", "ivanova:x:1001:\nteachers:x:3000:ivanova\n");
        self.env("PARTA_LOGIND_BUS", &bus.address)
            .env("PARTA_USAGE_POLL", "200ms")
            .env("PARTA_USAGE_FLUSH", "2s")
    }
}

/// A running agent with its own state directory.
pub struct Agent {
    /// The process.
    pub process: Proc,
    spec: AgentSpec,
    _temp: Option<tempfile::TempDir>,
    state: PathBuf,
    report_log: PathBuf,
}

impl Agent {
    /// Starts `parta-agent run`; `name` names its log file.
    pub fn start(spec: AgentSpec, artifacts: &Path, name: &str) -> Self {
        let (temp, state) = match &spec.state_dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let t = tempfile::Builder::new().prefix("parta-agent-").tempdir().unwrap();
                let p = t.path().to_owned();
                (Some(t), p)
            }
        };
        let report_log = artifacts.join(format!("{name}.reports.jsonl"));
        let _ = std::fs::remove_file(&report_log);
        let process = Proc::new("agent", artifacts.join(format!("{name}.log")));
        let mut a = Self { process, spec, _temp: temp, state, report_log };
        a.restart();
        a
    }

    /// The `parta-agent` command with this agent's configuration.
    pub fn command(&self) -> Command {
        let mut cmd = match &self.spec.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(binary("parta-agent"));
                c
            }
            None if !self.spec.wrapper.is_empty() => {
                let mut c = Command::new(&self.spec.wrapper[0]);
                c.args(&self.spec.wrapper[1..]).arg(binary("parta-agent"));
                c
            }
            None => Command::new(binary("parta-agent")),
        };
        cmd.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
        cmd.env("PARTA_COLLECTOR", &self.spec.collector)
            .env("PARTA_CA_CERT", &self.spec.ca)
            .env("PARTA_SCHOOL", &self.spec.school)
            .env("PARTA_ENROLL_TOKEN", &self.spec.token)
            .env("PARTA_INTERVAL", &self.spec.interval)
            .env("PARTA_STATE_DIR", &self.state)
            .env("PARTA_LOG_LEVEL", "info,parta_agent=debug");
        if self.spec.report_log {
            cmd.env("PARTA_REPORT_LOG", &self.report_log);
        }
        cmd.envs(self.spec.extra.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Starts the process (again).
    pub fn restart(&mut self) {
        let mut cmd = self.command();
        cmd.arg("run");
        self.process.spawn(cmd);
    }

    /// The device id, once the agent has created it.
    pub fn device_id(&self) -> String {
        let path = self.state.join("device-id");
        wait_for(Duration::from_secs(30), "the agent's device id", || {
            std::fs::read_to_string(&path).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
        })
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// The diagnostic log of every report the agent took.
    pub fn report_log(&self) -> &Path {
        &self.report_log
    }

    /// `parta-agent status --format json`.
    pub fn status(&self) -> serde_json::Value {
        let mut cmd = Command::new(binary("parta-agent"));
        cmd.env_clear().env("PARTA_STATE_DIR", &self.state).args(["status", "--format", "json"]);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "status: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Process id of the running agent.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Waits for the agent to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.process.wait_exit(timeout)
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.process.stop()
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// Runs `parta-agent check espd --format json` inside network namespace `netns` (or this
/// one) with the configuration file `config` (state in `artifacts`) and `env` on top; saves the
/// JSON as `artifacts/{name}.json` and returns it.
pub fn check_espd<K, V>(
    netns: Option<&str>,
    config: &Path,
    artifacts: &Path,
    name: &str,
    env: impl IntoIterator<Item = (K, V)>,
) -> serde_json::Value
where
    K: AsRef<std::ffi::OsStr>,
    V: AsRef<std::ffi::OsStr>,
{
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(binary("parta-agent"));
            c
        }
        None => Command::new(binary("parta-agent")),
    };
    let out = cmd
        .arg("--config")
        .arg(config)
        .arg("--state-dir")
        .arg(artifacts)
        .args(["check", "espd", "--format", "json"])
        .envs(env)
        .output()
        .unwrap();
    std::fs::write(artifacts.join(format!("{name}.json")), &out.stdout).unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check espd: {e}: {}", String::from_utf8_lossy(&out.stderr)))
}
