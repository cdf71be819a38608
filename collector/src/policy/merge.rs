//! A device's effective policy: the documents of the scopes it belongs to, broadest first,
//! merged key by key — a narrower scope's value replaces a broader one's, tables merge
//! recursively, and lists replace unless the narrower document names them in `append`, when
//! they are concatenated (an entry already there is not repeated).

use parta_agent::policy::{APPEND_KEY, PolicyError, merge_into, string_list};
use toml::Table;

/// Merges `layers` (broadest first) into the effective document, without `append`.
pub fn effective<'a>(layers: impl IntoIterator<Item = &'a Table>) -> Table {
    let mut out = Table::new();
    for layer in layers {
        let appends = string_list(layer, APPEND_KEY);
        merge_into(&mut out, layer, "", &appends);
    }
    out
}

/// Parses a policy document and checks it with the agent's own rules.
pub fn parse_checked(document: &str) -> Result<Table, PolicyError> {
    parta_agent::policy::check(document)?;
    toml::from_str(document).map_err(|e| PolicyError { key: String::new(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml::Value;

    fn t(s: &str) -> Table {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn narrowest_wins_key_by_key_and_tables_merge() {
        let all =
            t("interval = \"60s\"\n[espd]\nevery = \"15m\"\nmust_reach = [\"https://www.gosuslugi.ru/\"]\n");
        let school = t("[espd]\nmust_reach = [\"https://edu.gov.ru/\"]\n[snmp]\ninterval = \"5m\"\n");
        let device = t("interval = \"30s\"\n");
        let e = effective([&all, &school, &device]);
        assert_eq!(
            e,
            t("interval = \"30s\"\n[espd]\nevery = \"15m\"\nmust_reach = [\"https://edu.gov.ru/\"]\n\
               [snmp]\ninterval = \"5m\"\n")
        );
    }

    #[test]
    fn append_concatenates_without_repeating() {
        let region = t("[espd]\nmust_reach = [\"https://www.gosuslugi.ru/\", \"https://edu.gov.ru/\"]\n");
        let school = t(
            "append = [\"espd.must_reach\"]\n[espd]\nmust_reach = [\"https://edu.gov.ru/\", \"https://sferum.ru/\"]\n",
        );
        let e = effective([&region, &school]);
        assert_eq!(
            parta_agent::policy::lookup(&e, "espd.must_reach"),
            Some(&Value::Array(vec![
                "https://www.gosuslugi.ru/".into(),
                "https://edu.gov.ru/".into(),
                "https://sferum.ru/".into()
            ]))
        );
        assert!(!e.contains_key(APPEND_KEY), "append is a merge instruction, not a setting");
        // The same school without append replaces the region's list.
        let replace = t("[espd]\nmust_reach = [\"https://sferum.ru/\"]\n");
        let e = effective([&region, &replace]);
        assert_eq!(
            parta_agent::policy::lookup(&e, "espd.must_reach"),
            Some(&Value::Array(vec!["https://sferum.ru/".into()]))
        );
    }

    #[test]
    fn documents_are_checked_by_the_agents_rules() {
        parse_checked("[snmp]\ninterval = \"5m\"\n").unwrap();
        let e = parse_checked("state_dir = \"/tmp\"\n").unwrap_err();
        assert_eq!(e.key, "state_dir");
    }
}
