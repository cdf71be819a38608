//! Glue between the usage sources and the [`crate::usage`] tracker: one observation of
//! sessions (logind) and displays (DRM), the latest inventory, and the tracker's state file.

use std::path::{Path, PathBuf};

use parta_protocol::DeviceId;
use parta_protocol::Sample;
use parta_protocol::inventory::Inventory;
use parta_protocol::usage::{PowerEvent, UsageInterval};

use crate::config::AgentConfig;
use crate::sources::inventory::{InventoryOptions, InventorySource};
use crate::sources::logind::Logind;
use crate::sources::power::{self, BootInfo};
use crate::sources::users::Users;
use crate::usage::{Resumed, SessionView, Tracker, TrackerState, UsageConfig};

/// Name of the tracker's state file in the state directory.
pub const STATE_FILE: &str = "usage.json";
/// Most intervals per `Usage` sample (the protocol's limit).
const CHUNK: usize = parta_protocol::validate::MAX_INTERVALS;

/// The usage sources of a running agent.
#[derive(Debug)]
pub struct Observer {
    logind: Logind,
    users: Users,
    inventory: InventorySource,
    hostname: crate::privacy::HostnameMode,
    paths: crate::paths::HostPaths,
    people: crate::privacy::LocalPeople,
}

/// One observation.
#[derive(Debug)]
pub struct Observation {
    /// Interactive sessions, `None` when logind is unavailable.
    pub sessions: Option<Vec<SessionView>>,
    /// Connected displays and whether each is on.
    pub displays: Vec<(DeviceId, bool)>,
}

impl Observer {
    /// Sources configured from `config` for the device `device_id`.
    pub fn new(config: &AgentConfig, device_id: DeviceId) -> Self {
        Self {
            logind: Logind::new(config.usage.logind_bus.clone()),
            users: Users::new(
                config.paths.clone(),
                config.usage.groups.clone(),
                config.usage.user_hash_salt.clone(),
            ),
            inventory: InventorySource::new(config.paths.clone(), inventory_options(config, device_id)),
            hostname: config.usage.hostname_mode,
            paths: config.paths.clone(),
            people: crate::privacy::LocalPeople::default(),
        }
    }

    /// The privacy rules as of now: the configured host name mode, the local accounts and the
    /// accounts seen in sessions.
    pub fn privacy(&mut self) -> crate::privacy::Privacy {
        let people = self.people.get(&self.paths).clone();
        crate::privacy::Privacy::with_people(self.hostname, people, self.users.seen())
    }

    /// Reads sessions, displays and the inventory.
    pub async fn observe(&mut self) -> Observation {
        let sessions = match self.logind.sessions().await {
            Ok(list) => Some(
                list.into_iter()
                    .filter(|s| s.is_interactive())
                    .map(|s| {
                        let (user_class, user_key) = self.users.classify(&s.user);
                        SessionView {
                            id: s.id,
                            idle_hint: s.idle_hint,
                            idle_since_ms: s.idle_since_ms,
                            created_ms: s.created_ms,
                            user_class,
                            user_key,
                        }
                    })
                    .collect(),
            ),
            Err(_) => None,
        };
        // Only the connectors are read every poll; the whole inventory at report time.
        Observation { sessions, displays: self.inventory.displays_on() }
    }

    /// Reads the inventory.
    pub fn inventory(&mut self) -> Inventory {
        self.inventory.read()
    }
}

/// Inventory options from the configuration.
pub fn inventory_options(config: &AgentConfig, device_id: DeviceId) -> InventoryOptions {
    InventoryOptions {
        device_id,
        kind: config.kind,
        room: config.usage.room.clone(),
        equipment_class: config.usage.equipment_class,
        panels: config.usage.panels.clone(),
    }
}

/// Tracker settings from the configuration, with the system's time zone.
pub fn usage_config(config: &AgentConfig) -> UsageConfig {
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    UsageConfig {
        idle_after_ms: ms(config.usage.idle_after),
        flush_ms: ms(config.usage.flush),
        tz: jiff::tz::TimeZone::try_system().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot determine the local time zone; days are counted in UTC");
            jiff::tz::TimeZone::UTC
        }),
    }
}

/// Starts the tracker from the state file.
pub fn start_tracker(config: &AgentConfig, next_seq: u64, now_ms: i64) -> Tracker {
    let boot = power::boot(&config.paths).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "boot id unknown; reboots while the agent is down cannot be told from restarts");
        let secs = i64::try_from(sysinfo::System::boot_time().unwrap_or_default()).unwrap_or(0);
        BootInfo { boot_id: "unknown".into(), boot_ms: secs * 1000 }
    });
    let path = state_path(&config.state_dir);
    let saved = load_state(&path);
    let paths = config.paths.clone();
    let (tracker, resumed) = Tracker::start(
        usage_config(config),
        saved,
        &boot,
        |a, b| power::shutdown_between(&paths, a, b),
        next_seq,
        now_ms,
    );
    match resumed {
        Resumed::Fresh => tracing::info!(boot_id = %boot.boot_id, "usage tracking starts"),
        Resumed::SameBoot => tracing::info!("usage tracking resumes in the same boot"),
        Resumed::Rebooted { clean } => {
            tracing::info!(clean, boot_id = %boot.boot_id, "the system rebooted while the agent was down")
        }
    }
    save_state(&path, tracker.state());
    tracker
}

/// Path of the state file.
pub fn state_path(state_dir: &Path) -> PathBuf {
    state_dir.join(STATE_FILE)
}

/// Reads the state file; a damaged file is moved aside with a warning (usage since the last
/// good state is then reported from the boot time as unmonitored).
pub fn load_state(path: &Path) -> Option<TrackerState> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            let aside = path.with_extension("json.corrupt");
            tracing::warn!(path = %path.display(), error = %e, moved_to = %aside.display(), "usage state is damaged; starting afresh");
            let _ = std::fs::rename(path, &aside);
            None
        }
    }
}

/// Writes the state file atomically (durable: pending intervals live here until spooled);
/// whether it was written.
pub fn save_state(path: &Path, state: &TrackerState) -> bool {
    let result = serde_json::to_vec(state)
        .map_err(std::io::Error::other)
        .and_then(|bytes| parta_common::fsutil::write_atomic(path, &bytes, true));
    if let Err(e) = &result {
        tracing::error!(path = %path.display(), error = %e, "cannot save the usage state");
    }
    result.is_ok()
}

/// How often the state is written when only "last seen alive" moved: after a crash, the
/// agent's down time is known to within this.
pub const LAST_SEEN_EVERY_MS: i64 = 60_000;

/// The usage state file, written when the state changed: at once when anything but the "last
/// seen alive" time changed (pending intervals must be durable), and for that time alone at
/// most every [`LAST_SEEN_EVERY_MS`].
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    /// The last state written, with its "last seen" time left out.
    written: Option<TrackerState>,
    written_seen_ms: i64,
}

impl StateFile {
    /// The file at `path` (nothing is read or written yet).
    pub fn new(path: PathBuf) -> Self {
        Self { path, written: None, written_seen_ms: 0 }
    }

    /// Writes `state` if it changed (see the type).
    pub fn save(&mut self, state: &TrackerState) {
        let mut content = state.clone();
        content.last_seen_ms = 0;
        let same = self.written.as_ref() == Some(&content);
        if same && state.last_seen_ms.saturating_sub(self.written_seen_ms) < LAST_SEEN_EVERY_MS {
            return;
        }
        if save_state(&self.path, state) {
            self.written = Some(content);
            self.written_seen_ms = state.last_seen_ms;
        }
    }
}

/// Samples carrying intervals and power events (intervals in chunks the protocol accepts).
pub fn usage_samples(intervals: Vec<UsageInterval>, events: Vec<PowerEvent>) -> Vec<Sample> {
    let mut out: Vec<Sample> = events.into_iter().map(Sample::Power).collect();
    out.extend(intervals.chunks(CHUNK).map(|c| Sample::Usage(c.to_vec())));
    out
}
