//! A private D-Bus bus (Debian's `dbus-daemon`) with a fake `org.freedesktop.login1` on it:
//! the test opens and closes sessions and sets idle hints; the agent reads them exactly as it
//! reads systemd-logind.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zbus::OwnedObjectPath;

use crate::util::wait_for;

/// A private bus.
pub struct Bus {
    child: Child,
    _dir: tempfile::TempDir,
    /// Its address, e.g. `unix:path=/tmp/.../bus`.
    pub address: String,
}

impl Bus {
    /// Starts `dbus-daemon` on a socket in a temporary directory.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("parta-bus-").tempdir().unwrap();
        let socket: PathBuf = dir.path().join("bus");
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                socket.display()
            ),
        )
        .unwrap();
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .arg("--nofork")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("dbus-daemon (Debian package dbus-daemon) is installed by scripts/install-deps.sh");
        wait_for(Duration::from_secs(10), "dbus-daemon's socket", || socket.exists().then_some(()));
        Self { child, _dir: dir, address: format!("unix:path={}", socket.display()) }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One fake session.
#[derive(Debug, Clone)]
pub struct FakeSession {
    /// User name.
    pub user: String,
    /// Session class (`user`, `greeter`).
    pub class: String,
    /// Remote session.
    pub remote: bool,
    /// Idle hint.
    pub idle_hint: bool,
    /// When the idle hint last changed, µs since the epoch.
    pub idle_since_us: u64,
    /// Session start, µs since the epoch.
    pub created_us: u64,
}

type Sessions = Arc<Mutex<BTreeMap<String, FakeSession>>>;

struct Manager {
    sessions: Sessions,
}

#[zbus::interface(name = "org.freedesktop.login1.Manager")]
impl Manager {
    fn list_sessions(&self) -> Vec<(String, u32, String, String, OwnedObjectPath)> {
        self.sessions
            .lock()
            .unwrap()
            .iter()
            .map(|(id, s)| (id.clone(), 1000, s.user.clone(), "seat0".to_owned(), session_path(id)))
            .collect()
    }
}

struct Session {
    id: String,
    sessions: Sessions,
}

impl Session {
    fn get<T>(&self, f: impl FnOnce(&FakeSession) -> T, default: T) -> T {
        self.sessions.lock().unwrap().get(&self.id).map_or(default, f)
    }
}

#[zbus::interface(name = "org.freedesktop.login1.Session")]
impl Session {
    #[zbus(property)]
    fn name(&self) -> String {
        self.get(|s| s.user.clone(), String::new())
    }
    #[zbus(property)]
    fn class(&self) -> String {
        self.get(|s| s.class.clone(), String::new())
    }
    #[zbus(property, name = "Type")]
    fn session_type(&self) -> String {
        "x11".to_owned()
    }
    #[zbus(property)]
    fn remote(&self) -> bool {
        self.get(|s| s.remote, false)
    }
    #[zbus(property)]
    fn active(&self) -> bool {
        true
    }
    #[zbus(property)]
    fn idle_hint(&self) -> bool {
        self.get(|s| s.idle_hint, false)
    }
    #[zbus(property)]
    fn idle_since_hint(&self) -> u64 {
        self.get(|s| s.idle_since_us, 0)
    }
    #[zbus(property)]
    fn timestamp(&self) -> u64 {
        self.get(|s| s.created_us, 0)
    }
}

fn session_path(id: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(format!("/org/freedesktop/login1/session/_3{id}")).unwrap()
}

/// The fake logind, served from its own runtime thread.
pub struct FakeLogind {
    rt: tokio::runtime::Runtime,
    conn: zbus::Connection,
    sessions: Sessions,
}

impl FakeLogind {
    /// Claims `org.freedesktop.login1` on `bus`.
    pub fn start(bus: &Bus) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let sessions: Sessions = Arc::default();
        let manager = Manager { sessions: Arc::clone(&sessions) };
        let conn = rt.block_on(async {
            zbus::connection::Builder::address(bus.address.as_str())
                .name("org.freedesktop.login1")
                .serve_at("/org/freedesktop/login1", manager)
                .build()
                .await
                .unwrap()
        });
        Self { rt, conn, sessions }
    }

    /// Opens a session of `user` started at `created_ms`, active (no idle hint).
    pub fn open(&self, id: &str, user: &str, created_ms: i64) {
        let us = u64::try_from(created_ms).unwrap() * 1000;
        self.sessions.lock().unwrap().insert(
            id.to_owned(),
            FakeSession {
                user: user.to_owned(),
                class: "user".into(),
                remote: false,
                idle_hint: false,
                idle_since_us: us,
                created_us: us,
            },
        );
        let iface = Session { id: id.to_owned(), sessions: Arc::clone(&self.sessions) };
        self.rt.block_on(async { self.conn.object_server().at(session_path(id), iface).await.unwrap() });
    }

    /// Sets a session's idle hint, as changed at `since_ms`.
    pub fn set_idle(&self, id: &str, idle: bool, since_ms: i64) {
        let mut map = self.sessions.lock().unwrap();
        let s = map.get_mut(id).unwrap();
        s.idle_hint = idle;
        s.idle_since_us = u64::try_from(since_ms).unwrap() * 1000;
    }

    /// Closes a session.
    pub fn close(&self, id: &str) {
        self.sessions.lock().unwrap().remove(id);
        self.rt.block_on(async {
            self.conn.object_server().remove::<Session, _>(session_path(id)).await.unwrap();
        });
    }
}
