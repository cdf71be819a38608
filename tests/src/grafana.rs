//! Grafana dashboards as data: every SQL query in `dashboards/`, with the ClickHouse plugin's
//! macros expanded the way the plugin expands them, ready to run on a server.

use std::path::Path;

/// Time range and variables for expansion.
#[derive(Debug, Clone)]
pub struct Expansion {
    /// Range start, Unix seconds.
    pub from: i64,
    /// Range end, Unix seconds.
    pub to: i64,
    /// `$__interval_s`.
    pub interval_s: u32,
    /// Template variables: name → SQL literal list (e.g. `'74-0012','74-0013'`).
    pub vars: Vec<(String, String)>,
}

/// Every SQL query in a dashboard JSON (panel targets and templating variables), with a label.
pub fn queries(path: &Path) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    collect(&v, &file, &mut out);
    out
}

fn collect(v: &serde_json::Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(map) => {
            let title = map.get("title").or_else(|| map.get("name")).and_then(|t| t.as_str()).unwrap_or("");
            let here = if title.is_empty() { at.to_owned() } else { format!("{at} / {title}") };
            if let Some(sql) = map.get("rawSql").and_then(|s| s.as_str()) {
                out.push((here.clone(), sql.to_owned()));
            }
            // Templating variables keep their SQL in `query`.
            if map.get("type").and_then(|t| t.as_str()) == Some("query")
                && let Some(sql) = map.get("query").and_then(|s| s.as_str())
            {
                out.push((format!("{here} (variable)"), sql.to_owned()));
            }
            for (k, child) in map {
                collect(child, if k == "panels" || k == "targets" || k == "list" { &here } else { at }, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect(i, at, out)),
        _ => {}
    }
}

/// Expands `$__timeFilter(col)`, `$__fromTime`, `$__toTime`, `$__interval_s` and `${var}`/`$var`.
pub fn expand(sql: &str, e: &Expansion) -> String {
    let mut s = sql.to_owned();
    while let Some(i) = s.find("$__timeFilter(") {
        let start = i + "$__timeFilter(".len();
        let end = start + s[start..].find(')').expect("closing parenthesis of $__timeFilter");
        let col = s[start..end].trim().to_owned();
        let replacement = format!("{col} >= toDateTime({}) AND {col} <= toDateTime({})", e.from, e.to);
        s.replace_range(i..=end, &replacement);
    }
    s = s
        .replace("$__fromTime", &format!("toDateTime({})", e.from))
        .replace("$__toTime", &format!("toDateTime({})", e.to))
        .replace("$__interval_s", &e.interval_s.to_string());
    for (name, value) in &e.vars {
        s = s.replace(&format!("${{{name}}}"), value).replace(&format!("${name}"), value);
    }
    assert!(!s.contains('$'), "unexpanded macro or variable left in:\n{s}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macros_expand() {
        let e =
            Expansion { from: 10, to: 20, interval_s: 60, vars: vec![("school".into(), "'a','b'".into())] };
        assert_eq!(
            expand(
                "SELECT 1 WHERE $__timeFilter(ts) AND x IN (${school}) GROUP BY intDiv(t, $__interval_s)",
                &e
            ),
            "SELECT 1 WHERE ts >= toDateTime(10) AND ts <= toDateTime(20) AND x IN ('a','b') GROUP BY intDiv(t, 60)"
        );
    }
}
