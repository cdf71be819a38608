//! Ids of devices that agents report about rather than for themselves — SNMP gear and attached
//! displays — and how the collector binds them to the reporting device's school.
//!
//! An agent proposes such ids; the collector never stores one as sent. It derives the id from
//! the school it has on record for the reporting device (never from the agent's word), so one
//! school's agents cannot write into another school's gear or displays.

use uuid::Uuid;

use crate::message::DeviceId;

/// Namespace of SNMP device ids: UUIDv5 of `school/host:port`.
pub const SNMP_NAMESPACE: Uuid = Uuid::from_u128(0x3f0c_8e61_25d4_4b7a_9e10_c2a8_51f3_7d64);

/// Namespace of displays as the collector stores them: UUIDv5 of `school/reported id`.
pub const SCHOOL_DISPLAY_NAMESPACE: Uuid = Uuid::from_u128(0x8d2e_54a0_7b13_4c6f_a1e9_3f70_c2d4_9b85);

/// The id of an SNMP target of a school: every agent of the school polling the same address
/// reports the same device, and the same address in another school is another device.
pub fn snmp_device(school: &str, address: &str) -> DeviceId {
    DeviceId(Uuid::new_v5(&SNMP_NAMESPACE, format!("{school}/{address}").as_bytes()))
}

/// The id under which the collector stores a display an agent of `school` reported as
/// `reported` (derived by the agent from the display's EDID, or from its host and connector).
pub fn school_display(school: &str, reported: DeviceId) -> DeviceId {
    DeviceId(Uuid::new_v5(&SCHOOL_DISPLAY_NAMESPACE, format!("{school}/{}", reported.0).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_the_school() {
        let d = DeviceId(Uuid::from_u128(7));
        assert_ne!(school_display("74-0012", d), school_display("74-0013", d));
        assert_eq!(school_display("74-0012", d), school_display("74-0012", d));
        assert_ne!(snmp_device("74-0012", "10.0.0.2:161"), snmp_device("74-0013", "10.0.0.2:161"));
        // The SNMP id is the one agents computed before the collector derived it.
        assert_eq!(
            snmp_device("74-0012", "10.0.0.2:161").0,
            Uuid::new_v5(&SNMP_NAMESPACE, b"74-0012/10.0.0.2:161")
        );
    }
}
