//! SNMP polling of the school's LAN gear and printers (switches, routers, Wi-Fi controllers
//! and access points, MFUs), which cannot run an agent.
//!
//! - [`target`]: what to poll and how (v1/v2c community, v3 USM), from the `[snmp]` section of
//!   the configuration or the flags of `parta-agent snmp poll`.
//! - [`client`]: one conversation with a target over `snmp2`: GET, GETBULK walks of table
//!   columns, timeouts and retries, errors classified (timeout, auth, malformed, …).
//! - [`mib`]: the objects read (SNMPv2-MIB system, IF-MIB, Printer-MIB, HOST-RESOURCES-MIB,
//!   ENTITY-MIB) and pure functions that turn replies into readings.
//! - [`profile`]: device profiles by sysObjectID prefix, as data files.
//! - [`poller`]: one poll of a target, rates against the previous poll, and the scheduler that
//!   polls every target on its own timer.
//! - [`diagnose`]: `parta-agent snmp poll` and `snmp profiles`.

pub mod client;
pub mod diagnose;
pub mod mib;
pub mod poller;
pub mod profile;
pub mod target;
