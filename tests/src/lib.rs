//! # parta-tests — end-to-end tests and benchmarks with real processes
//!
//! The helpers here start the real things — a private ClickHouse server, the `parta-collector`
//! and `parta-agent` binaries — each with its own temporary directory and free ports, and stop
//! them when dropped. Process logs go to `target/test-artifacts/<test>/` and are printed when a
//! test fails.
//!
//! ## Layout
//! - [`benchdata`]: synthetic regional data generated in ClickHouse, for the benchmarks.
//! - [`chdb`]: modern ClickHouse in process (chdb), for running our SQL on ClickHouse 26.
//! - [`clickhouse`]: a private ClickHouse server for one test.
//! - [`debroot`]: a Debian root made by `debootstrap`, for installing the packages with `dpkg`.
//! - [`fixtures`]: sysfs/procfs/rootfs trees of real-looking school devices.
//! - [`flood`]: unauthenticated QUIC handshakes in bulk (the flood test and benchmark).
//! - [`logind`]: a private D-Bus bus with a fake systemd-logind the test scripts.
//! - [`grafana`]: SQL of the Grafana dashboards with macros expanded.
//! - [`procs`]: collector and agent processes.
//! - [`snmpd`]: a private net-snmp `snmpd` with a scripted fake device (pass_persist).
//! - [`quic`]: a raw QUIC client speaking the wire protocol, and devices enrolled without an
//!   agent, for bad-input and attack tests.
//! - [`netns`], [`tmpfs`]: network namespaces and small disks the fault tests create and cut.
//! - [`updates`]: devices with the agent installed as the packages install it (their own binary,
//!   a supervisor, root's release key, the installer run when a release is downloaded) and the
//!   region's signed builds, for update tests.
//! - [`verify`]: the end state every fault test checks — each report exactly once, as sent.
//! - [`util`]: free ports, waiting, binaries and artifact directories.
//! - [`webdriver`]: headless Debian Chromium over WebDriver (chromedriver), for the UI tests.
//! - [`websession`]: a browser-like HTTP session (cookies, forms) for the UI's access tests.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub, missing_debug_implementations)]

pub mod benchdata;
pub mod chdb;
pub mod clickhouse;
pub mod debroot;
pub mod delayline;
pub mod fixtures;
pub mod flood;
pub mod grafana;
pub mod logind;
pub mod netns;
pub mod procs;
pub mod quic;
pub mod snmpd;
pub mod tmpfs;
pub mod updates;
pub mod util;
pub mod verify;
pub mod webdriver;
pub mod websession;
