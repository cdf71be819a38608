//! `parta-collector release add|rollout|retry|list|status`.

use std::collections::BTreeMap;
use std::io::Write as _;

use anyhow::{Context as _, bail};
use parta_protocol::release::{Manifest, ReadCheckError, ReleaseVersion, key_id_text};

use super::{AGENT, artifact_path};
use crate::app::migrated_store;
use crate::cli::{OutputFormat, ReleaseAction};
use crate::clock::rfc3339_ms;
use crate::config::CollectorConfig;
use crate::policy::changes::resolve_scope;
use crate::storage::Store;
use crate::storage::releases::{ReleaseRow, RolloutRow};

/// `release …`.
pub async fn release(config: &CollectorConfig, action: ReleaseAction) -> anyhow::Result<()> {
    match action {
        ReleaseAction::Add { signature, artifact, channel, by } => {
            let key = config.fleet.release_key.context(
                "no release key: set `release_key` (the region's release.pub from `parta-release public`) \
                 in the collector's configuration",
            )?;
            let (text, manifest) = tokio::task::block_in_place(|| verify(&signature, &artifact, &key))?;
            let store = migrated_store(config).await?;
            let existing = store.releases().await?;
            if let Some(r) = existing.iter().find(|r| {
                r.product == manifest.name
                    && r.target == manifest.target
                    && r.version == manifest.version.to_string()
            }) && r.sha256 != hex::encode(manifest.sha256)
            {
                bail!(
                    "{}: version {} for {} was already added with another artifact (SHA-256 {}); \
                     a release is never replaced — sign a new version",
                    signature.display(),
                    manifest.version,
                    manifest.target,
                    r.sha256
                );
            }
            let dest = artifact_path(&config.data_dir, &manifest.name, manifest.version, &manifest.target);
            tokio::task::block_in_place(|| keep(&artifact, &dest))?;
            let row = ReleaseRow {
                product: manifest.name.clone(),
                version: manifest.version.to_string(),
                target: manifest.target.clone(),
                channel: channel.as_str().to_owned(),
                signature: text,
                size: manifest.size,
                sha256: hex::encode(manifest.sha256),
                added_ms: crate::clock::now_ms(),
                author: by.unwrap_or_else(crate::who::local_actor),
            };
            store.put_release(&row).await?;
            eprintln!(
                "added {} {} for {} to channel {channel} ({} bytes, signed by key {}); \
                 offer it with `parta-collector release rollout --channel {channel} --percent N`",
                manifest.name,
                manifest.version,
                manifest.target,
                manifest.size,
                key_id_text(&key)
            );
        }
        ReleaseAction::Rollout { channel, version, percent, scope, comment, by } => {
            let store = migrated_store(config).await?;
            let releases = store.releases().await?;
            let in_channel: Vec<ReleaseVersion> = releases
                .iter()
                .filter(|r| r.product == AGENT && r.channel == channel.as_str())
                .filter_map(|r| r.version.parse().ok())
                .collect();
            let version: ReleaseVersion = match version {
                Some(v) => {
                    let v = v.parse().map_err(|e| anyhow::anyhow!("--version {v:?}: {e}"))?;
                    if !in_channel.contains(&v) {
                        bail!("--version {v}: no such release in channel {channel} (see `parta-collector release list`)");
                    }
                    v
                }
                None => in_channel.iter().max().copied().with_context(|| {
                    format!("channel {channel} has no release yet: `parta-collector release add FILE.sig FILE --channel {channel}`")
                })?,
            };
            let mut scopes = Vec::new();
            for s in &scope {
                let resolved = resolve_scope(&store, s).await.map_err(|e| anyhow::anyhow!("--scope {e}"))?;
                scopes.push(resolved.to_string());
            }
            if percent.is_none() && scopes.is_empty() {
                bail!("say who is offered the release: --percent N and/or --scope SCOPE");
            }
            let previous = store.rollouts().await?.into_iter().find(|r| r.channel == channel.as_str());
            let retry = previous.filter(|p| p.version == version.to_string()).map_or(0, |p| p.retry);
            let row = RolloutRow {
                channel: channel.as_str().to_owned(),
                version: version.to_string(),
                percent: percent.unwrap_or(0),
                scopes,
                retry,
                at_ms: crate::clock::now_ms(),
                author: by.unwrap_or_else(crate::who::local_actor),
                comment: comment.unwrap_or_default(),
            };
            store.put_rollout(&row).await?;
            eprintln!("channel {channel}: {} offered to {}", row.version, describe(&row));
        }
        ReleaseAction::Retry { channel, by } => {
            let store = migrated_store(config).await?;
            let Some(previous) = store.rollouts().await?.into_iter().find(|r| r.channel == channel.as_str())
            else {
                bail!("channel {channel} has no rollout to retry");
            };
            let row = RolloutRow {
                retry: previous.retry + 1,
                at_ms: crate::clock::now_ms().max(previous.at_ms + 1),
                author: by.unwrap_or_else(crate::who::local_actor),
                comment: format!("retry {} where it failed", previous.version),
                ..previous
            };
            store.put_rollout(&row).await?;
            eprintln!(
                "channel {channel}: devices on which {} failed will try it again (retry epoch {})",
                row.version, row.retry
            );
        }
        ReleaseAction::List => {
            let store = migrated_store(config).await?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "# releases")?;
            for r in store.releases().await? {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{} bytes\tsha256 {}\tadded {} by {}",
                    r.product,
                    r.version,
                    r.target,
                    r.channel,
                    r.size,
                    r.sha256,
                    rfc3339_ms(r.added_ms),
                    r.author
                )?;
            }
            writeln!(out, "# rollouts in force")?;
            for r in store.rollouts().await? {
                writeln!(
                    out,
                    "{}\t{}\t{}\tretry {}\tsince {} by {}",
                    r.channel,
                    r.version,
                    describe(&r),
                    r.retry,
                    rfc3339_ms(r.at_ms),
                    r.author
                )?;
            }
        }
        ReleaseAction::Status { version, devices, format } => {
            let store = migrated_store(config).await?;
            let version = version
                .map(|v| v.parse::<ReleaseVersion>().map_err(|e| anyhow::anyhow!("--version {v:?}: {e}")))
                .transpose()?;
            status(&store, version, devices, format).await?;
        }
    }
    Ok(())
}

/// `10 % of devices and school:74-0012`.
fn describe(r: &RolloutRow) -> String {
    super::offered_to(r, "of devices").join(" and ")
}

/// Checks a signature file and its artifact against the region's key; the file's text and what
/// it says.
fn verify(
    signature: &std::path::Path,
    artifact: &std::path::Path,
    key: &[u8; 32],
) -> anyhow::Result<(String, Manifest)> {
    let sig = std::fs::read(signature).with_context(|| format!("cannot read {}", signature.display()))?;
    let manifest = Manifest::parse(&sig).map_err(|e| anyhow::anyhow!("{}: {e}", signature.display()))?;
    manifest
        .verify_signature(std::slice::from_ref(key))
        .map_err(|e| anyhow::anyhow!("{}: {e}; nothing added", signature.display()))?;
    if manifest.name != AGENT {
        bail!("{}: a release of {:?}; the collector offers {AGENT} only", signature.display(), manifest.name);
    }
    let f = std::fs::File::open(artifact).with_context(|| format!("cannot read {}", artifact.display()))?;
    manifest.checker().check_reader(f, |_| {}).map_err(|e| match e {
        ReadCheckError::Io { source, .. } => anyhow::anyhow!("reading {}: {source}", artifact.display()),
        ReadCheckError::Refused(e) => anyhow::anyhow!("{}: {e}; nothing added", artifact.display()),
    })?;
    // The signature file is ASCII by its grammar.
    Ok((String::from_utf8_lossy(&sig).into_owned(), manifest))
}

/// Copies the artifact into the data directory (whole or not at all).
fn keep(from: &std::path::Path, dest: &std::path::Path) -> anyhow::Result<()> {
    let dir = dest.parent().context("artifact path without a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dest.with_extension("partial");
    std::fs::copy(from, &tmp)
        .with_context(|| format!("cannot copy {} to {}", from.display(), tmp.display()))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", tmp.display()))?;
    std::fs::rename(&tmp, dest)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), dest.display()))?;
    Ok(())
}

/// Counts per release and state, the reasons of what did not happen, and optionally each device.
async fn status(
    store: &Store,
    only: Option<ReleaseVersion>,
    devices: bool,
    format: OutputFormat,
) -> anyhow::Result<()> {
    let rows: Vec<_> = store
        .update_statuses()
        .await?
        .into_iter()
        .filter(|r| only.is_none_or(|v| r.version == v.to_string()))
        .collect();
    let per = super::summarize(&rows);
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => {
            let versions: BTreeMap<String, BTreeMap<String, serde_json::Value>> =
                per.iter().fold(BTreeMap::new(), |mut m, ((v, state), (n, reasons))| {
                    m.entry(v.to_string())
                        .or_default()
                        .insert(state.clone(), serde_json::json!({ "devices": n, "reasons": reasons }));
                    m
                });
            let mut doc = serde_json::json!({ "releases": versions });
            if devices {
                doc["devices"] = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "device_id": r.device_id.to_string(), "version": r.version, "state": r.state,
                            "bytes": r.bytes, "detail": r.detail, "running": r.running,
                        })
                    })
                    .collect();
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
        OutputFormat::Text => {
            if per.is_empty() {
                writeln!(out, "no device has reported about a release yet")?;
            }
            for ((v, state), (n, reasons)) in &per {
                writeln!(out, "{v}\t{state}\t{n}")?;
                for (why, k) in reasons {
                    writeln!(out, "\t\t{k} × {why}")?;
                }
            }
            if devices {
                for r in &rows {
                    writeln!(out, "{}\t{}\t{}\t{}\t{}", r.device_id, r.version, r.state, r.bytes, r.detail)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollouts_are_described_for_people() {
        let mut r = RolloutRow {
            channel: "stable".into(),
            version: "0.2.0".into(),
            percent: 10,
            scopes: vec![],
            retry: 0,
            at_ms: 0,
            author: String::new(),
            comment: String::new(),
        };
        assert_eq!(describe(&r), "10 % of devices");
        r.scopes = vec!["school:74-0012".into()];
        assert_eq!(describe(&r), "10 % of devices and school:74-0012");
        r.percent = 0;
        assert_eq!(describe(&r), "school:74-0012");
    }
}
