//! What a display is, from all the evidence its EDID gives: its size, its nominal class, and
//! whether it is an interactive panel or a monitor — with the reasons, which `parta-agent
//! inventory` prints.
//!
//! ## Size
//! An EDID states a size several times: the base block in whole centimetres, and each detailed
//! timing (base block and CTA-861 extensions) in millimetres; DisplayID blocks in tenths of a
//! millimetre. TV and panel firmware (MStar/Novatek boards in particular) fills the timings
//! with its board's default sizes — 708×398, 800×450, 1280×720, 1394×784, 1428×804,
//! 1872×1053 mm — while the centimetres are right. So:
//! 1. a millimetre size that agrees with the centimetres (within 1 cm each way) is taken: two
//!    sources agree, and millimetres are more precise;
//! 2. otherwise the centimetres are taken, and the disagreeing sizes are named;
//! 3. without centimetres, the millimetre sizes that are not known board defaults (the most
//!    frequent first); if only board defaults remain, the size cannot tell ([`SizeSource::BoardDefault`]).
//!
//! A size the decision lands on that is itself a known board default is marked
//! [`SizeSource::BoardDefault`] too: board firmware can put its default in every field.
//!
//! ## Class
//! Makers name sizes by class: "55″" panels measure 54.5–54.9″, "65″" ones 64.5″, "75″" ones
//! 74.5″. A display is an interactive panel from [`PANEL_MIN_DIAGONAL`] (the 55″ class less
//! a 1.0″ tolerance; no class is sold between 50″ and 55″, so nothing smaller moves), a
//! monitor below. A display whose maker or model is a classroom-panel maker's
//! ([`PanelMakers`], data a region can extend) is a panel whatever its stated size, and its
//! class is marked [`ClassSource::Inferred`].

use std::path::Path;

use parta_protocol::inventory::{ClassSource, EquipmentClass, SizeSource};
use serde::Deserialize;

use super::edid::{self, Edid, SizeOrigin, StatedSize};

/// Smallest diagonal (tenths of an inch) of an interactive panel: the 55″ class less 1.0″.
pub const PANEL_MIN_DIAGONAL: u16 = 540;

/// Image sizes (mm) TV and panel board firmware states whatever the screen.
pub const BOARD_DEFAULT_SIZES: &[(u32, u32)] =
    &[(708, 398), (800, 450), (1280, 720), (1394, 784), (1428, 804), (1600, 900), (1872, 1053)];

/// Sizes agree when each side differs by at most this (the base block rounds to whole cm).
const AGREE_MM: u32 = 10;

/// Nominal classes makers sell, inches.
const NOMINAL_CLASSES: &[f64] = &[
    19.0, 20.0, 21.5, 22.0, 23.0, 23.8, 24.0, 27.0, 28.0, 31.5, 32.0, 34.0, 40.0, 42.0, 43.0, 48.0, 49.0,
    50.0, 55.0, 58.0, 60.0, 65.0, 70.0, 75.0, 82.0, 85.0, 86.0, 98.0, 100.0, 105.0, 110.0,
];

/// The size decided for a display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeDecision {
    /// Width, mm (0 when unknown).
    pub width_mm: u32,
    /// Height, mm.
    pub height_mm: u32,
    /// Which stated size it is.
    pub source: SizeSource,
    /// Why, for people.
    pub reasons: Vec<String>,
}

impl SizeDecision {
    /// Diagonal in tenths of an inch.
    pub fn diagonal_decimal_in(&self) -> u16 {
        edid::diagonal_decimal_in(self.width_mm, self.height_mm)
    }
}

fn agrees(a: (u32, u32), b: (u32, u32)) -> bool {
    a.0.abs_diff(b.0) <= AGREE_MM && a.1.abs_diff(b.1) <= AGREE_MM
}

/// Whether a size is one board firmware states whatever the screen: within 2 mm of a default,
/// or the default rounded to whole centimetres (as the base block would say it).
pub fn is_board_default(size: (u32, u32)) -> bool {
    let cm = |mm: u32| (mm + 5) / 10 * 10;
    BOARD_DEFAULT_SIZES.iter().any(|d| {
        (d.0.abs_diff(size.0) <= 2 && d.1.abs_diff(size.1) <= 2) || (cm(d.0) == size.0 && cm(d.1) == size.1)
    })
}

/// A size no display has: narrower than 10 cm or lower than 6 cm (some EDIDs put the aspect
/// ratio, 16×9, in the mm fields), or an aspect ratio beyond 4:1.
fn implausible(size: (u32, u32)) -> bool {
    let (w, h) = size;
    w < 100 || h < 60 || w > 4 * h || h > 4 * w
}

fn origin_name(o: SizeOrigin) -> &'static str {
    match o {
        SizeOrigin::BaseTiming => "a detailed timing",
        SizeOrigin::CtaTiming => "a CTA-861 timing",
        SizeOrigin::DisplayId => "DisplayID",
    }
}

fn inches(size: (u32, u32)) -> String {
    format!("{:.1}″", f64::from(edid::diagonal_decimal_in(size.0, size.1)) / 10.0)
}

fn describe(size: (u32, u32)) -> String {
    let default = if is_board_default(size) { ", a known board default" } else { "" };
    format!("{}×{} mm ({}{default})", size.0, size.1, inches(size))
}

/// Decides a display's size from everything its EDID states.
pub fn decide_size(e: &Edid) -> SizeDecision {
    let stated: Vec<&StatedSize> =
        e.stated.iter().filter(|s| !implausible((s.width_mm, s.height_mm))).collect();
    let source_of = |s: &StatedSize| match s.origin {
        SizeOrigin::DisplayId => SizeSource::DisplayId,
        _ => SizeSource::DetailedTiming,
    };
    let mut reasons = Vec::new();
    let ignored: Vec<String> = e
        .stated
        .iter()
        .filter(|s| implausible((s.width_mm, s.height_mm)))
        .map(|s| format!("{}×{} mm in {}", s.width_mm, s.height_mm, origin_name(s.origin)))
        .collect();
    if !ignored.is_empty() {
        reasons.push(format!("ignored as no display's size: {}", ignored.join(", ")));
    }
    let (size, mut source) = if let Some(base) = e.base_mm.filter(|b| !implausible(*b)) {
        let base_text = format!("the base block says {}×{} cm ({})", base.0 / 10, base.1 / 10, inches(base));
        if let Some(s) = stated.iter().find(|s| agrees((s.width_mm, s.height_mm), base)) {
            reasons.push(format!(
                "{base_text}; {} says {}×{} mm, which agrees: taken",
                origin_name(s.origin),
                s.width_mm,
                s.height_mm
            ));
            ((s.width_mm, s.height_mm), source_of(s))
        } else {
            let mut others: Vec<String> = Vec::new();
            for d in stated.iter().map(|s| describe((s.width_mm, s.height_mm))) {
                if !others.contains(&d) {
                    others.push(d);
                }
            }
            if others.is_empty() {
                reasons.push(format!("{base_text}: taken (no timing states a size)"));
            } else {
                reasons.push(format!("{base_text}: taken; the timings disagree: {}", others.join(", ")));
            }
            (base, SizeSource::BaseBlock)
        }
    } else {
        // No centimetres: the most frequent millimetre size that is not a board default.
        let mut counted: Vec<((u32, u32), usize, SizeSource)> = Vec::new();
        for s in &stated {
            let size = (s.width_mm, s.height_mm);
            match counted.iter_mut().find(|c| c.0 == size) {
                Some(c) => c.1 += 1,
                None => counted.push((size, 1, source_of(s))),
            }
        }
        let best = counted.iter().filter(|c| !is_board_default(c.0)).max_by_key(|c| c.1).copied();
        match (best, counted.first()) {
            (Some((size, _, src)), _) => {
                reasons.push(format!("no base-block size; {} taken from the timings", describe(size)));
                (size, src)
            }
            (None, Some((size, _, _))) => {
                reasons.push(format!(
                    "no base-block size; the timings state only board defaults: {}",
                    describe(*size)
                ));
                (*size, SizeSource::BoardDefault)
            }
            (None, None) => {
                reasons.push("the EDID states no size".into());
                ((0, 0), SizeSource::Unknown)
            }
        }
    };
    if source != SizeSource::Unknown && is_board_default(size) {
        reasons.push(format!(
            "{} is a board default: the size cannot tell what this display is",
            describe(size)
        ));
        source = SizeSource::BoardDefault;
    }
    SizeDecision { width_mm: size.0, height_mm: size.1, source, reasons }
}

/// The nominal class (inches) a measured diagonal belongs to: the class it is at most 1.0″
/// short of or 0.5″ over.
pub fn nominal_class(diagonal_decimal_in: u16) -> Option<f64> {
    let d = f64::from(diagonal_decimal_in) / 10.0;
    NOMINAL_CLASSES
        .iter()
        .copied()
        .filter(|n| d >= n - 1.0 && d <= n + 0.5)
        .min_by(|a, b| (d - a).abs().total_cmp(&(d - b).abs()))
}

/// One maker's (or model line's) entry in the panel makers' list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanelMaker {
    /// PNP id, or `*` for any maker.
    pub pnp: String,
    /// Model-name prefixes (case-insensitive); empty: every model.
    #[serde(default)]
    pub names: Vec<String>,
    /// Who it is, for people.
    #[serde(default)]
    pub maker: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PanelFile {
    #[serde(default)]
    panel: Vec<PanelMaker>,
}

/// The built-in list.
const BUILT_IN: &str = include_str!("../../profiles/displays/panels.toml");
/// Default directory of a region's own lists.
pub const DEFAULT_DISPLAY_PROFILES_DIR: &str = "/etc/parta/display-profiles";

/// A bad list file.
#[derive(Debug, thiserror::Error)]
#[error("display profile {file}: {reason}")]
pub struct PanelListError {
    /// The file.
    pub file: String,
    /// Why.
    pub reason: String,
}

/// Makers and model names of classroom interactive panels.
#[derive(Debug, Clone, Default)]
pub struct PanelMakers {
    list: Vec<PanelMaker>,
}

impl PanelMakers {
    fn parse(file: &str, text: &str) -> Result<Vec<PanelMaker>, PanelListError> {
        let f: PanelFile =
            toml::from_str(text).map_err(|e| PanelListError { file: file.into(), reason: e.to_string() })?;
        for (i, p) in f.panel.iter().enumerate() {
            let ok = p.pnp == "*" || (p.pnp.len() == 3 && p.pnp.bytes().all(|b| b.is_ascii_uppercase()));
            if !ok {
                return Err(PanelListError {
                    file: file.into(),
                    reason: format!("panel[{i}].pnp {:?}: expected three capital letters or \"*\"", p.pnp),
                });
            }
            if p.pnp == "*" && p.names.is_empty() {
                return Err(PanelListError {
                    file: file.into(),
                    reason: format!("panel[{i}]: pnp = \"*\" needs names (every display would be a panel)"),
                });
            }
            if let Some(n) = p.names.iter().find(|n| n.trim().is_empty()) {
                return Err(PanelListError {
                    file: file.into(),
                    reason: format!("panel[{i}].names: {n:?} is empty"),
                });
            }
        }
        Ok(f.panel)
    }

    /// The built-in list.
    pub fn built_in() -> Self {
        // Covered by a unit test; a broken built-in list must never stop the inventory.
        let list = Self::parse("built-in panels.toml", BUILT_IN).unwrap_or_else(|e| {
            tracing::error!(error = %e, "built-in display profile is broken");
            Vec::new()
        });
        Self { list }
    }

    /// The built-in list plus every `*.toml` in `dir` (a missing directory is fine); an entry
    /// with the same `pnp` and `names` as an earlier one replaces it.
    pub fn load(dir: Option<&Path>) -> Result<Self, PanelListError> {
        let mut makers = Self::built_in();
        let Some(dir) = dir else { return Ok(makers) };
        let files = parta_common::fsutil::read_toml_dir(dir)
            .map_err(|(file, reason)| PanelListError { file, reason })?;
        for (name, text) in files {
            for p in Self::parse(&name, &text)? {
                makers.list.retain(|q| !(q.pnp == p.pnp && q.names == p.names));
                makers.list.push(p);
            }
        }
        Ok(makers)
    }

    /// The entry a display matches, if any.
    pub fn find(&self, pnp: &str, name: Option<&str>) -> Option<&PanelMaker> {
        let name = name.unwrap_or_default().to_lowercase();
        self.list.iter().find(|p| {
            (p.pnp == "*" || p.pnp == pnp)
                && (p.names.is_empty() || p.names.iter().any(|n| name.starts_with(&n.to_lowercase())))
        })
    }
}

/// The class decided for a display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassDecision {
    /// Interactive panel or monitor.
    pub class: EquipmentClass,
    /// By size (`Detected`) or by maker and model (`Inferred`).
    pub source: ClassSource,
    /// Why, for people.
    pub reason: String,
}

/// Decides a display's class from its size and its maker and model.
pub fn decide_class(
    size: &SizeDecision,
    pnp: &str,
    name: Option<&str>,
    makers: &PanelMakers,
) -> ClassDecision {
    let diagonal = size.diagonal_decimal_in();
    let inches = f64::from(diagonal) / 10.0;
    let class_text = nominal_class(diagonal).map_or_else(String::new, |n| format!(", the {n}″ class"));
    let trusted = !matches!(size.source, SizeSource::Unknown | SizeSource::BoardDefault);
    if trusted && diagonal >= PANEL_MIN_DIAGONAL {
        return ClassDecision {
            class: EquipmentClass::InteractiveComplex,
            source: ClassSource::Detected,
            reason: format!("interactive panel: {inches:.1}″{class_text}, at least the 55″ class (54.0″)"),
        };
    }
    if let Some(m) = makers.find(pnp, name) {
        let who = if m.maker.is_empty() { m.pnp.clone() } else { m.maker.clone() };
        let why = if trusted {
            format!("{inches:.1}″ would be a monitor")
        } else {
            "its size cannot tell".into()
        };
        return ClassDecision {
            class: EquipmentClass::InteractiveComplex,
            source: ClassSource::Inferred,
            reason: format!(
                "interactive panel, inferred: {pnp} {} is listed as {who} ({why})",
                name.unwrap_or("")
            ),
        };
    }
    let reason = if diagonal == 0 {
        "monitor: no size and no panel maker's model".to_owned()
    } else if !trusted {
        format!(
            "monitor: {inches:.1}″ is a board default, so the size cannot tell, and the maker is not listed"
        )
    } else {
        format!("monitor: {inches:.1}″{class_text}, below the 55″ class (54.0″)")
    };
    ClassDecision { class: EquipmentClass::Monitor, source: ClassSource::Detected, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::edid::{Spec, encode, parse};

    fn edid(cm: Option<(u8, u8)>, mm: (u16, u16), cta: &[(u16, u16)]) -> Edid {
        parse(&encode(&Spec {
            manufacturer: "ABC",
            width_mm: mm.0,
            height_mm: mm.1,
            base_cm: cm,
            cta_sizes_mm: cta,
            ..Spec::default()
        }))
        .unwrap()
    }

    #[test]
    fn built_in_list_parses() {
        assert!(PanelMakers::parse("panels.toml", BUILT_IN).unwrap().len() > 10);
    }

    #[test]
    fn timing_agreeing_with_the_base_block_is_taken() {
        let d = decide_size(&edid(Some((166, 93)), (1660, 934), &[]));
        assert_eq!((d.width_mm, d.height_mm, d.source), (1660, 934, SizeSource::DetailedTiming));
    }

    #[test]
    fn board_default_timings_lose_to_the_base_block() {
        // A 75″ panel whose timings say 708×398 mm (32″).
        let d = decide_size(&edid(Some((166, 93)), (708, 398), &[(708, 398), (575, 323)]));
        assert_eq!((d.width_mm, d.height_mm, d.source), (1660, 930, SizeSource::BaseBlock));
        assert!(d.reasons[0].contains("708×398 mm (32.0″, a known board default)"), "{:?}", d.reasons);
        // A 27″ monitor whose timings say 1394×784 mm (63″).
        let d = decide_size(&edid(Some((60, 34)), (1394, 784), &[]));
        assert_eq!((d.diagonal_decimal_in(), d.source), (272, SizeSource::BaseBlock));
    }

    #[test]
    fn without_the_base_block_the_timings_that_are_not_board_defaults() {
        let d = decide_size(&edid(Some((0, 0)), (800, 450), &[(1209, 680), (1209, 680)]));
        assert_eq!((d.width_mm, d.height_mm, d.source), (1209, 680, SizeSource::DetailedTiming));
        let d = decide_size(&edid(Some((0, 0)), (800, 450), &[(800, 450)]));
        assert_eq!((d.width_mm, d.source), (800, SizeSource::BoardDefault));
        let d = decide_size(&edid(Some((0, 0)), (0, 0), &[]));
        assert_eq!((d.width_mm, d.source), (0, SizeSource::Unknown));
    }

    #[test]
    fn board_defaults_everywhere_cannot_tell() {
        // cm 71×40 agrees with the 708×398 mm default: consistent, and still a board default.
        let d = decide_size(&edid(Some((71, 40)), (708, 398), &[]));
        assert_eq!((d.width_mm, d.source), (708, SizeSource::BoardDefault));
    }

    #[test]
    fn aspect_ratios_in_size_fields_are_ignored() {
        let d = decide_size(&edid(Some((48, 27)), (480, 270), &[(16, 9), (1039, 584)]));
        assert_eq!((d.width_mm, d.source), (480, SizeSource::DetailedTiming));
        assert!(d.reasons.iter().any(|r| r.contains("16×9 mm")), "{:?}", d.reasons);
    }

    #[test]
    fn nominal_classes_and_the_55_inch_boundary() {
        assert_eq!(nominal_class(546), Some(55.0));
        assert_eq!(nominal_class(549), Some(55.0));
        assert_eq!(nominal_class(745), Some(75.0));
        assert_eq!(nominal_class(238), Some(23.8));
        assert_eq!(nominal_class(785), None);
        let makers = PanelMakers::built_in();
        let size = |w, h| SizeDecision {
            width_mm: w,
            height_mm: h,
            source: SizeSource::DetailedTiming,
            reasons: vec![],
        };
        // 54.6″ (NEC V552) is a 55″ panel; 50″ (49.5″) is not.
        let c = decide_class(&size(1209, 680), "NEC", Some("V552"), &makers);
        assert_eq!((c.class, c.source), (EquipmentClass::InteractiveComplex, ClassSource::Detected));
        assert!(c.reason.contains("55″ class"), "{}", c.reason);
        let c = decide_class(&size(1096, 617), "ABC", None, &makers);
        assert_eq!(c.class, EquipmentClass::Monitor, "{}", c.reason);
    }

    #[test]
    fn makers_and_model_names_infer_panels() {
        let makers = PanelMakers::built_in();
        let board =
            SizeDecision { width_mm: 708, height_mm: 398, source: SizeSource::BoardDefault, reasons: vec![] };
        let c = decide_class(&board, "HHT", Some("ActivPanel V6"), &makers);
        assert_eq!((c.class, c.source), (EquipmentClass::InteractiveComplex, ClassSource::Inferred));
        let c = decide_class(&board, "VSC", Some("IFP7550"), &makers);
        assert_eq!(c.source, ClassSource::Inferred);
        // ViewSonic's monitors are monitors; an unknown maker's board default stays a monitor.
        let c = decide_class(&board, "VSC", Some("VX2458"), &makers);
        assert_eq!((c.class, c.source), (EquipmentClass::Monitor, ClassSource::Detected));
        let c = decide_class(&board, "ABC", Some("TV"), &makers);
        assert_eq!(c.class, EquipmentClass::Monitor);
        let c = decide_class(&board, "XYZ", Some("activpanel 9"), &makers);
        assert_eq!(c.source, ClassSource::Inferred, "any maker, case-insensitive model name");
    }

    #[test]
    fn a_region_extends_and_bad_lists_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("region.toml"), "[[panel]]\npnp = \"LMN\"\nmaker = \"Lumien\"\n")
            .unwrap();
        let m = PanelMakers::load(Some(dir.path())).unwrap();
        assert_eq!(m.find("LMN", Some("LMP7502")).map(|p| p.maker.as_str()), Some("Lumien"));
        assert!(m.find("HHT", None).is_some(), "built-ins stay");
        std::fs::write(dir.path().join("bad.toml"), "[[panel]]\npnp = \"lumien\"\n").unwrap();
        let e = PanelMakers::load(Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains("panel[0].pnp"), "{e}");
        std::fs::write(dir.path().join("bad.toml"), "[[panel]]\npnp = \"*\"\n").unwrap();
        let e = PanelMakers::load(Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("needs names"), "{e}");
        assert!(PanelMakers::load(Some(&dir.path().join("none"))).is_ok());
    }
}
