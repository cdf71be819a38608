//! How devices are used: intervals of power and activity, and power events.
//!
//! Intervals, not snapshots: each interval has an exact start and end, consecutive intervals of
//! a subject do not overlap, and sums of durations are exact.

use serde::{Deserialize, Serialize};

use crate::message::DeviceId;

/// What an interval describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    /// The device running the agent.
    Host,
    /// A display attached to it (an interactive panel or monitor), by its device id.
    Display(DeviceId),
}

/// The state of a subject during an interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageState {
    /// Powered off (display: disconnected or in power saving).
    Off,
    /// Powered on, nobody using it.
    Idle,
    /// Powered on and in use: an interactive session with input within the idle threshold (a
    /// display: connected and on).
    InUse,
    /// Powered on while the agent was not running: use unknown.
    Unmonitored,
}

impl UsageState {
    /// Name for tables and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Idle => "idle",
            Self::InUse => "in_use",
            Self::Unmonitored => "unmonitored",
        }
    }

    /// Whether the subject was powered on.
    pub fn powered(self) -> bool {
        !matches!(self, Self::Off)
    }
}

/// Who used the device, as a class — never who.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserClass {
    /// Not in use, or not attributable.
    None,
    /// A teacher.
    Teacher,
    /// A pupil.
    Pupil,
    /// Administration staff.
    Admin,
    /// A user in none of the configured groups.
    Other,
}

impl UserClass {
    /// Name for tables and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Teacher => "teacher",
            Self::Pupil => "pupil",
            Self::Admin => "admin",
            Self::Other => "other",
        }
    }
}

/// One interval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageInterval {
    /// Host or display.
    pub subject: Subject,
    /// Start, ms since the epoch.
    pub start_ms: i64,
    /// End (exclusive), ms since the epoch.
    pub end_ms: i64,
    /// State.
    pub state: UsageState,
    /// User class while in use.
    pub user_class: UserClass,
    /// Salted hash of the user, only when the agent is configured with a salt; lets ops count
    /// distinct users without knowing them.
    pub user_key: Option<u64>,
    /// The day the interval belongs to in the device's local time, days since 1970-01-01
    /// (intervals never cross local midnight).
    pub local_day: i32,
}

impl UsageInterval {
    /// Length, ms.
    pub fn duration_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }
}

/// A boot or a shutdown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerEvent {
    /// What happened.
    pub kind: PowerEventKind,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// The boot it belongs to (kernel boot id).
    pub boot_id: String,
}

/// Boot or shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerEventKind {
    /// The system started.
    Boot,
    /// The system stopped: `clean` when it was shut down, not when power was cut or it crashed.
    Shutdown {
        /// Orderly shutdown.
        clean: bool,
    },
}
