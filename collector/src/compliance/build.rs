//! Building a compliance report for a request: resolve the scope in the registry, read the
//! facts, compute, export, hash. Shared by `report compliance` and `GET /api/v1/compliance`.

use std::fmt;

use sha2::{Digest, Sha256};

use super::export::{self, Format3, Lang};
use super::profile::{self, Profile};
use super::report::{self, ComplianceReport, Facts};
use crate::storage::registry::ExportLogRow;
use crate::storage::{Store, now_secs};

/// Longest period of one report, days.
pub const MAX_DAYS: i32 = 366;

/// Which schools a report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A region by its code.
    Region(String),
    /// A municipality of a region, by its name in the registry (the same name exists in many
    /// regions: «Октябрьский район»). A scope written without the region names the municipality
    /// only if one region has it ([`Scope::resolve`]).
    Municipality {
        /// Region code; `None` as written by older accounts and scripts.
        region: Option<String>,
        /// Name.
        name: String,
    },
    /// One school.
    School(String),
}

impl Scope {
    /// Parses `region:74`, `municipality:74/NAME` (or `municipality:NAME`), `school:ID`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (kind, value) = s.split_once(':').ok_or_else(|| {
            format!(
                "scope {s:?}: expected region:CODE, municipality:REGION/NAME or school:ID (e.g. region:74)"
            )
        })?;
        let value = value.trim();
        if value.is_empty() {
            return Err(format!("scope {s:?}: nothing after the colon"));
        }
        match kind.trim() {
            "region" => Ok(Self::Region(value.to_owned())),
            "municipality" => Ok(match value.split_once('/') {
                Some((region, name)) if !region.trim().is_empty() && !name.trim().is_empty() => {
                    Self::Municipality {
                        region: Some(region.trim().to_owned()),
                        name: name.trim().to_owned(),
                    }
                }
                _ => Self::Municipality { region: None, name: value.to_owned() },
            }),
            "school" => Ok(Self::School(value.to_owned())),
            k => Err(format!("scope {s:?}: unknown kind {k:?} (region, municipality or school)")),
        }
    }

    /// The scope with the region of a municipality written without one: the one region of
    /// `places` (region code, municipality name) that has it; an error naming the regions when
    /// several do, or when none does.
    pub fn resolve<'a>(self, places: impl Iterator<Item = (&'a str, &'a str)>) -> Result<Self, Unresolved> {
        let Self::Municipality { region: None, name } = self else { return Ok(self) };
        let key = super::csvin::name_key(&name);
        let regions: std::collections::BTreeSet<&str> =
            places.filter(|(_, m)| super::csvin::name_key(m) == key).map(|(r, _)| r).collect();
        match regions.len() {
            1 => Ok(Self::Municipality { region: regions.first().map(|r| (*r).to_owned()), name }),
            0 => Err(Unresolved::Unknown(name)),
            _ => {
                Err(Unresolved::Ambiguous { name, regions: regions.into_iter().map(str::to_owned).collect() })
            }
        }
    }

    /// Whether a school at (region, municipality) is in this scope.
    pub fn covers(&self, school_id: &str, region: &str, municipality: &str) -> bool {
        match self {
            Self::Region(r) => r == region,
            Self::Municipality { region: r, name } => {
                r.as_deref().is_none_or(|r| r == region)
                    && super::csvin::name_key(name) == super::csvin::name_key(municipality)
            }
            Self::School(id) => id == school_id,
        }
    }
}

/// Why a municipality written without its region names no place for certain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    /// No school of the registry is in a municipality of that name.
    #[error(
        "no municipality {0:?} in the school registry: import the registry first \
         (`parta-collector schools import`) or write it with its region, municipality:REGION/NAME"
    )]
    Unknown(String),
    /// Several regions have a municipality of that name.
    #[error(
        "municipality {name:?} exists in regions {}: write it with its region, e.g. municipality:{}/{name}",
        regions.join(", "),
        regions.first().map_or("", String::as_str)
    )]
    Ambiguous {
        /// The name.
        name: String,
        /// The regions that have it, sorted.
        regions: Vec<String>,
    },
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Region(v) => write!(f, "region:{v}"),
            Self::Municipality { region: Some(r), name } => write!(f, "municipality:{r}/{name}"),
            Self::Municipality { region: None, name } => write!(f, "municipality:{name}"),
            Self::School(v) => write!(f, "school:{v}"),
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct Request {
    /// Scope.
    pub scope: Scope,
    /// First day.
    pub from: jiff::civil::Date,
    /// Last day (inclusive).
    pub to: jiff::civil::Date,
    /// Profile id.
    pub profile: String,
    /// Format.
    pub format: Format3,
    /// Language of the tabular formats.
    pub lang: Lang,
}

/// Why a request cannot be served: a bad parameter (the user's to fix) or the database.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A parameter, named, and why.
    #[error("{field}: {message}")]
    Param {
        /// Parameter.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// Storage.
    #[error(transparent)]
    Store(#[from] crate::storage::StoreError),
    /// Writing the workbook.
    #[error(transparent)]
    Xlsx(#[from] export::XlsxError),
}

fn param(field: &'static str, message: impl Into<String>) -> BuildError {
    BuildError::Param { field, message: message.into() }
}

/// A built report.
#[derive(Debug)]
pub struct Built {
    /// The report.
    pub report: ComplianceReport,
    /// The export's bytes.
    pub bytes: Vec<u8>,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// A file name for it.
    pub file_name: String,
}

/// Days since 1970-01-01.
fn days(d: jiff::civil::Date) -> i32 {
    d.since(jiff::civil::Date::constant(1970, 1, 1)).map_or(0, |s| s.get_days())
}

/// Checks the period.
pub fn check_period(from: jiff::civil::Date, to: jiff::civil::Date) -> Result<(), BuildError> {
    if from > to {
        return Err(param("from", format!("{from} is after the period's end {to}")));
    }
    if days(to) - days(from) + 1 > MAX_DAYS {
        return Err(param("from", format!("the period {from} – {to} is longer than {MAX_DAYS} days")));
    }
    Ok(())
}

/// Builds the report. `step` is told each stage (for progress on large scopes).
pub async fn build(
    store: &Store,
    profiles: &[Profile],
    req: &Request,
    mut step: impl FnMut(&str),
) -> Result<Built, BuildError> {
    check_period(req.from, req.to)?;
    let profile = profile::find(profiles, &req.profile).map_err(|e| param("profile", e))?;
    step("registry");
    let registry = store.schools().await?;
    let scope = req
        .scope
        .clone()
        .resolve(registry.iter().map(|s| (s.region_code.as_str(), s.municipality.as_str())))
        .map_err(|e| param("scope", e.to_string()))?;
    let schools: Vec<_> = registry
        .iter()
        .filter(|s| scope.covers(&s.school_id, &s.region_code, &s.municipality))
        .map(crate::storage::registry::SchoolRow::school)
        .collect();
    if schools.is_empty() {
        return Err(param(
            "scope",
            format!(
                "no school of the registry is in {} ({} schools in the registry)",
                req.scope,
                registry.len()
            ),
        ));
    }
    let ids: Vec<String> = schools.iter().map(|s| s.school_id.clone()).collect();
    let register = store.register_of(&ids).await?;
    step("facts");
    let facts = store.compliance_facts(&ids, &req.from.to_string(), &req.to.to_string()).await?;
    step("report");
    let cutoff = jiff::Timestamp::from_second(i64::from(facts.cutoff)).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let scope_text = match &req.scope {
        Scope::Region(r) => format!("{} {r}", req.lang_pick("регион", "region")),
        Scope::Municipality { name, .. } => {
            format!("{} {name}", req.lang_pick("муниципалитет", "municipality"))
        }
        Scope::School(s) => format!("{} {s}", req.lang_pick("школа", "school")),
    };
    let report = report::compute(&Facts {
        profile,
        scope: format!("{scope_text} ({})", schools_count(ids.len(), req.lang)),
        from_day: days(req.from),
        to_day: days(req.to),
        cutoff: if facts.cutoff == 0 { String::new() } else { cutoff.to_string() },
        schools,
        register,
        devices: facts.devices,
        espd: facts.espd,
        ledger: facts.ledger,
        generator: format!("parta-collector {}", env!("CARGO_PKG_VERSION")),
    });
    step("export");
    let bytes = match req.format {
        Format3::Json => export::json(&report),
        Format3::Csv => export::csv(&export::sheets(&report, profile, req.lang), req.lang),
        Format3::Xlsx => export::xlsx(
            &export::sheets(&report, profile, req.lang),
            &format!(
                "{} — {}",
                req.lang_pick("Соответствие стандарту оснащения", "Equipment-standard compliance"),
                req.scope
            ),
            cutoff,
        )?,
    };
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let slug: String = req
        .scope
        .to_string()
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '-' { c } else { '_' })
        .collect();
    let file_name = format!("compliance_{slug}_{}_{}.{}", req.from, req.to, req.format.as_str());
    Ok(Built { report, bytes, sha256, file_name })
}

/// «1 школа», «3 школы», «5 школ»; "1 school", "3 schools".
pub fn schools_count(n: usize, lang: Lang) -> String {
    match lang {
        Lang::En => format!("{n} school{}", if n == 1 { "" } else { "s" }),
        Lang::Ru => {
            let word = match (n % 10, n % 100) {
                (1, x) if x != 11 => "школа",
                (2..=4, x) if !(12..=14).contains(&x) => "школы",
                _ => "школ",
            };
            format!("{n} {word}")
        }
    }
}

impl Request {
    fn lang_pick<'a>(&self, ru: &'a str, en: &'a str) -> &'a str {
        match self.lang {
            Lang::Ru => ru,
            Lang::En => en,
        }
    }
}

/// Records an export in the audit log.
pub async fn log(
    store: &Store,
    req: &Request,
    built: &Built,
    actor: &str,
    via: &str,
) -> Result<(), BuildError> {
    let m = &built.report.methodology;
    store
        .log_export(&ExportLogRow {
            export_id: format!("exp-{}", uuid::Uuid::new_v4().simple()),
            at: now_secs(),
            actor: actor.to_owned(),
            via: via.to_owned(),
            report: "compliance".into(),
            scope: req.scope.to_string(),
            period_from: u16::try_from(days(req.from)).unwrap_or(0),
            period_to: u16::try_from(days(req.to)).unwrap_or(0),
            profile: format!("{} {}", m.profile, m.profile_version),
            format: req.format.as_str().into(),
            bytes: built.bytes.len() as u64,
            sha256: built.sha256.clone(),
        })
        .await?;
    Ok(())
}

/// The period the overview's verdicts are of: the 90 days up to yesterday (`today` being the
/// region's date).
pub fn canonical_period(today: jiff::civil::Date) -> (jiff::civil::Date, jiff::civil::Date) {
    let to = today.yesterday().unwrap_or(today);
    let from = to.checked_sub(jiff::Span::new().days(89)).unwrap_or(to);
    (from, to)
}

/// Computes the report of `scope` for the canonical period with the default profile and
/// records each school's verdict — the only way what the overview shows changes (a deliberate
/// action in the UI, or `report status` on a schedule): a report of any other period or profile,
/// computed or exported by anyone, changes nothing there.
pub async fn update_status(
    store: &Store,
    profiles: &[crate::compliance::profile::Profile],
    scope: Scope,
    today: jiff::civil::Date,
) -> Result<Built, BuildError> {
    let (from, to) = canonical_period(today);
    let req = Request {
        scope,
        from,
        to,
        profile: crate::compliance::profile::DEFAULT_PROFILE.to_owned(),
        format: crate::compliance::export::Format3::Json,
        lang: Lang::Ru,
    };
    let built = build(store, profiles, &req, |_| {}).await?;
    store.put_compliance_status(&school_statuses(&built.report, &req, now_secs())).await?;
    Ok(built)
}

/// Each school's verdict in a report, for the overview: its worst line (short, then not seen,
/// then underused, else ok) and how many lines of each.
fn school_statuses(
    report: &crate::compliance::report::ComplianceReport,
    req: &Request,
    now: u32,
) -> Vec<crate::storage::overview::ComplianceStatusRow> {
    use crate::compliance::report::Status;
    let m = &report.methodology;
    let mut by_school: std::collections::BTreeMap<&str, [u32; 4]> = std::collections::BTreeMap::new();
    for line in &report.schools {
        let counts = by_school.entry(&line.school_id).or_default();
        let i = match line.status {
            Status::Short => 0,
            Status::NotSeen => 1,
            Status::Underused => 2,
            Status::Ok => 3,
        };
        counts[i] += 1;
    }
    by_school
        .into_iter()
        .map(|(school, [short, not_seen, underused, ok])| crate::storage::overview::ComplianceStatusRow {
            school_id: school.to_owned(),
            computed_at: now,
            profile: format!("{} {}", m.profile, m.profile_version),
            period_from: u16::try_from(days(req.from)).unwrap_or(0),
            period_to: u16::try_from(days(req.to)).unwrap_or(0),
            lines: short + not_seen + underused + ok,
            short,
            not_seen,
            underused,
            status: if short > 0 {
                "short"
            } else if not_seen > 0 {
                "not_seen"
            } else if underused > 0 {
                "underused"
            } else {
                "ok"
            }
            .to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_counts() {
        assert_eq!(Scope::parse("region:74"), Ok(Scope::Region("74".into())));
        assert_eq!(
            Scope::parse("municipality: Копейский городской округ"),
            Ok(Scope::Municipality {
                region: None, name: "Копейский городской округ".into()
            })
        );
        assert!(Scope::parse("74").unwrap_err().contains("expected region:CODE"));
        // The same municipality name in two regions: written with its region it is one of them;
        // without, it is refused, naming both.
        let places =
            [("74", "Октябрьский район"), ("02", "Октябрьский район"), ("74", "Копейский городской округ")];
        let qualified = Scope::parse("municipality:74/Октябрьский район").unwrap();
        assert_eq!(qualified.to_string(), "municipality:74/Октябрьский район");
        assert!(
            qualified.covers("x", "74", "Октябрьский район")
                && !qualified.covers("x", "02", "Октябрьский район")
        );
        let err = Scope::parse("municipality:Октябрьский район")
            .unwrap()
            .resolve(places.into_iter())
            .unwrap_err()
            .to_string();
        assert!(err.contains("regions 02, 74") && err.contains("municipality:02/Октябрьский район"), "{err}");
        let one = Scope::parse("municipality:Копейский городской округ")
            .unwrap()
            .resolve(places.into_iter())
            .unwrap();
        assert_eq!(one.to_string(), "municipality:74/Копейский городской округ");
        assert!(Scope::parse("town:1").unwrap_err().contains("unknown kind"));
        assert!(Scope::parse("school:").unwrap_err().contains("nothing after"));
        let words: Vec<String> =
            [1, 2, 5, 11, 12, 21, 22, 111, 1000].iter().map(|n| schools_count(*n, Lang::Ru)).collect();
        assert_eq!(
            words,
            [
                "1 школа",
                "2 школы",
                "5 школ",
                "11 школ",
                "12 школ",
                "21 школа",
                "22 школы",
                "111 школ",
                "1000 школ"
            ]
        );
        assert_eq!(schools_count(1, Lang::En), "1 school");
        let d = |s: &str| s.parse::<jiff::civil::Date>().unwrap();
        assert!(check_period(d("2026-11-02"), d("2026-11-01")).is_err());
        assert!(check_period(d("2025-01-01"), d("2026-01-02")).is_err());
        assert!(check_period(d("2025-01-02"), d("2026-01-02")).is_ok());
        assert_eq!(days(d("1970-01-02")), 1);
    }
}
