//! A private ClickHouse server for one test: its own data directory and ports, started from the
//! distribution's `clickhouse-server` (Debian's is 18.16), stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{free_tcp_port, http_get, wait_for, workspace_root};

/// A running (or stopped) private server.
pub struct ClickHouse {
    dir: tempfile::TempDir,
    http_port: u16,
    child: Option<Child>,
}

fn server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PARTA_TEST_CLICKHOUSE_SERVER") {
        return PathBuf::from(p);
    }
    for p in ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "clickhouse-server is not installed: run scripts/install-deps.sh (installs Debian's clickhouse-server)"
    );
}

impl ClickHouse {
    /// Starts a server and waits until it answers.
    pub fn start() -> Self {
        Self::start_with_users(&[])
    }

    /// Starts a server with extra user files in its `users.d/` (name, XML), as an
    /// administrator would drop them into `/etc/clickhouse-server/users.d/`.
    pub fn start_with_users(users: &[(&str, &str)]) -> Self {
        let dir = tempfile::Builder::new().prefix("parta-ch-").tempdir().unwrap();
        let http_port = free_tcp_port();
        let tcp_port = free_tcp_port();
        // The same configuration as the quick start's, from the project's own script.
        let status = Command::new("bash")
            .arg(workspace_root().join("scripts/clickhouse.sh"))
            .arg("config")
            .arg(dir.path())
            .arg(http_port.to_string())
            .arg(tcp_port.to_string())
            .status()
            .expect("run scripts/clickhouse.sh");
        assert!(status.success(), "scripts/clickhouse.sh config failed");
        if !users.is_empty() {
            let d = dir.path().join("users.d");
            std::fs::create_dir_all(&d).unwrap();
            for (name, xml) in users {
                std::fs::write(d.join(name), xml).unwrap();
            }
        }
        let mut ch = Self { dir, http_port, child: None };
        ch.resume();
        ch
    }

    /// Process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("ClickHouse running").id()
    }

    /// URL of the HTTP interface.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Starts the server again on the same data and ports (after [`Self::pause`]).
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.dir.path().join("log/stdout.log")).unwrap();
        let child = Command::new(server_binary())
            .arg(format!("--config-file={}", self.dir.path().join("config.xml").display()))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start clickhouse-server");
        self.child = Some(child);
        let url = format!("{}/?query=SELECT%201", self.url());
        wait_for(Duration::from_secs(60), "ClickHouse to answer", || (http_get(&url).0 == 200).then_some(()));
    }

    /// Stops the server (SIGKILL: as abrupt as an outage gets); data stays for [`Self::resume`].
    pub fn pause(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs a query and returns its output (TabSeparated), panicking on errors.
    pub fn query(&self, sql: &str) -> String {
        let (status, body) = self.query_as("default", "", sql);
        assert_eq!(status, 200, "query failed: {sql}\n{body}");
        body
    }

    /// Runs a query as another user: the HTTP status and the body (the error, if refused).
    pub fn query_as(&self, user: &str, password: &str, sql: &str) -> (u16, String) {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        let mut resp = agent
            .post(&self.url())
            .header("X-ClickHouse-User", user)
            .header("X-ClickHouse-Key", password)
            .send(sql.as_bytes())
            .expect("ClickHouse request");
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap_or_default())
    }

    /// Runs a query and parses each row (JSONEachRow) into `T`.
    pub fn query_rows<T: serde::de::DeserializeOwned>(&self, sql: &str) -> Vec<T> {
        self.query(&format!("{sql} FORMAT JSONEachRow"))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("row {l}: {e}")))
            .collect()
    }

    /// Runs a query returning one number.
    pub fn query_u64(&self, sql: &str) -> u64 {
        let out = self.query(sql);
        out.trim().parse().unwrap_or_else(|_| panic!("not a number from {sql}: {out:?}"))
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.pause();
    }
}
