//! The compliance commands of `parta-collector`: `schools`, `inventory`, `profiles`.

use std::io::Write as _;

use anyhow::Context as _;

use super::build::{self, Request, Scope};
use super::csvin::{Delimiter, Encoding};
use super::export::{Format3, Lang};
use super::import::{self, ReadOptions};
use super::profile::{self, Profile, UsageRule};
use crate::app::migrated_store as store;
use crate::cli::{ImportArgs, InventoryAction, OutputFormat, ProfilesAction, ReportKind, SchoolsAction};
use crate::config::CollectorConfig;

fn read_options(a: &ImportArgs) -> anyhow::Result<ReadOptions> {
    Ok(ReadOptions {
        encoding: Encoding::parse(&a.encoding).map_err(anyhow::Error::msg).context("--encoding")?,
        delimiter: Delimiter::parse(&a.delimiter).map_err(anyhow::Error::msg).context("--delimiter")?,
    })
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
            let summary =
                import::schools(&store, &a.file, opts, a.dry_run, &crate::who::local_actor()).await?;
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
                import::register(&store, &args.file, opts, p, args.dry_run, &crate::who::local_actor())
                    .await?;
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

fn date(flag: &str, s: &str) -> anyhow::Result<jiff::civil::Date> {
    s.parse::<jiff::civil::Date>().with_context(|| format!("{flag} {s:?}: expected YYYY-MM-DD"))
}

/// `report status`: the overview's verdicts of a scope, for the canonical period.
async fn status(config: &CollectorConfig, scope: &str) -> anyhow::Result<()> {
    let scope = Scope::parse(scope).map_err(anyhow::Error::msg).context("--scope")?;
    let profiles = profiles_of(config)?;
    let store = store(config).await?;
    let today = crate::clock::today_in(&config.web.timezone);
    let (from, to) = build::canonical_period(today);
    let built = build::update_status(&store, &profiles, scope.clone(), today).await?;
    let schools: std::collections::BTreeSet<&str> =
        built.report.schools.iter().map(|l| l.school_id.as_str()).collect();
    eprintln!(
        "recorded the verdicts of {} schools of {scope} for {from} – {to} (profile {}): the overview shows them",
        schools.len(),
        built.report.methodology.profile
    );
    Ok(())
}

/// `report compliance …`.
pub async fn report(config: &CollectorConfig, kind: ReportKind) -> anyhow::Result<()> {
    let (scope, from, to, id, format, out, lang) = match kind {
        ReportKind::Compliance { scope, from, to, profile, format, out, lang } => {
            (scope, from, to, profile, format, out, lang)
        }
        ReportKind::Status { scope } => return status(config, &scope).await,
    };
    let scope = Scope::parse(&scope).map_err(anyhow::Error::msg).context("--scope")?;
    let format = Format3::parse(&format).map_err(anyhow::Error::msg).context("--format")?;
    let lang = Lang::parse(&lang).map_err(anyhow::Error::msg).context("--lang")?;
    let today = crate::clock::today_in(&config.web.timezone);
    let to = match to {
        Some(t) => date("--to", &t)?,
        None => today.yesterday().context("the day before today")?,
    };
    let from = match from {
        Some(f) => date("--from", &f)?,
        None => to.checked_sub(jiff::Span::new().days(89)).context("--to is too early")?,
    };
    if format == Format3::Xlsx && out.is_none() {
        anyhow::bail!("--out: an xlsx report needs a file (or use --format csv or json for standard output)");
    }
    let req = Request {
        scope,
        from,
        to,
        profile: id.unwrap_or_else(|| profile::DEFAULT_PROFILE.to_owned()),
        format,
        lang,
    };
    let profiles = profiles_of(config)?;
    let store = store(config).await?;
    let started = std::time::Instant::now();
    let steps = ["registry", "facts", "report", "export"];
    let built = build::build(&store, &profiles, &req, |s| {
        let n = steps.iter().position(|x| *x == s).map_or(0, |i| i + 1);
        eprintln!("[{n}/{}] {s} ({:.1} s)", steps.len(), started.elapsed().as_secs_f64());
    })
    .await?;
    match &out {
        Some(path) => parta_common::fsutil::replace_file(path, &built.bytes)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(&built.bytes)?,
    }
    build::log(&store, &req, &built, &crate::who::local_actor(), "cli").await?;
    let m = &built.report.methodology;
    eprintln!(
        "{}: {} bytes, SHA-256 {}; {} schools, {} – {}, profile {} {}, completeness {}; recorded in the export log",
        out.as_ref().map_or_else(|| "standard output".to_owned(), |p| p.display().to_string()),
        built.bytes.len(),
        built.sha256,
        built.report.espd.len(),
        m.from,
        m.to,
        m.profile,
        m.profile_version,
        m.ledger_completeness.map_or_else(|| "no reports".to_owned(), |c| format!("{:.2} %", c * 100.0)),
    );
    Ok(())
}
