//! Equipment-standard compliance (634/925): the school registry and the equipment register
//! imported from CSV, norm profiles, and the compliance report with its exports.
//!
//! - `csvin`: CSV as people produce it (UTF-8 or Windows-1251, `;`/`,`/tab), with line numbers.
//! - `expr`: the quantity expressions of norm profiles.
//! - `profile`: norm profiles (shipped and regional TOML files).
//! - `registry`: the school registry and the equipment register, checked row by row.
//! - `import`: the `schools import` and `inventory import` commands.

pub mod build;
pub mod commands;
pub mod csvin;
pub mod export;
pub mod expr;
pub mod import;
pub mod profile;
pub mod registry;
pub mod report;
