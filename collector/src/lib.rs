//! # parta-collector — accepts Parta agents, stores their reports, serves the API
//!
//! ## Layout
//! - [`app`]: command dispatch (`serve`, `migrate`, `token …`) and exit codes; `main.rs` only
//!   calls it. [`cli`] defines the command line, [`config`] resolves flags, environment and TOML.
//! - [`ingest`]: QUIC sessions with agents (Hello, tokens, Welcome, reports, acks), the
//!   per-device registry, and the batcher that stores reports before they are acknowledged.
//! - [`storage`]: ClickHouse — migrations rendered for the server version, row types, inserts,
//!   queries.
//! - [`api`]: HTTP endpoints (axum): `/healthz`, `/readyz`, `/metrics`, `/api/v1/…`.
//! - [`tokens`]: enrollment tokens (generation, hashing, the cache sessions check against).
//! - [`tls`]: the server certificate, generated with a private CA on first start if none is
//!   configured. [`metrics`]: the collector's own Prometheus metrics.

#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod compliance;
pub mod config;
pub mod ingest;
pub mod metrics;
pub mod speedtest;
pub mod storage;
pub mod tls;
pub mod tokens;
pub mod web;
