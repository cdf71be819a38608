//! Who runs an administrative command, for the records that keep who changed what.

/// The invoking user behind sudo, else the user, marked as acting from the command line.
pub fn local_actor() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .map_or_else(|| "unknown".to_owned(), |u| format!("{u} (command line)"))
}
