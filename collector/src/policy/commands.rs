//! `parta-collector policy …`: set, show, history, rollback and remove a scope's policy, and
//! the effective policy of a device or school.

use std::io::Write as _;

use anyhow::{Context as _, bail};
use parta_protocol::DeviceId;
use toml::Table;

use super::PolicyScope;
use super::merge::{effective, parse_checked};
use super::secrets::{PolicyKey, redact};
use crate::app::migrated_store;
use crate::cli::{PolicyAction, PolicyFormat};
use crate::clock::{now_ms, rfc3339};
use crate::config::CollectorConfig;
use crate::storage::Store;
use crate::storage::policies::PolicyRow;

/// `policy …`.
pub async fn policy(config: &CollectorConfig, action: PolicyAction) -> anyhow::Result<()> {
    match action {
        PolicyAction::Set { scope, file, comment, by } => {
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            // Checked by the agent's own rules before anything is stored.
            let doc = parse_checked(&text)
                .map_err(|e| anyhow::anyhow!("{}: refused, nothing changed: {e}", file.display()))?;
            let key = PolicyKey::load(&config.data_dir)?;
            let store = migrated_store(config).await?;
            let scope = resolve_scope(&store, &scope).await?;
            let row = next_row(&store, &scope, &key.seal(&doc), comment, by, false).await?;
            eprintln!("policy of {scope} is version {} now", row.version);
        }
        PolicyAction::Show { scope, version } => {
            let store = migrated_store(config).await?;
            let scope = resolve_scope(&store, &scope).await?;
            let history = store.policy_history(&scope.to_string()).await?;
            let row = match version {
                Some(v) => history.iter().find(|r| r.version == v),
                None => history.last(),
            };
            let Some(row) = row else {
                bail!(
                    "{scope} has no policy{}",
                    version.map_or_else(String::new, |v| format!(" version {v}"))
                );
            };
            if row.removed == 1 {
                bail!("{scope}: the policy was removed in version {}", row.version);
            }
            let doc: Table = toml::from_str(&row.document).context("stored policy")?;
            eprintln!("# {scope} version {}, {} by {}", row.version, rfc3339_ms(row.at_ms), row.author);
            print!("{}", toml::to_string(&redact(&doc))?);
        }
        PolicyAction::History { scope } => {
            let store = migrated_store(config).await?;
            let scope = resolve_scope(&store, &scope).await?;
            let mut out = std::io::stdout().lock();
            for r in store.policy_history(&scope.to_string()).await? {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}{}",
                    r.version,
                    rfc3339_ms(r.at_ms),
                    r.author,
                    if r.removed == 1 { "removed" } else { "set" },
                    if r.comment.is_empty() { String::new() } else { format!("\t{}", r.comment) }
                )?;
            }
        }
        PolicyAction::Rollback { scope, to, comment, by } => {
            let store = migrated_store(config).await?;
            let scope = resolve_scope(&store, &scope).await?;
            let history = store.policy_history(&scope.to_string()).await?;
            let Some(old) = history.iter().find(|r| r.version == to) else {
                bail!(
                    "--to {to}: {scope} has no version {to} (see `parta-collector policy history --scope {scope}`)"
                );
            };
            let doc: Table = toml::from_str(&old.document).context("stored policy")?;
            let comment = comment.or_else(|| Some(format!("rollback to version {to}")));
            let row = next_row(&store, &scope, &doc, comment, by, old.removed == 1).await?;
            eprintln!("policy of {scope} is version {} now, the document of version {to}", row.version);
        }
        PolicyAction::Remove { scope, comment, by } => {
            let store = migrated_store(config).await?;
            let scope = resolve_scope(&store, &scope).await?;
            let row = next_row(&store, &scope, &Table::new(), comment, by, true).await?;
            eprintln!("policy of {scope} removed in version {}", row.version);
        }
        PolicyAction::Effective { device, school, format } => {
            let store = migrated_store(config).await?;
            let (school, device) = match (device, school) {
                (Some(d), None) => {
                    let id: DeviceId = d.parse().map_err(|e| anyhow::anyhow!("--device {d:?}: {e}"))?;
                    let book = crate::fleet::book::DeviceBook::new();
                    book.refresh(&store).await?;
                    let dev = book
                        .device(id)
                        .ok_or_else(|| anyhow::anyhow!("--device {d}: no such enrolled device"))?;
                    (dev.school().to_owned(), Some(id))
                }
                (None, Some(s)) => (s, None),
                _ => bail!("give --device ID or --school ID"),
            };
            let layers = layers_of(&store, &school, device).await?;
            let doc = effective(layers.iter().map(|(_, _, t)| t));
            let shown = redact(&doc);
            match format {
                PolicyFormat::Toml => {
                    let mut out = std::io::stdout().lock();
                    for (scope, version, _) in &layers {
                        writeln!(out, "# {scope} version {version}")?;
                    }
                    write!(out, "{}", toml::to_string(&shown)?)?;
                }
                PolicyFormat::Json => {
                    let v = serde_json::json!({
                        "school_id": school,
                        "layers": layers.iter().map(|(s, v, _)| serde_json::json!({"scope": s.to_string(), "version": v})).collect::<Vec<_>>(),
                        "effective": shown,
                    });
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
            }
        }
    }
    Ok(())
}

/// A scope as written, with a municipality spelled as the school registry has it (a policy of
/// a municipality the registry does not know would reach no school).
async fn resolve_scope(store: &Store, text: &str) -> anyhow::Result<PolicyScope> {
    let scope = PolicyScope::parse(text).map_err(|e| anyhow::anyhow!("--scope: {e}"))?;
    let PolicyScope::Municipality { region, name } = &scope else { return Ok(scope) };
    let key = crate::compliance::csvin::name_key(name);
    let schools = store.schools().await?;
    let found = schools
        .iter()
        .find(|s| &s.region_code == region && crate::compliance::csvin::name_key(&s.municipality) == key);
    match found {
        Some(s) => Ok(PolicyScope::Municipality { region: region.clone(), name: s.municipality.clone() }),
        None => bail!(
            "--scope {scope}: no school of the registry is in this municipality of region {region} \
             (import the registry with `parta-collector schools import`, or check the spelling)"
        ),
    }
}

fn rfc3339_ms(ms: u64) -> String {
    rfc3339(u32::try_from(ms / 1000).unwrap_or(u32::MAX))
}

/// Stores the next version of a scope's policy.
async fn next_row(
    store: &Store,
    scope: &PolicyScope,
    sealed: &Table,
    comment: Option<String>,
    by: Option<String>,
    removed: bool,
) -> anyhow::Result<PolicyRow> {
    let history = store.policy_history(&scope.to_string()).await?;
    let row = PolicyRow {
        scope: scope.to_string(),
        version: history.last().map_or(1, |r| r.version + 1),
        document: toml::to_string(sealed)?,
        author: by.unwrap_or_else(crate::who::local_actor),
        at_ms: now_ms(),
        comment: comment.unwrap_or_default(),
        removed: u8::from(removed),
    };
    store.put_policy(&row).await?;
    Ok(row)
}

/// The policies in force for a school (and one of its devices), broadest first: (scope,
/// version, sealed document).
pub async fn layers_of(
    store: &Store,
    school: &str,
    device: Option<DeviceId>,
) -> anyhow::Result<Vec<(PolicyScope, u32, Table)>> {
    let place = store.schools().await?.into_iter().find(|s| s.school_id == school);
    let mut scopes = vec![PolicyScope::All];
    if let Some(p) = &place {
        scopes.push(PolicyScope::Region(p.region_code.clone()));
        scopes
            .push(PolicyScope::Municipality { region: p.region_code.clone(), name: p.municipality.clone() });
    }
    scopes.push(PolicyScope::School(school.to_owned()));
    if let Some(d) = device {
        scopes.push(PolicyScope::Device(d.0));
    }
    let latest = store.latest_policies().await?;
    let mut out = Vec::new();
    for scope in scopes {
        let key = scope.to_string();
        if let Some(r) = latest.iter().find(|r| r.scope == key && r.removed == 0) {
            let doc: Table =
                toml::from_str(&r.document).with_context(|| format!("stored policy of {key}"))?;
            out.push((scope, r.version, doc));
        }
    }
    Ok(out)
}
