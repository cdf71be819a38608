//! `parta-collector token …` and `parta-collector device …`.

use std::io::Write as _;

use anyhow::{Context as _, bail};
use parta_protocol::DeviceId;
use parta_protocol::join::Join;

use super::book::{Device, DeviceBook, REVOKED};
use crate::app::{abbreviate, migrated_store};
use crate::cli::{DeviceAction, OutputFormat, TokenAction};
use crate::clock::{next_version, now_ms, rfc3339};
use crate::config::CollectorConfig;
use crate::storage::fleet::{FleetBatch, FleetSchoolRow};
use crate::storage::{Store, now_secs};
use crate::tokens::{self, Limits};

/// `token …`.
pub async fn token(config: &CollectorConfig, action: TokenAction) -> anyhow::Result<()> {
    match action {
        TokenAction::Create { school, comment, uses, expires, collectors } => {
            parta_protocol::validate::validate_school_id(&school)
                .map_err(|e| anyhow::anyhow!("--school: {e}"))?;
            let expires_at = match &expires {
                Some(d) => {
                    let d = parta_common::settings::parse_duration_within(
                        d,
                        std::time::Duration::from_secs(60),
                        std::time::Duration::from_secs(10 * 365 * 86_400),
                    )
                    .map_err(|e| anyhow::anyhow!("--expires {d:?}: {e}"))?;
                    now_secs().saturating_add(u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
                }
                None => 0,
            };
            let anchor = crate::tls::trust_anchor(&config.tls, &config.data_dir).context(
                "the collector's CA is needed for the join string: start `parta-collector serve` once so that it \
                 creates it, or configure tls_cert with the CA last in the chain",
            )?;
            let addresses =
                if collectors.is_empty() { config.fleet.join_addresses.clone() } else { collectors };
            let limits = Limits { max_uses: uses.unwrap_or(0), expires_at };
            let new = tokens::generate(&school, &comment, limits, now_secs(), now_ms());
            let join = Join {
                collectors: addresses,
                school: school.clone(),
                token: new.token.clone(),
                ca_sha256: super::ca::sha256(&anchor),
                release_key: config.fleet.release_key,
            };
            // The join string must read back as itself: an address that does not is refused
            // before anything is stored.
            join.to_string().parse::<Join>().map_err(|e| anyhow::anyhow!("--collector: {e}"))?;
            let store = migrated_store(config).await?;
            store.put_token(&new.row).await?;
            eprintln!(
                "created enrollment token {} for school {school} ({}, {}); shown only once.",
                new.row.token_id,
                match uses {
                    Some(n) => format!("enrolls at most {n} devices"),
                    None => "enrolls any number of devices".into(),
                },
                if expires_at == 0 {
                    "never expires".into()
                } else {
                    format!("expires {}", rfc3339(expires_at))
                },
            );
            eprintln!("line 1: the token; line 2: the join string for `parta-agent enroll`:");
            println!("{}", new.token);
            println!("{join}");
        }
        TokenAction::List { format } => {
            let store = migrated_store(config).await?;
            let rows = store.tokens().await?;
            let book = DeviceBook::new();
            book.refresh(&store).await?;
            let mut out = std::io::stdout().lock();
            match format {
                OutputFormat::Json => {
                    let items: Vec<serde_json::Value> = rows
                        .iter()
                        .map(|r| {
                            serde_json::json!({
                                "token_id": r.token_id,
                                "school_id": r.school_id,
                                "comment": r.comment,
                                "created_at": rfc3339(r.created_at),
                                "revoked": r.revoked != 0,
                                "max_uses": (r.max_uses > 0).then_some(r.max_uses),
                                "used": book.uses(&r.token_id),
                                "expires_at": (r.expires_at > 0).then(|| rfc3339(r.expires_at)),
                            })
                        })
                        .collect();
                    serde_json::to_writer_pretty(&mut out, &items)?;
                    writeln!(out)?;
                }
                OutputFormat::Text => {
                    writeln!(
                        out,
                        "{:<14} {:<16} {:<8} {:<9} {:<21} {:<21} COMMENT",
                        "ID", "SCHOOL", "STATE", "USED", "CREATED", "EXPIRES"
                    )?;
                    let now = now_secs();
                    for r in &rows {
                        let state = if r.revoked != 0 {
                            "revoked"
                        } else if r.expires_at != 0 && now >= r.expires_at {
                            "expired"
                        } else {
                            "active"
                        };
                        let used = match r.max_uses {
                            0 => book.uses(&r.token_id).to_string(),
                            n => format!("{}/{n}", book.uses(&r.token_id)),
                        };
                        let expires = if r.expires_at == 0 { "-".to_owned() } else { rfc3339(r.expires_at) };
                        writeln!(
                            out,
                            "{:<14} {:<16} {:<8} {:<9} {:<21} {:<21} {}",
                            r.token_id,
                            r.school_id,
                            state,
                            used,
                            rfc3339(r.created_at),
                            expires,
                            r.comment
                        )?;
                    }
                }
            }
        }
        TokenAction::Revoke { token } => {
            let store = migrated_store(config).await?;
            let rows = store.tokens().await?;
            let hashed = tokens::hash(token.trim());
            let Some(row) = rows.iter().find(|r| r.token_id == token.trim() || r.token_sha256 == hashed)
            else {
                bail!(
                    "no enrollment token with id or value {:?} (see `parta-collector token list`)",
                    abbreviate(&token)
                );
            };
            if row.revoked != 0 {
                println!("token {} of school {} was already revoked", row.token_id, row.school_id);
                return Ok(());
            }
            let mut revoked = row.clone();
            revoked.revoked = 1;
            revoked.version = next_version(row.version);
            store.put_token(&revoked).await?;
            println!(
                "revoked token {} of school {}: it enrolls no more devices; devices it enrolled keep \
                 their own credentials (revoke one with `parta-collector device revoke ID`)",
                row.token_id, row.school_id
            );
        }
    }
    Ok(())
}

/// `device …`.
pub async fn device(config: &CollectorConfig, action: DeviceAction) -> anyhow::Result<()> {
    let store = migrated_store(config).await?;
    let book = DeviceBook::new();
    book.refresh(&store).await.context("reading the fleet")?;
    match action {
        DeviceAction::List { school, format } => {
            let devices: Vec<Device> = book
                .devices()
                .into_iter()
                .filter(|d| school.as_deref().is_none_or(|s| d.school() == s))
                .collect();
            let mut out = std::io::stdout().lock();
            match format {
                OutputFormat::Json => {
                    let v: Vec<serde_json::Value> = devices.iter().map(Device::to_json).collect();
                    serde_json::to_writer_pretty(&mut out, &v)?;
                    writeln!(out)?;
                }
                OutputFormat::Text => {
                    writeln!(
                        out,
                        "{:<36} {:<16} {:<8} {:<8} {:<21} CREDENTIAL UNTIL",
                        "DEVICE", "SCHOOL", "KIND", "STATE", "ENROLLED"
                    )?;
                    for d in &devices {
                        writeln!(
                            out,
                            "{:<36} {:<16} {:<8} {:<8} {:<21} {}",
                            d.id,
                            d.school(),
                            d.row.kind,
                            d.row.state,
                            rfc3339(d.row.enrolled_at),
                            d.credential_expires().map_or_else(|| "-".to_owned(), rfc3339)
                        )?;
                    }
                }
            }
        }
        DeviceAction::Show { id, format } => {
            let d = find(&book, &id)?;
            let mut out = std::io::stdout().lock();
            match format {
                OutputFormat::Json => {
                    serde_json::to_writer_pretty(&mut out, &d.to_json())?;
                    writeln!(out)?;
                }
                OutputFormat::Text => {
                    writeln!(out, "device:      {}", d.id)?;
                    writeln!(out, "kind:        {}", d.row.kind)?;
                    writeln!(
                        out,
                        "state:       {} (since {}, by {})",
                        d.row.state,
                        rfc3339(d.row.state_at),
                        d.row.state_by
                    )?;
                    writeln!(out, "school:      {}", d.school())?;
                    writeln!(out, "enrolled:    {} (token {})", rfc3339(d.row.enrolled_at), d.row.token_id)?;
                    writeln!(
                        out,
                        "credential:  valid until {}",
                        d.credential_expires().map_or_else(|| "-".to_owned(), rfc3339)
                    )?;
                    writeln!(out, "key:         sha256:{}", d.row.key_sha256)?;
                    writeln!(out, "schools:")?;
                    for s in &d.schools {
                        writeln!(
                            out,
                            "  {:<16} from {:<21} {} by {}",
                            s.school,
                            since(s.since_ms),
                            s.reason,
                            s.by
                        )?;
                    }
                    writeln!(out, "certificates:")?;
                    for c in &d.certs {
                        writeln!(
                            out,
                            "  serial {} issued {} ({}), valid until {}",
                            c.serial,
                            rfc3339(c.issued_at),
                            c.reason,
                            rfc3339(c.not_after)
                        )?;
                    }
                }
            }
        }
        DeviceAction::Move { id, school, by } => {
            parta_protocol::validate::validate_school_id(&school)
                .map_err(|e| anyhow::anyhow!("--school: {e}"))?;
            let d = find(&book, &id)?;
            if d.revoked() {
                bail!("device {} is revoked; a revoked device is not moved", d.id);
            }
            if d.school() == school {
                println!("device {} already belongs to school {school}; nothing changed", d.id);
                return Ok(());
            }
            let by = by.unwrap_or_else(crate::who::local_actor);
            let since_ms = i64::try_from(now_ms()).unwrap_or(i64::MAX);
            let batch = FleetBatch {
                schools: vec![FleetSchoolRow {
                    device_id: d.id.0,
                    school_id: school.clone(),
                    since_ms,
                    by: by.clone(),
                    reason: "moved".into(),
                }],
                ..FleetBatch::default()
            };
            store.put_fleet(&batch).await?;
            println!(
                "moved device {} from school {} to school {school} ({by}, {}); its reports from now on \
                 belong to {school}, earlier ones stay with {}",
                d.id,
                d.school(),
                rfc3339(now_secs()),
                d.school()
            );
        }
        DeviceAction::Revoke { id, by } => {
            let d = find(&book, &id)?;
            if d.revoked() {
                println!(
                    "device {} was already revoked ({}, by {})",
                    d.id,
                    rfc3339(d.row.state_at),
                    d.row.state_by
                );
                return Ok(());
            }
            let by = by.unwrap_or_else(crate::who::local_actor);
            revoke(&store, &d, &by).await?;
            println!(
                "revoked device {} of school {}: its live session ends within seconds and it cannot \
                 connect again; its data stays",
                d.id,
                d.school()
            );
        }
    }
    Ok(())
}

/// Writes a device's revocation.
async fn revoke(store: &Store, d: &Device, by: &str) -> anyhow::Result<()> {
    let mut row = d.row.clone();
    row.state = REVOKED.into();
    row.state_at = now_secs();
    row.state_by = by.to_owned();
    row.version = next_version(row.version);
    store.put_fleet(&FleetBatch { devices: vec![row], ..FleetBatch::default() }).await?;
    Ok(())
}

fn find(book: &DeviceBook, id: &str) -> anyhow::Result<Device> {
    let parsed: DeviceId = id.trim().parse().map_err(|_| {
        anyhow::anyhow!("{id:?} is not a device id (a UUID, see `parta-collector device list`)")
    })?;
    book.device(parsed)
        .ok_or_else(|| anyhow::anyhow!("no enrolled device {parsed} (see `parta-collector device list`)"))
}

fn since(ms: i64) -> String {
    super::book::since(ms).unwrap_or_else(|| "the start".to_owned())
}
