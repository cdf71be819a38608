//! Interactive sessions from systemd-logind over D-Bus (`org.freedesktop.login1`).
//!
//! `Manager.ListSessions` lists sessions; `Properties.GetAll` on each gives its class, type,
//! whether it is remote and active, and the idle hint with the time it last changed. The bus is
//! the system bus by default; tests point the agent at a private bus with a fake logind.
//!
//! Fallback: where logind is absent (containers, systems without systemd) the agent cannot tell
//! use from idleness and reports powered-on time as `unmonitored`; power intervals and events
//! still come from the boot id and wtmp.

use std::collections::HashMap;
use std::time::Duration;

use zbus::OwnedObjectPath;
use zbus::names::InterfaceName;
use zbus::zvariant::OwnedVariant;

const DEST: &str = "org.freedesktop.login1";
const MANAGER_PATH: &str = "/org/freedesktop/login1";
const MANAGER: &str = "org.freedesktop.login1.Manager";
const SESSION: &str = "org.freedesktop.login1.Session";
/// A D-Bus call that takes longer than this counts as logind being unavailable this poll.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// One session as logind reports it. The user name stays on the device: it is only used to find
/// the user's class and (optionally) a salted hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogindSession {
    /// Session id.
    pub id: String,
    /// User name (never sent).
    pub user: String,
    /// `user`, `greeter`, `lock-screen`, `background`, ...
    pub class: String,
    /// `x11`, `wayland`, `tty`, `mir`, `unspecified`.
    pub session_type: String,
    /// Remote (SSH, RDP) session.
    pub remote: bool,
    /// In the foreground of its seat.
    pub active: bool,
    /// Idle hint.
    pub idle_hint: bool,
    /// When the idle hint last changed, ms since the epoch (0 unknown).
    pub idle_since_ms: i64,
    /// When the session started, ms since the epoch.
    pub created_ms: i64,
}

impl LogindSession {
    /// A local, foreground session of a person (not a greeter or a background session).
    pub fn is_interactive(&self) -> bool {
        self.class == "user" && !self.remote && self.active
    }
}

/// Which bus logind is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusAddress {
    /// The system bus.
    System,
    /// A D-Bus address, e.g. `unix:path=/run/test/bus`.
    Address(String),
    /// Do not ask logind (use is reported as `unmonitored`).
    Disabled,
}

impl std::str::FromStr for BusAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "system" => Ok(Self::System),
            "none" => Ok(Self::Disabled),
            a if a.contains(':') && a.contains('=') => Ok(Self::Address(a.to_owned())),
            other => Err(format!(
                "{other:?} is not a bus: use `system`, `none` or a D-Bus address such as unix:path=/run/dbus/system_bus_socket"
            )),
        }
    }
}

/// A logind client that reconnects on failure.
#[derive(Debug)]
pub struct Logind {
    bus: BusAddress,
    conn: Option<zbus::Connection>,
    warned: bool,
}

/// Why sessions could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum LogindError {
    /// Disabled by configuration.
    #[error("logind is disabled by configuration")]
    Disabled,
    /// D-Bus failed.
    #[error("logind over D-Bus: {0}")]
    Bus(#[from] zbus::Error),
    /// No reply in time.
    #[error("logind did not answer within {CALL_TIMEOUT:?}")]
    Timeout,
}

impl Logind {
    /// A client for `bus` (connects on first use).
    pub fn new(bus: BusAddress) -> Self {
        Self { bus, conn: None, warned: false }
    }

    /// Lists sessions; `Err` when logind cannot be reached (logged once until it recovers).
    pub async fn sessions(&mut self) -> Result<Vec<LogindSession>, LogindError> {
        if self.bus == BusAddress::Disabled {
            return Err(LogindError::Disabled);
        }
        let result = match tokio::time::timeout(CALL_TIMEOUT, self.try_sessions()).await {
            Ok(r) => r,
            Err(_) => Err(LogindError::Timeout),
        };
        match &result {
            Ok(_) if self.warned => {
                self.warned = false;
                tracing::info!("logind is answering again; usage is monitored");
            }
            Err(e) => {
                self.conn = None;
                if !self.warned {
                    self.warned = true;
                    tracing::warn!(error = %e, "cannot read sessions from logind; powered-on time is reported as unmonitored until it answers");
                }
            }
            Ok(_) => {}
        }
        result
    }

    async fn try_sessions(&mut self) -> Result<Vec<LogindSession>, LogindError> {
        let conn = match &self.conn {
            Some(c) => c.clone(),
            None => {
                let c = match &self.bus {
                    BusAddress::System => zbus::Connection::system().await?,
                    BusAddress::Address(a) => zbus::connection::Builder::address(a.as_str()).build().await?,
                    BusAddress::Disabled => return Err(LogindError::Disabled),
                };
                self.conn = Some(c.clone());
                c
            }
        };
        let reply = conn.call_method(Some(DEST), MANAGER_PATH, Some(MANAGER), "ListSessions", &()).await?;
        let list: Vec<(String, u32, String, String, OwnedObjectPath)> = reply.body().deserialize()?;
        let mut out = Vec::with_capacity(list.len());
        for (id, _uid, user, _seat, path) in list {
            let props = zbus::fdo::PropertiesProxy::builder(&conn)
                .destination(DEST)
                .path(path)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await?;
            // A session closing between the two calls is not an error.
            let Ok(all) = props.get_all(InterfaceName::from_static_str_unchecked(SESSION)).await else {
                continue;
            };
            out.push(session_from(id, user, &all));
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

fn session_from(id: String, user: String, p: &HashMap<String, OwnedVariant>) -> LogindSession {
    let s = |k: &str| p.get(k).and_then(|v| String::try_from(v.clone()).ok()).unwrap_or_default();
    let b = |k: &str| p.get(k).and_then(|v| bool::try_from(v).ok()).unwrap_or(false);
    let us = |k: &str| {
        p.get(k)
            .and_then(|v| u64::try_from(v).ok())
            .map_or(0, |us| i64::try_from(us / 1000).unwrap_or(i64::MAX))
    };
    LogindSession {
        id,
        user,
        class: s("Class"),
        session_type: s("Type"),
        remote: b("Remote"),
        active: b("Active"),
        idle_hint: b("IdleHint"),
        idle_since_ms: us("IdleSinceHint"),
        created_ms: us("Timestamp"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_addresses() {
        assert_eq!("system".parse::<BusAddress>().unwrap(), BusAddress::System);
        assert_eq!("none".parse::<BusAddress>().unwrap(), BusAddress::Disabled);
        assert_eq!(
            "unix:path=/tmp/b".parse::<BusAddress>().unwrap(),
            BusAddress::Address("unix:path=/tmp/b".into())
        );
        assert!("session".parse::<BusAddress>().is_err());
    }

    #[tokio::test]
    async fn unreachable_bus_is_an_error_not_a_panic() {
        let mut l = Logind::new(BusAddress::Address("unix:path=/nonexistent/parta-test-bus".into()));
        assert!(l.sessions().await.is_err());
        assert!(l.sessions().await.is_err());
    }
}
