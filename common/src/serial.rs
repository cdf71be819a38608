//! Serial numbers as devices report them: a comparable key, and whether a serial is a
//! placeholder that every unit of a model carries.
//!
//! Real firmware fills serial fields with the same value in every unit: EDIDs with `1`,
//! `16843009` (`0x01010101` read as a number), `999`, `1234567890` or zeros; BIOSes with
//! `To Be Filled By O.E.M.` or `Default string`. Such a serial says nothing about *which* unit
//! it is: the agent does not derive a device id from it, and the collector never matches an
//! equipment-register item on it. Both sides use [`is_placeholder`], so they agree.

/// Words firmware puts where the serial should be (compared as [`key`]s).
const PLACEHOLDER_WORDS: &[&str] = &[
    "TOBEFILLEDBYOEM",
    "TOBEFILLEDBYOEMTOBEFILLEDBYOEM",
    "DEFAULTSTRING",
    "SYSTEMSERIALNUMBER",
    "CHASSISSERIALNUMBER",
    "BASEBOARDSERIALNUMBER",
    "SERIALNUMBER",
    "SERIAL",
    "NONE",
    "NULL",
    "NA",
    "NOTSPECIFIED",
    "NOTAPPLICABLE",
    "NOTAVAILABLE",
    "UNKNOWN",
    "INVALID",
    "EMPTY",
    "OEM",
    "DEFAULT",
];

/// Shortest serial that can tell units apart: makers number units with at least five
/// characters; `1`, `12`, `999` and `0001` are firmware defaults.
pub const MIN_SERIAL_LEN: usize = 5;

/// A serial in comparable form: letters and digits only, upper case (`pf-3x 9k1` → `PF3X9K1`).
pub fn key(serial: &str) -> String {
    serial.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_uppercase).collect()
}

/// The comparable key of a serial that identifies a unit, or an empty string for an empty or
/// placeholder serial.
pub fn unit_key(serial: &str) -> String {
    let k = key(serial);
    if is_placeholder_key(&k) { String::new() } else { k }
}

/// Whether a serial is empty or a placeholder shared by every unit of a model.
pub fn is_placeholder(serial: &str) -> bool {
    is_placeholder_key(&key(serial))
}

fn is_placeholder_key(k: &str) -> bool {
    if k.chars().count() < MIN_SERIAL_LEN || PLACEHOLDER_WORDS.contains(&k) {
        return true;
    }
    let mut chars = k.chars();
    let first = chars.next();
    // One character repeated: 00000, 11111111, FFFFFFFF, XXXXXXXX.
    if chars.all(|c| Some(c) == first) {
        return true;
    }
    // A run of the alphabet or of the digits, either way: 1234567890, 0123456789, 987654321,
    // ABCDEFGH.
    const RUNS: [&str; 4] =
        ["0123456789012", "9876543210987", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "ZYXWVUTSRQPONMLKJIHGFEDCBA"];
    if RUNS.iter().any(|r| r.contains(k)) {
        return true;
    }
    // A 32-bit numeric serial whose four bytes are equal (16843009 = 0x01010101, 4294967295 =
    // 0xFFFFFFFF) or count up or down (305419896 = 0x12345678).
    if let Ok(n) = k.parse::<u32>() {
        let b = n.to_be_bytes();
        if b.iter().all(|x| *x == b[0]) || n == 0x1234_5678 || n == 0x8765_4321 {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_seen_in_real_firmware() {
        for s in [
            "",
            "0",
            "1",
            "999",
            "0001",
            "000000000",
            "16843009",
            "4294967295",
            "305419896",
            "1234567890",
            "0123456789",
            "123456789",
            "12345",
            "ABCDEFGH",
            "To Be Filled By O.E.M.",
            "Default string",
            "System Serial Number",
            "Not Specified",
            "N/A",
            "  xxxxxxxx ",
        ] {
            assert!(is_placeholder(s), "{s:?} should be a placeholder");
            assert_eq!(unit_key(s), "", "{s:?}");
        }
    }

    #[test]
    fn real_serials_are_kept() {
        for (s, k) in [
            ("DTJ2NY3", "DTJ2NY3"),
            ("3CM1012Z3D", "3CM1012Z3D"),
            ("H4ZJ804206", "H4ZJ804206"),
            ("3Y005307NB", "3Y005307NB"),
            ("W492KB03439", "W492KB03439"),
            ("0505571100", "0505571100"),
            ("809709644", "809709644"),
            ("pf-3x 9k1", "PF3X9K1"),
            ("00030661509010026177", "00030661509010026177"),
            ("12346", "12346"),
        ] {
            assert!(!is_placeholder(s), "{s:?} is a real serial");
            assert_eq!(unit_key(s), k);
        }
    }
}
