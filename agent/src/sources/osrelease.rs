//! Operating system identification from os-release, with the names people use for the Russian
//! distributions schools run (Astra Linux, ALT, RED OS).

use std::collections::HashMap;
use std::path::Path;

use parta_protocol::sample::OsInfo;

use crate::paths::HostPaths;

/// Reads `{rootfs}/etc/os-release` (or `{rootfs}/usr/lib/os-release`) and the distribution's own
/// version files. Never fails: unknown parts stay empty and a warning is logged.
pub fn read(paths: &HostPaths) -> OsInfo {
    let text = ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .find_map(|p| std::fs::read_to_string(paths.root(p)).ok());
    let Some(text) = text else {
        tracing::warn!(rootfs = %paths.rootfs.display(), "no os-release file; OS unknown");
        return OsInfo::default();
    };
    let fields = parse(&text);
    let read_extra = |p: &str| read_first_line(&paths.root(p));
    identify(&fields, read_extra)
}

/// Parses os-release text: `KEY=value` lines, values optionally quoted with `"` or `'` and
/// backslash escapes inside double quotes; comments and malformed lines are skipped.
pub fn parse(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        out.insert(key.to_owned(), unquote(raw.trim()));
    }
    out
}

fn unquote(raw: &str) -> String {
    let bytes = raw.as_bytes();
    match bytes.first() {
        Some(b'"') => {
            let mut s = String::new();
            let mut chars = raw[1..].chars();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => {
                        if let Some(n) = chars.next() {
                            s.push(n);
                        }
                    }
                    c => s.push(c),
                }
            }
            s
        }
        Some(b'\'') => raw[1..].split('\'').next().unwrap_or_default().to_owned(),
        _ => raw.to_owned(),
    }
}

/// os-release fields kept as written next to the names derived from them.
const KEPT_FIELDS: [&str; 9] = [
    "NAME",
    "VERSION",
    "VERSION_ID",
    "VARIANT",
    "VARIANT_ID",
    "EDITION",
    "BUILD_ID",
    "ALT_BRANCH_ID",
    "ID_LIKE",
];

/// Builds [`OsInfo`] from os-release fields. `extra` reads a distribution-specific file relative
/// to the root (first line, trimmed), e.g. `etc/astra_version`.
pub fn identify(f: &HashMap<String, String>, extra: impl Fn(&str) -> Option<String>) -> OsInfo {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let id = get("ID");
    let version_id = get("VERSION_ID");
    let mut info = OsInfo {
        id: id.clone(),
        name: get("NAME"),
        version: version_id.clone(),
        pretty_name: get("PRETTY_NAME"),
        edition: String::new(),
        release_fields: KEPT_FIELDS
            .iter()
            .filter_map(|k| f.get(*k).filter(|v| !v.is_empty()).map(|v| ((*k).to_owned(), v.clone())))
            .collect(),
    };
    match id.as_str() {
        "astra" => {
            // NAME is "Astra Linux" on 1.7+ but e.g. "Astra Linux (Orel)" on CE 2.12; the product
            // is always Astra Linux. The edition: the `CE`/`SE` prefix of /etc/astra_version
            // on older releases, `VARIANT_ID=se` in os-release on 1.7/1.8 (whose astra_version
            // holds only the update, "1.7.9"). The version: /etc/astra/build_version
            // ("1.7.5.16"), else the update in /etc/astra_version, else VERSION_ID without its
            // architecture ("1.7_x86-64" → "1.7").
            info.name = "Astra Linux".into();
            if let Some((number, arch)) = version_id.split_once('_')
                && !arch.is_empty()
            {
                info.version = number.to_owned();
            }
            let variant = get("VARIANT_ID");
            if !variant.is_empty() {
                info.edition = variant.to_uppercase();
            } else {
                info.edition = get("VARIANT");
            }
            if let Some(av) = extra("etc/astra_version") {
                info.release_fields.push(("/etc/astra_version".into(), av.clone()));
                let (edition, number) = split_astra_version(&av);
                if !edition.is_empty() {
                    info.edition = edition;
                }
                if !number.is_empty() {
                    info.version = number;
                }
            }
            if let Some(build) = extra("etc/astra/build_version") {
                info.release_fields.push(("/etc/astra/build_version".into(), build.clone()));
                info.version = build;
            }
        }
        "altlinux" => {
            // ALT products share ID=altlinux; NAME is the product ("ALT Education",
            // "ALT Workstation"), but plain "ALT" on some releases, where VARIANT names it,
            // and a branch name on others ("Sisyphus", "starter kit"), where PRETTY_NAME does
            // ("ALT Regular", "ALT Starterkit 10 (Hypericum)").
            let variant = get("VARIANT");
            if (info.name.is_empty() || info.name == "ALT") && !variant.is_empty() {
                info.name = variant.clone();
            } else if !info.name.starts_with("ALT") && info.pretty_name.starts_with("ALT") {
                info.name = product_of_pretty_name(&info.pretty_name, &version_id);
            }
            if info.name.is_empty() {
                info.name = "ALT".into();
            }
            info.edition = variant;
        }
        "redos" => {
            // NAME="RED OS", VERSION="MUROM (7.3.6)", VERSION_ID="7.3", EDITION="Standard".
            info.name = "RED OS".into();
            if let Some(precise) = parenthesised_version(&get("VERSION")) {
                info.version = precise;
            }
            info.edition = get("EDITION");
        }
        _ => {}
    }
    if info.name.is_empty() {
        info.name = if id.is_empty() { "Linux".into() } else { id.clone() };
    }
    if info.pretty_name.is_empty() {
        info.pretty_name = format!("{} {}", info.name, info.version).trim().to_owned();
    }
    info
}

/// The product in a PRETTY_NAME: without a trailing `(codename)` and version.
/// `"ALT Starterkit 10 (Hypericum)"` → `"ALT Starterkit"`; `"ALT Regular"` stays.
fn product_of_pretty_name(pretty: &str, version: &str) -> String {
    let mut p = pretty.trim();
    if p.ends_with(')')
        && let Some(open) = p.rfind('(')
    {
        p = p[..open].trim_end();
    }
    if !version.is_empty() {
        p = p.strip_suffix(version).unwrap_or(p).trim_end();
    }
    p.to_owned()
}

/// `"CE 2.12.46 (orel)"` → (`"CE"`, `"2.12.46"`); `"1.7.5"` → (`""`, `"1.7.5"`);
/// `"SE 1.7.5"` → (`"SE"`, `"1.7.5"`).
fn split_astra_version(text: &str) -> (String, String) {
    let mut edition = String::new();
    let mut number = String::new();
    for word in text.split_whitespace() {
        if word.starts_with(|c: char| c.is_ascii_digit()) {
            if number.is_empty() {
                number = word.to_owned();
            }
        } else if word.chars().all(|c| c.is_ascii_uppercase()) && edition.is_empty() {
            edition = word.to_owned();
        }
    }
    (edition, number)
}

/// `"MUROM (7.3.6)"` → `"7.3.6"`.
fn parenthesised_version(text: &str) -> Option<String> {
    let start = text.find('(')? + 1;
    let end = start + text[start..].find(')')?;
    let v = text[start..end].trim();
    v.starts_with(|c: char| c.is_ascii_digit()).then(|| v.to_owned())
}

fn read_first_line(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(text: &str, extra: &[(&str, &str)]) -> OsInfo {
        let extra: HashMap<String, String> =
            extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        identify(&parse(text), |p| extra.get(p).cloned())
    }

    #[test]
    fn astra_linux_1_7() {
        // As Astra 1.7 SE writes it: the edition in VARIANT_ID, the update in astra_version.
        let text = "PRETTY_NAME=\"Astra Linux\"\nNAME=\"Astra Linux\"\nID=astra\nID_LIKE=debian\n\
                    VERSION_ID=1.7_x86-64\nVERSION_CODENAME=1.7_x86-64\nVARIANT_ID=se\n";
        let info = os(text, &[("etc/astra_version", "1.7.5"), ("etc/astra/build_version", "1.7.5.16")]);
        assert_eq!(info.name, "Astra Linux");
        assert_eq!(info.id, "astra");
        assert_eq!(info.version, "1.7.5.16");
        assert_eq!(info.edition, "SE");
        assert_eq!(info.pretty_name, "Astra Linux");
        assert!(info.release_fields.contains(&("VARIANT_ID".into(), "se".into())));
        assert!(info.release_fields.contains(&("/etc/astra_version".into(), "1.7.5".into())));
        let update = os(text, &[("etc/astra_version", "1.7.9")]);
        assert_eq!((update.version.as_str(), update.edition.as_str()), ("1.7.9", "SE"));
        // Without the version files: VERSION_ID without the architecture, not "1.7_x86-64".
        let bare = os(text, &[]);
        assert_eq!((bare.version.as_str(), bare.edition.as_str()), ("1.7", "SE"));
        assert!(bare.release_fields.contains(&("VERSION_ID".into(), "1.7_x86-64".into())), "raw kept");
    }

    #[test]
    fn alt_branch_names_give_the_product() {
        let kit = os(
            "NAME=\"starter kit\"\nVERSION=\"10\"\nID=altlinux\nVERSION_ID=10\n\
             PRETTY_NAME=\"ALT Starterkit 10 (Hypericum)\"\nALT_BRANCH_ID=\"p10\"\n",
            &[],
        );
        assert_eq!((kit.name.as_str(), kit.version.as_str()), ("ALT Starterkit", "10"));
        assert!(kit.release_fields.contains(&("NAME".into(), "starter kit".into())));
        let sisyphus =
            os("NAME=\"Sisyphus\"\nID=altlinux\nVERSION_ID=20240122\nPRETTY_NAME=\"ALT Regular\"\n", &[]);
        assert_eq!(sisyphus.name, "ALT Regular");
    }

    #[test]
    fn astra_linux_common_edition() {
        let text = "PRETTY_NAME=\"Astra Linux (Orel 2.12.43)\"\nNAME=\"Astra Linux (Orel)\"\nID=astra\n\
                    VERSION_ID=2.12\n";
        let info = os(text, &[("etc/astra_version", "CE 2.12.46 (orel)")]);
        assert_eq!(info.name, "Astra Linux");
        assert_eq!(info.version, "2.12.46");
        assert_eq!(info.edition, "CE");
    }

    #[test]
    fn alt_education_and_plain_alt_with_variant() {
        let edu = os(
            "NAME=\"ALT Education\"\nVERSION=\"10.1 (Mendelevium)\"\nID=altlinux\nVERSION_ID=10.1\n\
             PRETTY_NAME=\"ALT Education 10.1 (Mendelevium)\"\n",
            &[],
        );
        assert_eq!((edu.name.as_str(), edu.version.as_str()), ("ALT Education", "10.1"));
        let server = os("NAME=\"ALT\"\nID=altlinux\nVERSION_ID=11.0\nVARIANT=\"ALT Server\"\n", &[]);
        assert_eq!(server.name, "ALT Server");
        assert_eq!(server.pretty_name, "ALT Server 11.0");
    }

    #[test]
    fn red_os() {
        let info = os(
            "NAME=\"RED OS\"\nVERSION=\"MUROM (7.3.6)\"\nID=\"redos\"\nID_LIKE=\"rhel centos fedora\"\n\
             VERSION_ID=\"7.3\"\nPRETTY_NAME=\"RED OS MUROM (7.3.6)\"\nEDITION=\"Standard\"\n",
            &[],
        );
        assert_eq!(info.name, "RED OS");
        assert_eq!(info.version, "7.3.6");
        assert_eq!(info.edition, "Standard");
        assert_eq!(info.pretty_name, "RED OS MUROM (7.3.6)");
    }

    #[test]
    fn quoting_comments_and_garbage() {
        let f = parse("# c\nA=\"x \\\"y\\\" z\"\nB='single'\nnot a line\n=v\nC=plain\nD=\"unterminated\n");
        assert_eq!(f["A"], "x \"y\" z");
        assert_eq!(f["B"], "single");
        assert_eq!(f["C"], "plain");
        assert_eq!(f["D"], "unterminated");
        assert_eq!(f.len(), 4);
    }

    #[test]
    fn empty_file_gives_a_usable_name() {
        let info = os("", &[]);
        assert_eq!(info.name, "Linux");
    }
}
