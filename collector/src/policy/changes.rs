//! Changing a scope's policy — from the command line or the web UI, one way: the scope is
//! resolved against the school registry, secrets shown as `<secret>` keep their stored values,
//! the document is checked by the agent's own rules, sealed and stored as the scope's next
//! version (its history is the audit log: who, when, why, what).

use parta_agent::policy::PolicyError;
use toml::{Table, Value};

use super::PolicyScope;
use super::merge::parse_checked;
use super::secrets::{PolicyKey, REDACTED};
use crate::clock::next_version;
use crate::storage::policies::PolicyRow;
use crate::storage::{Store, StoreError};

/// Why a change was refused; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The scope is not one people can write or the registry knows.
    #[error("scope: {0}")]
    Scope(String),
    /// The document breaks the agent's rules.
    #[error("refused: {0}")]
    Refused(#[from] PolicyError),
    /// A `<secret>` with no stored secret to keep, or a stored one that does not open.
    #[error("{0}")]
    Secret(String),
    /// Storage.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A scope as written, with a municipality spelled as the school registry has it (a policy of
/// a municipality the registry does not know would reach no school).
pub async fn resolve_scope(store: &Store, text: &str) -> Result<PolicyScope, ChangeError> {
    let scope = PolicyScope::parse(text).map_err(ChangeError::Scope)?;
    let PolicyScope::Municipality { region, name } = &scope else { return Ok(scope) };
    let key = crate::compliance::csvin::name_key(name);
    let schools = store.schools().await?;
    let found = schools
        .iter()
        .find(|s| &s.region_code == region && crate::compliance::csvin::name_key(&s.municipality) == key);
    match found {
        Some(s) => Ok(PolicyScope::Municipality { region: region.clone(), name: s.municipality.clone() }),
        None => Err(ChangeError::Scope(format!(
            "{scope}: no school of the registry is in this municipality of region {region} \
             (import the registry with `parta-collector schools import`, or check the spelling)"
        ))),
    }
}

/// Sets a scope's policy to `text`: checked, secrets kept where it says `<secret>`, sealed,
/// stored as the next version.
pub async fn set(
    store: &Store,
    key: &PolicyKey,
    scope: &PolicyScope,
    text: &str,
    author: &str,
    comment: &str,
) -> Result<PolicyRow, ChangeError> {
    let history = store.policy_history(&scope.to_string()).await?;
    let parsed: Table =
        toml::from_str(text).map_err(|e| PolicyError { key: String::new(), reason: e.to_string() })?;
    if parsed.contains_key(parta_agent::policy::REGISTER_KEY) {
        return Err(ChangeError::Refused(PolicyError {
            key: parta_agent::policy::REGISTER_KEY.into(),
            reason: "comes from the equipment register (`parta-collector inventory import`);                      set room or equipment_class to override it"
                .into(),
        }));
    }
    let doc = if has_redacted(&parsed) {
        let stored = match history.last().filter(|r| r.removed == 0) {
            Some(r) => toml::from_str::<Table>(&r.document)
                .map_err(|e| ChangeError::Secret(format!("the stored policy of {scope}: {e}")))?,
            None => Table::new(),
        };
        let opened = key.open(&stored).map_err(|e| ChangeError::Secret(e.to_string()))?;
        let kept = keep_secrets(&parsed, &opened, "").map_err(ChangeError::Secret)?;
        let text =
            toml::to_string(&kept).map_err(|e| PolicyError { key: String::new(), reason: e.to_string() })?;
        parse_checked(&text)?
    } else {
        parse_checked(text)?
    };
    put(store, scope, &key.seal(&doc), &history, author, comment, false).await
}

/// Stores the next version of a scope's policy: `sealed` as is (a rollback's stored document,
/// an empty one for a removal).
pub async fn put_next(
    store: &Store,
    scope: &PolicyScope,
    sealed: &Table,
    author: &str,
    comment: &str,
    removed: bool,
) -> Result<PolicyRow, ChangeError> {
    let history = store.policy_history(&scope.to_string()).await?;
    put(store, scope, sealed, &history, author, comment, removed).await
}

async fn put(
    store: &Store,
    scope: &PolicyScope,
    sealed: &Table,
    history: &[PolicyRow],
    author: &str,
    comment: &str,
    removed: bool,
) -> Result<PolicyRow, ChangeError> {
    // A device's version is the time of the latest change of its scopes: above every change
    // before, whatever the clocks of the machines that made them said.
    let latest = store.latest_policies().await?.iter().map(|r| r.at_ms).max().unwrap_or(0);
    let row = PolicyRow {
        scope: scope.to_string(),
        version: history.last().map_or(1, |r| r.version + 1),
        document: toml::to_string(sealed).map_err(|e| ChangeError::Secret(e.to_string()))?,
        author: author.to_owned(),
        at_ms: next_version(latest),
        comment: comment.to_owned(),
        removed: u8::from(removed),
    };
    store.put_policy(&row).await?;
    tracing::info!(scope = %row.scope, version = row.version, author = %row.author, removed, "policy changed");
    Ok(row)
}

fn has_redacted(t: &Table) -> bool {
    t.values().any(|v| match v {
        Value::String(s) => s == REDACTED,
        Value::Table(t) => has_redacted(t),
        Value::Array(a) => a.iter().any(|i| i.as_table().is_some_and(has_redacted)),
        _ => false,
    })
}

/// `new` with every `<secret>` replaced by the stored (opened) value at the same place: the
/// same key of the same table, and for `[[snmp.target]]` the target with the same address.
fn keep_secrets(new: &Table, stored: &Table, prefix: &str) -> Result<Table, String> {
    let mut out = Table::new();
    for (k, v) in new {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        let kept = match v {
            Value::String(s) if s == REDACTED => match stored.get(k) {
                Some(Value::String(old)) if old != REDACTED => Value::String(old.clone()),
                _ => {
                    return Err(format!(
                        "{path}: says {REDACTED} but no secret is stored there to keep; type the value"
                    ));
                }
            },
            Value::Table(t) => {
                let empty = Table::new();
                let old = stored.get(k).and_then(Value::as_table).unwrap_or(&empty);
                Value::Table(keep_secrets(t, old, &path)?)
            }
            Value::Array(items) => {
                let old_items = stored.get(k).and_then(Value::as_array).cloned().unwrap_or_default();
                let mut list = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let Some(t) = item.as_table() else {
                        list.push(item.clone());
                        continue;
                    };
                    let same = |o: &&Value| {
                        o.as_table().is_some_and(|o| {
                            o.get("address").is_some() && o.get("address") == t.get("address")
                        })
                    };
                    let empty = Table::new();
                    let old = old_items.iter().find(same).and_then(Value::as_table).unwrap_or(&empty);
                    list.push(Value::Table(keep_secrets(t, old, &format!("{path}[{i}]"))?));
                }
                Value::Array(list)
            }
            other => other.clone(),
        };
        out.insert(k.clone(), kept);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Table {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn redacted_secrets_keep_the_stored_value_of_the_same_target() {
        let stored = t("[[snmp.target]]\naddress = \"10.0.0.2\"\ncommunity = \"two\"\n\
                        [[snmp.target]]\naddress = \"10.0.0.3\"\ncommunity = \"three\"\n");
        // Reordered, one secret kept, one retyped.
        let new = t("[[snmp.target]]\naddress = \"10.0.0.3\"\ncommunity = \"<secret>\"\n\
                     [[snmp.target]]\naddress = \"10.0.0.2\"\ncommunity = \"new-two\"\n");
        assert!(has_redacted(&new));
        let kept = keep_secrets(&new, &stored, "").unwrap();
        assert_eq!(
            kept,
            t("[[snmp.target]]\naddress = \"10.0.0.3\"\ncommunity = \"three\"\n\
               [[snmp.target]]\naddress = \"10.0.0.2\"\ncommunity = \"new-two\"\n")
        );
        let orphan = t("[[snmp.target]]\naddress = \"10.0.0.9\"\ncommunity = \"<secret>\"\n");
        let e = keep_secrets(&orphan, &stored, "").unwrap_err();
        assert!(e.contains("snmp.target[0].community") && e.contains("type the value"), "{e}");
    }
}
