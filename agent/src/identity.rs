//! The device's stable identity, kept in the state directory as `device-id`: made at first start
//! and offered when the device enrolls (the collector accepts it if no other device holds it),
//! or the one the collector chose at enrollment.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use parta_common::fsutil;
use parta_protocol::DeviceId;

/// File name of the identity inside the state directory.
pub const FILE: &str = "device-id";

/// The identity file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("device identity {}: {error}", path.display())]
pub struct IdentityError {
    path: PathBuf,
    error: std::io::Error,
}

/// The device id if the state directory holds one; never creates anything (for read-only
/// commands).
pub fn load(state_dir: &Path) -> Option<DeviceId> {
    std::fs::read_to_string(state_dir.join(FILE)).ok()?.trim().parse().ok()
}

/// Writes the device id (atomically).
pub fn store(state_dir: &Path, id: DeviceId) -> Result<(), IdentityError> {
    let path = state_dir.join(FILE);
    fsutil::write_atomic(&path, format!("{id}\n").as_bytes(), false)
        .map_err(|error| IdentityError { path, error })
}

/// Loads the device id from `state_dir`, creating it (and the directory) on first start.
///
/// A file that exists but does not hold a UUID was damaged outside the agent (it is written
/// atomically): it is moved aside as `device-id.corrupt` and a new identity is created, with a
/// warning — refusing to start would help nobody.
pub fn load_or_create(state_dir: &Path) -> Result<DeviceId, IdentityError> {
    let path = state_dir.join(FILE);
    let err = |error| IdentityError { path: path.clone(), error };
    match std::fs::read_to_string(&path) {
        Ok(text) => match text.trim().parse::<DeviceId>() {
            Ok(id) => return Ok(id),
            Err(e) => {
                let aside = state_dir.join(format!("{FILE}.corrupt"));
                tracing::warn!(path = %path.display(), error = %e, moved_to = %aside.display(),
                    "device identity file is damaged; creating a new identity");
                std::fs::rename(&path, &aside).map_err(err)?;
            }
        },
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    fsutil::create_private_dir(state_dir).map_err(err)?;
    let id = DeviceId::random();
    fsutil::write_atomic(&path, format!("{id}\n").as_bytes(), false).map_err(err)?;
    tracing::info!(device_id = %id, path = %path.display(), "created device identity");
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_stable() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let a = load_or_create(&state).unwrap();
        let b = load_or_create(&state).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn damaged_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "garbage").unwrap();
        let id = load_or_create(dir.path()).unwrap();
        assert_eq!(load_or_create(dir.path()).unwrap(), id);
        assert_eq!(std::fs::read_to_string(dir.path().join("device-id.corrupt")).unwrap(), "garbage");
    }
}
