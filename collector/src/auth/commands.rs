//! `parta-collector user …` and `parta-collector api-token …`.

use std::io::{BufRead as _, Write as _};

use anyhow::{Context as _, bail};

use super::{AccessScope, Role, check_password_strength, generate_api_token, hash_password, validate_login};
use crate::app::{abbreviate, migrated_store as store};
use crate::cli::{ApiTokenAction, OutputFormat, UserAction};
use crate::clock::rfc3339;
use crate::clock::{next_version, now_ms};
use crate::config::CollectorConfig;
use crate::storage::accounts::UserRow;
use crate::storage::{Store, now_secs};

/// One line from standard input, without its line ending.
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    check_password_strength(&pw).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(pw)
}

async fn find_user(store: &Store, login: &str) -> anyhow::Result<UserRow> {
    store
        .users()
        .await?
        .into_iter()
        .find(|u| u.login == login)
        .with_context(|| format!("no account {login:?} (see `parta-collector user list`)"))
}

fn hash(pw: &str) -> anyhow::Result<String> {
    hash_password(pw).map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// Where the registry's schools are.
async fn registry_places(store: &Store) -> anyhow::Result<Vec<super::Place>> {
    Ok(store
        .schools()
        .await?
        .into_iter()
        .map(|s| super::Place { region: s.region_code, municipality: s.municipality, name: s.name })
        .collect())
}

/// A scope as an account stores it: a municipality written without its region gets the one
/// region of the registry that has it; refused when several or none do (the account would
/// see nothing, or — once another region with that name is imported — the wrong schools).
async fn qualified(store: &Store, scope: AccessScope) -> anyhow::Result<AccessScope> {
    match scope.resolve(registry_places(store).await?.iter()) {
        AccessScope::Unresolved { scope, reason } => bail!("--scope {scope}: {reason}"),
        s => Ok(s),
    }
}

/// `user …`.
pub async fn user(config: &CollectorConfig, action: UserAction) -> anyhow::Result<()> {
    match action {
        UserAction::Add { login, role, scope, password_stdin } => {
            validate_login(&login).map_err(|e| anyhow::anyhow!("{e}"))?;
            let role = Role::parse(&role).map_err(|e| anyhow::anyhow!("--role: {e}"))?;
            let scope = AccessScope::parse(&scope).map_err(|e| anyhow::anyhow!("--scope: {e}"))?;
            if role == Role::Admin && scope != AccessScope::All {
                bail!("--scope: an admin sees every school; leave --scope out or use `all`");
            }
            let generated;
            let password = if password_stdin {
                read_password()?
            } else {
                let bytes: [u8; 12] = rand::RngExt::random(&mut rand::rng());
                generated = hex::encode(bytes);
                generated.clone()
            };
            let store = store(config).await?;
            let scope = qualified(&store, scope).await?;
            let previous = store.users().await?.into_iter().find(|u| u.login == login);
            let row = UserRow {
                login: login.clone(),
                role: role.as_str().to_owned(),
                scope: scope.to_string(),
                password_hash: hash(&password)?,
                disabled: 0,
                created_at: previous.as_ref().map_or_else(now_secs, |p| p.created_at),
                version: previous.as_ref().map_or_else(now_ms, |p| next_version(p.version)),
            };
            store.put_user(&row).await?;
            let verb = if previous.is_some() { "updated" } else { "added" };
            eprintln!("{verb} account {login} ({}, scope {scope})", role.as_str());
            if !password_stdin {
                eprintln!("its password, shown only once:");
                println!("{password}");
            }
        }
        UserAction::Passwd { login } => {
            let password = read_password()?;
            let store = store(config).await?;
            let mut row = find_user(&store, &login).await?;
            row.password_hash = hash(&password)?;
            row.version = next_version(row.version);
            store.put_user(&row).await?;
            eprintln!("password of {login} changed; its sessions have ended");
        }
        UserAction::Disable { login } => {
            let store = store(config).await?;
            let mut row = find_user(&store, &login).await?;
            row.disabled = 1;
            row.version = next_version(row.version);
            store.put_user(&row).await?;
            eprintln!("account {login} disabled; its sessions and API tokens no longer work");
        }
        UserAction::List { format } => {
            let store = store(config).await?;
            let rows = store.users().await?;
            let places = registry_places(&store).await?;
            // An account whose scope names no place for certain sees nothing: say so.
            let problem = |u: &UserRow| match AccessScope::parse(&u.scope).map(|s| s.resolve(places.iter())) {
                Ok(AccessScope::Unresolved { reason, .. }) => Some(reason.to_string()),
                Ok(_) => None,
                Err(e) => Some(e),
            };
            let mut out = std::io::stdout().lock();
            match format {
                OutputFormat::Json => {
                    let items: Vec<serde_json::Value> = rows
                        .iter()
                        .map(|u| {
                            serde_json::json!({
                                "login": u.login, "role": u.role, "scope": u.scope,
                                "disabled": u.disabled != 0, "created_at": rfc3339(u.created_at),
                                "scope_problem": problem(u),
                            })
                        })
                        .collect();
                    serde_json::to_writer_pretty(&mut out, &items)?;
                    writeln!(out)?;
                }
                OutputFormat::Text => {
                    writeln!(out, "{:<24} {:<8} {:<9} SCOPE", "LOGIN", "ROLE", "STATE")?;
                    for u in &rows {
                        let state = if u.disabled != 0 { "disabled" } else { "active" };
                        writeln!(out, "{:<24} {:<8} {:<9} {}", u.login, u.role, state, u.scope)?;
                        if let Some(why) = problem(u) {
                            writeln!(out, "  ! sees no school: {why}")?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// `api-token …`.
pub async fn api_token(config: &CollectorConfig, action: ApiTokenAction) -> anyhow::Result<()> {
    let store = store(config).await?;
    match action {
        ApiTokenAction::Create { user, comment } => {
            let account = find_user(&store, &user).await?;
            if account.disabled != 0 {
                bail!("account {user:?} is disabled");
            }
            let (token, row) = generate_api_token(&account, &comment, now_secs(), now_ms());
            store.put_api_token(&row).await?;
            eprintln!("created API token {} for {user}; it is shown only once:", row.token_id);
            println!("{token}");
        }
        ApiTokenAction::List { format } => {
            let rows = store.api_tokens().await?;
            let mut out = std::io::stdout().lock();
            match format {
                OutputFormat::Json => {
                    let items: Vec<serde_json::Value> = rows
                        .iter()
                        .map(|t| {
                            serde_json::json!({
                                "token_id": t.token_id, "user": t.login, "comment": t.comment,
                                "created_at": rfc3339(t.created_at), "revoked": t.revoked != 0,
                            })
                        })
                        .collect();
                    serde_json::to_writer_pretty(&mut out, &items)?;
                    writeln!(out)?;
                }
                OutputFormat::Text => {
                    writeln!(out, "{:<14} {:<24} {:<8} {:<21} COMMENT", "ID", "USER", "STATE", "CREATED")?;
                    for t in &rows {
                        let state = if t.revoked != 0 { "revoked" } else { "active" };
                        writeln!(
                            out,
                            "{:<14} {:<24} {:<8} {:<21} {}",
                            t.token_id,
                            t.login,
                            state,
                            rfc3339(t.created_at),
                            t.comment
                        )?;
                    }
                }
            }
        }
        ApiTokenAction::Revoke { token } => {
            let hashed = crate::tokens::hash(token.trim());
            let rows = store.api_tokens().await?;
            let Some(row) = rows.iter().find(|r| r.token_id == token.trim() || r.token_sha256 == hashed)
            else {
                bail!(
                    "no API token with id or value {:?} (see `parta-collector api-token list`)",
                    abbreviate(&token)
                );
            };
            let mut revoked = row.clone();
            revoked.revoked = 1;
            revoked.version = next_version(row.version);
            store.put_api_token(&revoked).await?;
            println!("revoked API token {} of {}", row.token_id, row.login);
        }
    }
    Ok(())
}
