//! Displays attached through DRM connectors: `{sysfs}/class/drm/cardN-CONNECTOR/{status,
//! enabled,dpms,edid}`.
//!
//! A connector is *on* when it is connected and its DPMS state is `On`; an external display
//! that is on counts as in use (it shows something to the room). Internal laptop panels (eDP,
//! LVDS, DSI) are part of the computer and are not reported as displays. A connector whose EDID
//! is missing, truncated or fails its checksum is reported without identity (and a warning is
//! logged once per distinct problem by the caller).

use std::io::ErrorKind;
use std::path::Path;

use super::edid::{self, Edid, EdidError};
use crate::paths::HostPaths;

/// Connector types built into the computer.
const INTERNAL: &[&str] = &["eDP", "LVDS", "DSI"];

/// What one connector shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connector {
    /// Connector name without the card prefix, e.g. `HDMI-A-1`.
    pub name: String,
    /// `status` is `connected`.
    pub connected: bool,
    /// `dpms` is `On` (missing file: assumed on when connected and enabled).
    pub dpms_on: bool,
    /// `enabled` is `enabled`.
    pub enabled: bool,
    /// The EDID, when present; `Err` when present but unusable.
    pub edid: Option<Result<Edid, EdidError>>,
}

impl Connector {
    /// Connected and on: the display is showing a picture.
    pub fn is_on(&self) -> bool {
        self.connected && self.enabled && self.dpms_on
    }
}

/// Reads every external connector, sorted by name. Missing `class/drm` (no GPU, a container)
/// yields an empty list.
pub fn read(paths: &HostPaths) -> Vec<Connector> {
    let dir = paths.sys("class/drm");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => {
            if e.kind() != ErrorKind::NotFound {
                tracing::warn!(path = %dir.display(), error = %e, "cannot list DRM connectors");
            }
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(full) = file_name.to_str() else { continue };
        // `card0-HDMI-A-1`; `card0`, `renderD128`, `version` are not connectors.
        let Some((card, name)) = full.split_once('-') else { continue };
        if !card.starts_with("card") || INTERNAL.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        out.push(read_connector(&entry.path(), name));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

fn read_connector(dir: &Path, name: &str) -> Connector {
    let text = |f: &str| std::fs::read_to_string(dir.join(f)).ok().map(|s| s.trim().to_owned());
    let connected = text("status").is_some_and(|s| s == "connected");
    let enabled = text("enabled").is_none_or(|s| s == "enabled");
    let dpms_on = text("dpms").is_none_or(|s| s == "On");
    let edid = match std::fs::read(dir.join("edid")) {
        Ok(bytes) if bytes.is_empty() => None,
        Ok(bytes) => Some(edid::parse(&bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => {
            tracing::debug!(connector = name, error = %e, "EDID unreadable");
            Some(Err(EdidError::Truncated(0)))
        }
    };
    Connector { name: name.to_owned(), connected, dpms_on, enabled, edid }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::edid::Spec;

    #[test]
    fn reads_connectors_skips_internal_and_non_connectors() {
        let dir = tempfile::tempdir().unwrap();
        let drm = dir.path().join("sys/class/drm");
        for (name, status, dpms) in [
            ("card0-HDMI-A-1", "connected", "On"),
            ("card0-DP-1", "disconnected", "Off"),
            ("card0-eDP-1", "connected", "On"),
        ] {
            std::fs::create_dir_all(drm.join(name)).unwrap();
            std::fs::write(drm.join(name).join("status"), format!("{status}\n")).unwrap();
            std::fs::write(drm.join(name).join("dpms"), format!("{dpms}\n")).unwrap();
            std::fs::write(drm.join(name).join("enabled"), "enabled\n").unwrap();
            std::fs::write(drm.join(name).join("edid"), b"").unwrap();
        }
        std::fs::create_dir_all(drm.join("card0")).unwrap();
        std::fs::write(drm.join("version"), "drm 1.1.0\n").unwrap();
        let spec = Spec {
            manufacturer: "SAM",
            product_code: 1,
            serial_number: 7,
            serial_text: None,
            name: None,
            year: 2020,
            width_mm: 600,
            height_mm: 340,
            ..Default::default()
        };
        std::fs::write(drm.join("card0-HDMI-A-1/edid"), edid::encode(&spec)).unwrap();
        let c = read(&HostPaths::under(dir.path()));
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].name, "DP-1");
        assert!(!c[0].is_on() && c[0].edid.is_none());
        assert_eq!(c[1].name, "HDMI-A-1");
        assert!(c[1].is_on());
        assert_eq!(c[1].edid.as_ref().unwrap().as_ref().unwrap().manufacturer, "SAM");
    }

    #[test]
    fn no_drm_directory_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(&HostPaths::under(dir.path())).is_empty());
    }
}
