//! Norm profiles: what the equipment standard requires of a school, as versioned TOML data
//! files. The shipped profile (`collector/profiles/norms/`) cites a source for every number and
//! marks what is a regional parameter rather than a confirmed figure of the standard; a region
//! adds its own profiles in `profiles_dir`. Reports name the profile and its version.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use super::csvin::name_key;
use super::expr::{self, Expr};

/// The shipped profiles: (file name, text).
pub const SHIPPED: &[(&str, &str)] = &[("cos-2021.toml", include_str!("../../profiles/norms/cos-2021.toml"))];

/// The profile a report uses when none is named.
pub const DEFAULT_PROFILE: &str = "cos-2021";

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    id: String,
    version: String,
    name: String,
    name_en: Option<String>,
    source: String,
    seen_days: Option<u32>,
    espd: EspdFile,
    category: Vec<CategoryFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EspdFile {
    urban_mbps: u32,
    rural_mbps: u32,
    source: String,
    confirmed: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryFile {
    id: String,
    name: String,
    name_en: String,
    #[serde(default)]
    classes: Vec<String>,
    #[serde(default)]
    aliases: Vec<String>,
    required: String,
    source: String,
    confirmed: bool,
    usage: UsageFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageFile {
    in_use_hours_per_week: Option<f64>,
    pages_per_week: Option<f64>,
    #[serde(default)]
    seen: bool,
    source: String,
}

/// When a device of a category counts as used.
#[derive(Debug, Clone, PartialEq)]
pub enum UsageRule {
    /// In use (an interactive session with input) at least this many hours a week on average.
    InUseHoursPerWeek(f64),
    /// At least this many pages a week on average (printers and MFUs).
    PagesPerWeek(f64),
    /// Reporting is using (network equipment).
    Seen,
}

/// A category of the standard.
#[derive(Debug, Clone)]
pub struct Category {
    /// Id (`teacher_laptop`).
    pub id: String,
    /// Russian name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Equipment classes of reporting devices counted here.
    pub classes: Vec<String>,
    /// Names the register may use for it (compared like headings).
    pub aliases: Vec<String>,
    /// Required quantity, as written.
    pub required_text: String,
    /// Required quantity, parsed.
    pub required: Expr,
    /// Where the quantity comes from.
    pub source: String,
    /// Whether the quantity is confirmed in the standard (otherwise a regional parameter).
    pub confirmed: bool,
    /// When a device counts as used.
    pub usage: UsageRule,
    /// Where the usage expectation comes from.
    pub usage_source: String,
    /// Its id, names and aliases in [`name_key`] form.
    keys: BTreeSet<String>,
}

/// A loaded, checked profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Id.
    pub id: String,
    /// Version.
    pub version: String,
    /// Russian name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Sources of the profile.
    pub source: String,
    /// A device counts as seen when it reported in this many days before the period's end.
    pub seen_days: u32,
    /// Required ЕСПД speed, Mbit/s, urban and rural.
    pub espd_mbps: (u32, u32),
    /// Where the speeds come from, and whether they are confirmed.
    pub espd_source: (String, bool),
    /// Categories, in the file's order.
    pub categories: Vec<Category>,
}

/// Why a profile cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("norm profile {file}: {message}")]
pub struct ProfileError {
    /// File name.
    pub file: String,
    /// Reason, naming the key.
    pub message: String,
}

impl Profile {
    /// Parses and checks a profile file's text.
    pub fn parse(file: &str, text: &str) -> Result<Self, ProfileError> {
        let err = |message: String| ProfileError { file: file.to_owned(), message };
        let f: ProfileFile = toml::from_str(text).map_err(|e| err(e.to_string().trim_end().to_owned()))?;
        let id_ok =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !id_ok(&f.id) {
            return Err(err(format!("id {:?}: use letters, digits, `_` and `-`", f.id)));
        }
        if f.category.is_empty() {
            return Err(err("no [[category]]".into()));
        }
        let known_classes: BTreeSet<&str> =
            parta_protocol::inventory::EquipmentClass::ALL.iter().map(|c| c.as_str()).collect();
        let mut ids = BTreeSet::new();
        let mut aliases = BTreeSet::new();
        let mut categories = Vec::with_capacity(f.category.len());
        for c in f.category {
            let at = |m: String| err(format!("category {}: {m}", c.id));
            if !id_ok(&c.id) {
                return Err(at("id: use letters, digits, `_` and `-`".into()));
            }
            if !ids.insert(c.id.clone()) {
                return Err(at("id given twice".into()));
            }
            for class in &c.classes {
                if !known_classes.contains(class.as_str()) {
                    return Err(at(format!(
                        "classes: unknown equipment class {class:?} (known: {})",
                        known_classes.iter().copied().collect::<Vec<_>>().join(", ")
                    )));
                }
            }
            let own: BTreeSet<String> =
                c.aliases.iter().chain([&c.id, &c.name, &c.name_en]).map(|a| name_key(a)).collect();
            if let Some(a) = own.iter().find(|a| aliases.contains(*a)) {
                return Err(at(format!("aliases: «{a}» names another category too")));
            }
            aliases.extend(own.iter().cloned());
            let required =
                expr::parse(&c.required).map_err(|e| at(format!("required = {:?}: {e}", c.required)))?;
            let usage = match (c.usage.in_use_hours_per_week, c.usage.pages_per_week, c.usage.seen) {
                (Some(h), None, false) if h.is_finite() && h >= 0.0 => UsageRule::InUseHoursPerWeek(h),
                (None, Some(p), false) if p.is_finite() && p >= 0.0 => UsageRule::PagesPerWeek(p),
                (None, None, true) => UsageRule::Seen,
                _ => {
                    return Err(at(
                        "usage: give exactly one of in_use_hours_per_week, pages_per_week (≥ 0) or seen = true".into(),
                    ));
                }
            };
            categories.push(Category {
                id: c.id,
                name: c.name,
                name_en: c.name_en,
                classes: c.classes,
                aliases: c.aliases,
                required_text: c.required,
                required,
                source: c.source,
                confirmed: c.confirmed,
                usage,
                usage_source: c.usage.source,
                keys: own,
            });
        }
        Ok(Self {
            id: f.id,
            version: f.version,
            name_en: f.name_en.unwrap_or_else(|| f.name.clone()),
            name: f.name,
            source: f.source,
            seen_days: f.seen_days.unwrap_or(30).clamp(1, 366),
            espd_mbps: (f.espd.urban_mbps, f.espd.rural_mbps),
            espd_source: (f.espd.source, f.espd.confirmed),
            categories,
        })
    }

    /// The category a register names (by id, name or alias).
    pub fn category_by_name(&self, name: &str) -> Option<&Category> {
        let key = name_key(name);
        self.categories.iter().find(|c| c.keys.contains(&key))
    }

    /// The category of a reporting device's equipment class.
    pub fn category_of_class(&self, class: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.classes.iter().any(|k| k == class))
    }
}

/// Every profile: the shipped ones, then the `*.toml` files of `dir` (a region's own; one with
/// the id of a shipped profile replaces it).
pub fn load_all(dir: Option<&Path>) -> Result<Vec<Profile>, ProfileError> {
    let mut out: Vec<Profile> =
        SHIPPED.iter().map(|(file, text)| Profile::parse(file, text)).collect::<Result<_, _>>()?;
    if let Some(dir) = dir {
        let files = parta_common::fsutil::toml_files(dir).map_err(|e| ProfileError {
            file: dir.display().to_string(),
            message: format!("cannot read the directory: {e}"),
        })?;
        for path in files {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ProfileError { file: name.clone(), message: format!("cannot read: {e}") })?;
            let p = Profile::parse(&name, &text)?;
            out.retain(|q| q.id != p.id);
            out.push(p);
        }
    }
    Ok(out)
}

/// The profile with `id` among `all`.
pub fn find<'a>(all: &'a [Profile], id: &str) -> Result<&'a Profile, String> {
    all.iter().find(|p| p.id == id).ok_or_else(|| {
        format!(
            "no norm profile {id:?} (known: {})",
            all.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_profile_loads_and_covers_the_standards_categories() {
        let all = load_all(None).unwrap();
        let p = find(&all, DEFAULT_PROFILE).unwrap();
        assert_eq!(p.espd_mbps, (100, 50));
        assert!(p.espd_source.1, "the ЕСПД speeds are confirmed (Минцифры 2021)");
        for id in [
            "teacher_laptop",
            "pupil_laptop",
            "admin_laptop",
            "interactive_complex",
            "mfu",
            "network_equipment",
        ] {
            let c = p.categories.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("{id}"));
            assert!(!c.source.is_empty() && !c.usage_source.is_empty(), "{id} cites its sources");
        }
        assert_eq!(p.category_by_name("Ноутбук  ПЕДАГОГА").unwrap().id, "teacher_laptop");
        assert_eq!(p.category_by_name("МФУ").unwrap().id, "mfu");
        assert_eq!(p.category_of_class("pupil_laptop").unwrap().id, "pupil_laptop");
        assert!(p.category_by_name("кофеварка").is_none());
    }

    #[test]
    fn mistakes_name_the_category_and_key() {
        let base = |cat: &str| {
            format!(
                "id = \"r\"\nversion = \"1\"\nname = \"n\"\nsource = \"s\"\n[espd]\nurban_mbps = 100\nrural_mbps = 50\nsource = \"s\"\nconfirmed = true\n[[category]]\n{cat}"
            )
        };
        let cat = |required: &str, usage: &str, classes: &str| {
            format!(
                "id = \"x\"\nname = \"Икс\"\nname_en = \"X\"\nclasses = [{classes}]\nrequired = \"{required}\"\nsource = \"s\"\nconfirmed = false\nusage = {{ {usage}, source = \"s\" }}\n"
            )
        };
        let e = |text: String| Profile::parse("r.toml", &text).unwrap_err().to_string();
        assert_eq!(
            e(base(&cat("pupils * k", "seen = true", ""))),
            "norm profile r.toml: category x: required = \"pupils * k\": at character 10: unknown name «k» (known: pupils, teachers, admin_staff, classrooms, buildings)"
        );
        assert!(
            e(base(&cat("1", "seen = true, pages_per_week = 3.0", ""))).contains("usage: give exactly one")
        );
        assert!(
            e(base(&cat("1", "seen = true", "\"toaster\"")))
                .contains("classes: unknown equipment class \"toaster\"")
        );
        assert!(e(base("id = \"x\"\n")).contains("missing field"));
        assert!(
            Profile::parse("r.toml", &base(&cat("teachers", "in_use_hours_per_week = 2.5", "\"laptop\"")))
                .is_ok()
        );
    }
}
