//! The compliance commands of `parta-collector`: `schools`, `inventory`, `profiles`.

use std::io::Write as _;

use anyhow::Context as _;

use super::csvin::{Delimiter, Encoding};
use super::import::{self, ReadOptions};
use super::profile::{self, Profile, UsageRule};
use crate::cli::{ImportArgs, InventoryAction, OutputFormat, ProfilesAction, SchoolsAction};
use crate::config::CollectorConfig;
use crate::storage::Store;

fn read_options(a: &ImportArgs) -> anyhow::Result<ReadOptions> {
    Ok(ReadOptions {
        encoding: Encoding::parse(&a.encoding).map_err(anyhow::Error::msg).context("--encoding")?,
        delimiter: Delimiter::parse(&a.delimiter).map_err(anyhow::Error::msg).context("--delimiter")?,
    })
}

async fn store(config: &CollectorConfig) -> anyhow::Result<Store> {
    let store = Store::connect(&config.clickhouse).await?;
    store.migrate().await?;
    Ok(store)
}

/// The profiles, shipped and regional.
pub fn profiles_of(config: &CollectorConfig) -> Result<Vec<Profile>, profile::ProfileError> {
    profile::load_all(config.profiles_dir.as_deref())
}

/// `schools …`.
pub async fn schools(config: &CollectorConfig, action: SchoolsAction) -> anyhow::Result<()> {
    match action {
        SchoolsAction::Import(a) => {
            let opts = read_options(&a)?;
            let store = store(config).await?;
            let summary = import::schools(&store, &a.file, opts, a.dry_run, &import::local_actor()).await?;
            println!("{}: {summary}", a.file.display());
        }
        SchoolsAction::List { format } => {
            let rows = store(config).await?.schools().await?;
            let mut out = std::io::stdout().lock();
            match format {
                OutputFormat::Json => {
                    let schools: Vec<_> =
                        rows.iter().map(crate::storage::registry::SchoolRow::school).collect();
                    serde_json::to_writer_pretty(&mut out, &schools)?;
                    writeln!(out)?;
                }
                OutputFormat::Text => {
                    for r in &rows {
                        writeln!(
                            out,
                            "{}\t{}\t{}\t{}\t{}\tpupils {}, teachers {}, admin {}, classrooms {}, buildings {}",
                            r.school_id,
                            r.region_code,
                            r.municipality,
                            r.name,
                            r.locality,
                            r.pupils,
                            r.teachers,
                            r.admin_staff,
                            r.classrooms,
                            r.buildings
                        )?;
                    }
                    writeln!(out, "{} schools", rows.len())?;
                }
            }
        }
    }
    Ok(())
}

/// `inventory …`.
pub async fn inventory(config: &CollectorConfig, action: InventoryAction) -> anyhow::Result<()> {
    match action {
        InventoryAction::Import { args, profile: id } => {
            let opts = read_options(&args)?;
            let all = profiles_of(config)?;
            let p = profile::find(&all, id.as_deref().unwrap_or(profile::DEFAULT_PROFILE))
                .map_err(anyhow::Error::msg)
                .context("--profile")?;
            let store = store(config).await?;
            let summary =
                import::register(&store, &args.file, opts, p, args.dry_run, &import::local_actor()).await?;
            println!("{}: {summary}", args.file.display());
        }
        InventoryAction::List { school, format } => {
            let rows: Vec<_> = store(config)
                .await?
                .register()
                .await?
                .into_iter()
                .filter(|r| school.as_ref().is_none_or(|s| *s == r.school_id))
                .collect();
            let mut out = std::io::stdout().lock();
            match format {
                OutputFormat::Json => {
                    serde_json::to_writer_pretty(&mut out, &rows)?;
                    writeln!(out)?;
                }
                OutputFormat::Text => {
                    for r in &rows {
                        writeln!(
                            out,
                            "{}\t{}\t{}\t{} {}\tS/N {}\t{}\t{}",
                            r.school_id,
                            r.inventory_no,
                            r.category,
                            r.vendor,
                            r.model,
                            r.serial,
                            r.mac,
                            r.room
                        )?;
                    }
                    writeln!(out, "{} items", rows.len())?;
                }
            }
        }
    }
    Ok(())
}

/// `profiles …`.
pub fn profiles(config: &CollectorConfig, action: &ProfilesAction) -> anyhow::Result<()> {
    let all = profiles_of(config)?;
    let mut out = std::io::stdout().lock();
    match action {
        ProfilesAction::List => {
            for p in &all {
                writeln!(out, "{}\t{}\t{}", p.id, p.version, p.name)?;
            }
        }
        ProfilesAction::Show { id } => {
            let p = profile::find(&all, id).map_err(anyhow::Error::msg)?;
            writeln!(out, "{} {} — {}", p.id, p.version, p.name)?;
            writeln!(out, "sources: {}", p.source)?;
            let (src, confirmed) = &p.espd_source;
            writeln!(
                out,
                "ЕСПД: {} Mbit/s urban, {} Mbit/s rural ({}; {src})",
                p.espd_mbps.0,
                p.espd_mbps.1,
                if *confirmed { "confirmed" } else { "regional parameter" }
            )?;
            writeln!(out, "seen: reported within {} days of the period's end", p.seen_days)?;
            for c in &p.categories {
                let usage = match c.usage {
                    UsageRule::InUseHoursPerWeek(h) => format!("used: in use ≥ {h} h a week"),
                    UsageRule::PagesPerWeek(n) => format!("used: ≥ {n} pages a week"),
                    UsageRule::Seen => "used: reporting".to_owned(),
                };
                writeln!(out, "\n{} — {} ({})", c.id, c.name, c.name_en)?;
                writeln!(
                    out,
                    "  required: {} ({})",
                    c.required_text,
                    if c.confirmed { "confirmed" } else { "regional parameter" }
                )?;
                writeln!(out, "  source: {}", c.source)?;
                writeln!(out, "  {usage} — {}", c.usage_source)?;
                if !c.classes.is_empty() {
                    writeln!(out, "  reporting classes: {}", c.classes.join(", "))?;
                }
            }
        }
    }
    Ok(())
}
