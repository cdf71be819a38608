//! # parta-collector — accepts Parta agents, stores their reports, serves the API
//!
//! ## Layout
//! - [`app`]: command dispatch (`serve`, `migrate`, …) and exit codes; `main.rs` only calls it.
//!   [`cli`] defines the command line, [`config`] resolves flags, environment and TOML.
//! - [`ingest`]: QUIC sessions with agents (enrollment, Hello authenticated by the device's
//!   certificate, Welcome, reports, acks, certificate renewal), the bound on connections that
//!   have not said Hello, the per-device registry, and the batcher that stores reports before
//!   they are acknowledged.
//! - [`fleet`]: enrollment, the device CA and certificates, which school a device belongs to
//!   over time, revocation; `token …` and `device …` commands.
//! - [`storage`]: ClickHouse — migrations rendered for the server version, row types, inserts,
//!   queries.
//! - [`api`]: HTTP endpoints (axum): `/healthz`, `/readyz`, `/metrics`, `/api/v1/…`.
//! - [`tokens`]: enrollment tokens (generation, hashing, limits, the cache enrollment checks).
//! - Leaves: [`clock`] (now, versions, RFC 3339), [`refresh`] (in-memory views refreshed on a
//!   timer and on a miss; a shared view sessions wait on), [`who`] (the actor of a command).
//! - [`tls`]: the server certificate, generated with a private CA on first start if none is
//!   configured, and the client-certificate verifiers. [`metrics`]: the collector's own
//!   Prometheus metrics.
//! - [`auth`], [`web`], [`compliance`], [`speedtest`]: accounts, the web UI, compliance
//!   reports, the ЕСПД speed-test service.
//! - [`policy`]: central configuration — policy scopes and a device's effective policy (the
//!   merge of its scopes), checked by the agent's own rules (`parta_agent::policy`).
//! - [`release`]: signed releases of the agent — `release add|rollout|retry|list|status`,
//!   which release a device is offered, the artifact served in chunks over its session under a
//!   shared bandwidth bound, the devices' update states.

#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod compliance;
pub mod config;
pub mod fleet;
pub mod ingest;
pub mod metrics;
pub mod policy;
pub mod refresh;
pub mod release;
pub mod speedtest;
pub mod storage;
pub mod tls;
pub mod tokens;
pub mod web;
pub mod who;
