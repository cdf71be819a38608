//! `parta-collector policy …`: set, show, history, rollback and remove a scope's policy, and
//! the effective policy of a device or school.

use std::io::Write as _;

use anyhow::{Context as _, bail};
use parta_protocol::DeviceId;
use toml::Table;

use super::PolicyScope;
use super::book::PolicySet;
use super::changes;
use super::secrets::{PolicyKey, redact};
use crate::app::migrated_store;
use crate::cli::{PolicyAction, PolicyFormat};
use crate::clock::rfc3339_ms;
use crate::config::CollectorConfig;
use crate::storage::Store;

/// `policy …`.
pub async fn policy(config: &CollectorConfig, action: PolicyAction) -> anyhow::Result<()> {
    match action {
        PolicyAction::Set { scope, file, comment, by } => {
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let key = PolicyKey::load(&config.data_dir)?;
            let store = migrated_store(config).await?;
            let scope = resolve_scope(&store, &scope).await?;
            // Checked by the agent's own rules before anything is stored.
            let by = by.unwrap_or_else(crate::who::local_actor);
            let row = changes::set(&store, &key, &scope, &text, &by, &comment.unwrap_or_default())
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}; nothing changed", file.display()))?;
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
            let by = by.unwrap_or_else(crate::who::local_actor);
            let row =
                changes::put_next(&store, &scope, &doc, &by, &comment.unwrap_or_default(), old.removed == 1)
                    .await?;
            eprintln!("policy of {scope} is version {} now, the document of version {to}", row.version);
        }
        PolicyAction::Remove { scope, comment, by } => {
            let store = migrated_store(config).await?;
            let scope = resolve_scope(&store, &scope).await?;
            let by = by.unwrap_or_else(crate::who::local_actor);
            let row =
                changes::put_next(&store, &scope, &Table::new(), &by, &comment.unwrap_or_default(), true)
                    .await?;
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
            let set = PolicySet::new(store.latest_policies().await?, &store.schools().await?);
            let layers = set.layers(&school, device);
            let doc = layers.merged().context("stored policy")?;
            let doc = match device {
                Some(d) => parta_agent::policy::for_device(&doc, d.0),
                None => doc,
            };
            let shown = redact(&doc);
            let origins = layers.origins().context("stored policy")?;
            match format {
                PolicyFormat::Toml => {
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "# version {}", layers.version())?;
                    for (scope, row) in layers.in_force() {
                        writeln!(out, "# {scope} version {}", row.version)?;
                    }
                    for (key, by) in &origins {
                        writeln!(out, "#   {key}: {by}")?;
                    }
                    write!(out, "{}", toml::to_string(&shown)?)?;
                }
                PolicyFormat::Json => {
                    let v = serde_json::json!({
                        "school_id": school,
                        "version": layers.version(),
                        "layers": layers.in_force().map(|(s, r)| serde_json::json!({"scope": s.to_string(), "version": r.version})).collect::<Vec<_>>(),
                        "origins": origins.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
                        "effective": shown,
                    });
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
            }
        }
    }
    Ok(())
}

/// A scope as written, resolved against the registry.
async fn resolve_scope(store: &Store, text: &str) -> anyhow::Result<PolicyScope> {
    changes::resolve_scope(store, text).await.map_err(|e| anyhow::anyhow!("--{e}"))
}
