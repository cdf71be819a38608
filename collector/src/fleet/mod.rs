//! The fleet: which devices exist, how they prove it, and which school each belongs to.
//!
//! Owns enrollment ([`enroll`]: a token and a public key in, a certificate out), the device CA
//! that signs certificates ([`ca`]), the in-memory view sessions authenticate against and ask
//! for a report's school ([`book`]), and the administrators' commands ([`commands`]: tokens,
//! `device list|show|move|revoke`). May call storage, tokens and the TLS leaves; never ingest,
//! the API or the web UI, which call it.

pub mod book;
pub mod ca;
pub mod commands;
pub mod enroll;
