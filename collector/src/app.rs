//! Command dispatch: parse, resolve configuration, set up logging, run, map errors to exit codes.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{CommandFactory, FromArgMatches};
use parta_common::EXIT_CONFIG;
use parta_common::settings::ConfigError;
use tokio::sync::{mpsc, watch};

use crate::api::{self, ApiState};
use crate::cli::{Cli, Command, RollupsAction};
use crate::config::CollectorConfig;
use crate::fleet::book::DeviceBook;
use crate::fleet::enroll::{Enroller, FleetCtx};
use crate::ingest::registry::Registry;
use crate::ingest::session::SessionCtx;
use crate::ingest::{Memory, batcher, server};
use crate::metrics::Metrics;
use crate::storage::Store;
use crate::storage::schema::{self, ServerVersion};
use crate::tokens::TokenCache;

/// Runs the collector's command line and returns the process exit code.
pub fn main() -> u8 {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let config = match CollectorConfig::resolve(&cli.global, &matches) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("parta-collector: {e}");
            return EXIT_CONFIG as u8;
        }
    };
    parta_common::logging::init(config.log.format, &config.log.level);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("parta-collector: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => serve(config).await,
            Command::Config => show_config(&config),
            Command::Migrate { print_sql, server_version } => {
                migrate(&config, print_sql, server_version).await
            }
            Command::Token { action } => crate::fleet::commands::token(&config, action).await,
            Command::Device { action } => crate::fleet::commands::device(&config, action).await,
            Command::Schools { action } => crate::compliance::commands::schools(&config, action).await,
            Command::Inventory { action } => crate::compliance::commands::inventory(&config, action).await,
            Command::Profiles { action } => crate::compliance::commands::profiles(&config, &action),
            Command::Report { kind } => crate::compliance::commands::report(&config, kind).await,
            Command::User { action } => crate::auth::commands::user(&config, action).await,
            Command::ApiToken { action } => crate::auth::commands::api_token(&config, action).await,
            Command::Rollups { action } => rollups(&config, action).await,
            Command::Policy { action } => crate::policy::commands::policy(&config, action).await,
            Command::Release { action } => crate::release::commands::release(&config, action).await,
        }
    });
    // Sessions may still hold connections; do not wait for them at exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => 0,
        Err(e) if e.is::<crate::compliance::import::DataError>() => {
            // Lines of `FILE:LINE: …`, as compilers print them.
            eprintln!("{e}");
            EXIT_DATA
        }
        Err(e) => {
            eprintln!("parta-collector: {e:#}");
            if e.chain().any(|c| {
                c.is::<ConfigError>()
                    || c.is::<crate::tls::TlsError>()
                    || c.is::<crate::compliance::profile::ProfileError>()
            }) {
                EXIT_CONFIG as u8
            } else if e.chain().any(|c| c.is::<crate::compliance::import::DataError>()) {
                EXIT_DATA
            } else {
                1
            }
        }
    }
}

/// Exit code of a command whose input file is wrong (sysexits EX_DATAERR).
pub const EXIT_DATA: u8 = 65;

/// `serve`: everything, until SIGTERM/SIGINT.
async fn serve(config: CollectorConfig) -> anyhow::Result<()> {
    // A broken regional profile is a configuration error: say so before serving anything.
    let profiles = crate::compliance::commands::profiles_of(&config)?;
    let identity = crate::tls::identity(&config.tls, &config.data_dir)?;
    let device_ca = Arc::new(crate::fleet::ca::DeviceCa::load_or_create(&config.data_dir)?);
    let quic_config = crate::tls::server_config(&identity, device_ca.cert())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut stop_signal = std::pin::pin!(parta_common::shutdown::signal());

    // ClickHouse may start after us (boot order, quick start): wait for it, saying so.
    let store = tokio::select! {
        s = connect_and_migrate(&config) => s,
        () = &mut stop_signal => return Ok(()),
    };

    let metrics = Arc::new(Metrics::new());
    let registry = Arc::new(Registry::new());
    let tokens = Arc::new(TokenCache::new());
    if let Err(e) = tokens.refresh(&store).await {
        tracing::warn!(error = %e, "cannot load enrollment tokens yet");
    }
    let book = Arc::new(DeviceBook::new());
    let (jobs_tx, jobs_rx) = mpsc::channel(config.ingest.queue);
    let memory = Memory::new(config.ingest.queue, config.ingest.queue_bytes);
    let batcher = tokio::spawn(batcher::run(
        jobs_rx,
        store.clone(),
        Arc::clone(&registry),
        Arc::clone(&metrics),
        memory.clone(),
        config.ingest,
    ));
    let refresher = tokio::spawn(crate::refresh::keep_fresh(
        "token",
        stop_rx.clone(),
        (Arc::clone(&tokens), store.clone()),
        |(view, store)| async move { view.refresh(&store).await },
    ));
    let revoke_sessions = Arc::clone(&registry);
    let fleet_refresher = tokio::spawn(crate::fleet::book::refresh_loop(
        Arc::clone(&book),
        store.clone(),
        move |device| {
            tracing::info!(%device, "device revoked: ending its session");
            revoke_sessions.revoke(device);
        },
        stop_rx.clone(),
    ));
    let (enroller, enroll_task) = Enroller::start(FleetCtx {
        store: store.clone(),
        book: Arc::clone(&book),
        ca: Arc::clone(&device_ca),
        validity: config.fleet.cert_validity,
    });

    let endpoint = server::bind(config.quic_listen, quic_config)
        .with_context(|| format!("cannot listen for agents on UDP {}", config.quic_listen))?;
    let listener = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", config.http_listen))?;
    let speedtest = match config.speedtest_listen {
        Some(addr) => {
            let cfg = crate::tls::speedtest_server_config(&identity, device_ca.cert())
                .context("speed-test TLS configuration")?;
            let endpoint = server::bind(addr, cfg)
                .with_context(|| format!("cannot listen for speed tests on UDP {addr}"))?;
            tracing::info!(speedtest = %endpoint.local_addr().map_or_else(|_| addr.to_string(), |a| a.to_string()), "speed-test service ready");
            let st = Arc::new(crate::speedtest::SpeedTestCtx::new(
                store.clone(),
                Arc::clone(&book),
                config.speedtest,
            ));
            Some((endpoint.clone(), tokio::spawn(crate::speedtest::run(endpoint, st, stop_rx.clone()))))
        }
        None => None,
    };
    let policy_key = crate::policy::secrets::PolicyKey::load(&config.data_dir)?;
    let policies = Arc::new(crate::policy::book::PolicyBook::new(policy_key).with_profiles(&profiles));
    if let Err(e) = policies.refresh(&store).await {
        tracing::warn!(error = %e, "cannot load policies yet");
    }
    let policy_refresher = tokio::spawn(crate::refresh::keep_fresh(
        "policy",
        stop_rx.clone(),
        (Arc::clone(&policies), store.clone()),
        |(view, store)| async move { view.refresh(&store).await },
    ));
    let (policy_status, status_writer) = crate::policy::deliver::start_writer(store.clone());
    let releases = Arc::new(crate::release::book::ReleaseBook::new(config.data_dir.clone()));
    if let Err(e) = releases.refresh(&store).await {
        tracing::warn!(error = %e, "cannot load releases yet");
    }
    let release_refresher = tokio::spawn(crate::refresh::keep_fresh(
        "release",
        stop_rx.clone(),
        (Arc::clone(&releases), store.clone()),
        |(view, store)| async move { view.refresh(&store).await },
    ));
    let (update_status, update_writer) = crate::release::serve::start_writer(store.clone());
    let courier = crate::release::serve::Courier {
        book: releases,
        status: update_status,
        bandwidth: Arc::new(crate::release::serve::Bandwidth::new(config.fleet.release_bandwidth_mbit)),
    };
    let ctx = Arc::new(SessionCtx {
        store: store.clone(),
        tokens,
        book: Arc::clone(&book),
        enroller,
        cert_validity: config.fleet.cert_validity,
        registry,
        jobs: jobs_tx,
        memory,
        metrics: Arc::clone(&metrics),
        collector_name: host_name(),
        shutdown: stop_rx.clone(),
        policies: Arc::clone(&policies),
        policy_status,
        courier,
    });
    let quic =
        tokio::spawn(server::run(endpoint.clone(), ctx, config.ingest.max_handshakes, stop_rx.clone()));
    let key = crate::auth::Accounts::load_key(&config.data_dir)
        .with_context(|| format!("session key in {}", config.data_dir.display()))?;
    let accounts = Arc::new(crate::auth::Accounts::new(key));
    if let Err(e) = accounts.refresh(&store).await {
        tracing::warn!(error = %e, "cannot load accounts yet");
    }
    let app = api::router(Arc::new(ApiState {
        store: store.clone(),
        metrics,
        profiles: Arc::new(profiles),
        accounts,
        book: Arc::clone(&book),
        web: config.web.clone(),
        policies: Arc::clone(&policies),
        policy_drift_after: config.fleet.policy_drift_after,
    }));
    let mut http_stop = stop_rx.clone();
    let http = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async move {
                parta_common::shutdown::stopped(&mut http_stop).await;
            })
            .await
    });
    tracing::info!(quic = %endpoint.local_addr().map_or_else(|_| config.quic_listen.to_string(), |a| a.to_string()),
        http = %config.http_listen, clickhouse = %config.clickhouse.url, database = %config.clickhouse.database,
        server_version = %store.version(), "collector ready");
    if let Some(ca) = &identity.generated_ca {
        tracing::info!(ca_cert = %ca.display(), "agents trust this CA: `parta-collector token create` prints join strings that pin it");
    }

    stop_signal.await;
    tracing::info!("stopping: no new sessions; storing what is queued");
    let _ = stop_tx.send(true);
    endpoint.close(
        quinn::VarInt::from_u32(parta_protocol::RejectReason::ShuttingDown.code()),
        b"collector stopping",
    );
    if let Some((endpoint, task)) = speedtest {
        endpoint.close(quinn::VarInt::from_u32(0), b"collector stopping");
        task.abort();
    }
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        let _ = quic.await;
        let _ = batcher.await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("reports still queued at exit were not acknowledged; agents will resend them");
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), http).await;
    refresher.abort();
    fleet_refresher.abort();
    policy_refresher.abort();
    release_refresher.abort();
    // The sessions are gone, and with them the status senders: the writers store what they hold.
    let _ = tokio::time::timeout(Duration::from_secs(2), status_writer).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), update_writer).await;
    enroll_task.abort();
    Ok(())
}

async fn connect_and_migrate(config: &CollectorConfig) -> Store {
    let mut pause = Duration::from_millis(500);
    loop {
        match Store::connect(&config.clickhouse).await {
            Ok(store) => match store.migrate().await {
                Ok(_) => return store,
                Err(e) => tracing::warn!(error = %e, retry_in = ?pause, "schema migration failed"),
            },
            Err(e) => tracing::warn!(error = %e, retry_in = ?pause, "waiting for ClickHouse"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

/// `config`: the resolved configuration as JSON, password redacted.
fn show_config(c: &CollectorConfig) -> anyhow::Result<()> {
    let tls = match &c.tls {
        crate::config::TlsSource::Files { cert, key } => serde_json::json!({ "cert": cert, "key": key }),
        crate::config::TlsSource::Generated { extra_names } => {
            serde_json::json!({ "generated_in": c.data_dir, "extra_names": extra_names })
        }
    };
    let v = serde_json::json!({
        "clickhouse_url": c.clickhouse.url,
        "clickhouse_database": c.clickhouse.database,
        "clickhouse_user": c.clickhouse.user,
        "clickhouse_password": if c.clickhouse.password.is_empty() { "" } else { "<redacted>" },
        "quic_listen": c.quic_listen,
        "speedtest_listen": c.speedtest_listen.map_or_else(|| "off".to_owned(), |a| a.to_string()),
        "speedtest_per_hour": c.speedtest.per_school_per_hour,
        "speedtest_concurrent": c.speedtest.concurrent,
        "speedtest_max_mb": c.speedtest.max_bytes / 1_000_000,
        "http_listen": c.http_listen,
        "web_timezone": c.web.timezone,
        "web_cookie_secure": c.web.cookie_secure,
        "web_trusted_proxies": c.web.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "data_dir": c.data_dir,
        "tls": tls,
        "batch_max_reports": c.ingest.batch_max_reports,
        "batch_max_delay": humantime::format_duration(c.ingest.batch_max_delay).to_string(),
        "ingest_queue": c.ingest.queue,
        "ingest_queue_bytes": c.ingest.queue_bytes,
        "max_handshakes": c.ingest.max_handshakes,
        "join_addresses": c.fleet.join_addresses,
        "release_key": c.fleet.release_key.as_ref().map(parta_protocol::release::key_id_text),
        "release_bandwidth_mbit": c.fleet.release_bandwidth_mbit,
        "device_cert_validity": humantime::format_duration(c.fleet.cert_validity).to_string(),
        "log_format": format!("{:?}", c.log.format).to_lowercase(),
        "log_level": c.log.level,
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// `migrate`.
async fn migrate(
    config: &CollectorConfig,
    print_sql: bool,
    server_version: Option<String>,
) -> anyhow::Result<()> {
    let db = &config.clickhouse.database;
    if print_sql {
        let version = match server_version {
            Some(v) => ServerVersion::parse(&v).map_err(anyhow::Error::msg).context("--server-version")?,
            None => Store::connect(&config.clickhouse).await?.version(),
        };
        let mut out = std::io::stdout().lock();
        for stmt in schema::all_statements(db, version.caps()) {
            writeln!(out, "{stmt};\n")?;
        }
        return Ok(());
    }
    let store = Store::connect(&config.clickhouse).await?;
    let applied = store.migrate().await?;
    if applied.is_empty() {
        println!("schema of database {db} is up to date (ClickHouse {})", store.version());
    } else {
        println!("applied migrations {applied:?} to database {db} (ClickHouse {})", store.version());
    }
    Ok(())
}

/// How many schools one rollup statement recomputes.
const ROLLUP_BATCH: usize = 50;

/// `rollups rebuild`: recomputes the school-day rollups a batch of schools at a time, with
/// progress on standard error.
async fn rollups(config: &CollectorConfig, action: RollupsAction) -> anyhow::Result<()> {
    use crate::api::usage::{DayRange, parse_date};
    let today = || crate::clock::to_time_date(crate::clock::today_in(&config.web.timezone));
    let RollupsAction::Rebuild { from, to, schools } = action;
    for school in &schools {
        parta_protocol::validate::validate_school_id(school)
            .map_err(|e| anyhow::anyhow!("--school {school:?}: {e}"))?;
    }
    let to =
        to.map_or_else(|| Ok(today()), |s| parse_date("--to", &s)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let from = from
        .map_or_else(|| Ok(to.saturating_sub(time::Duration::days(89))), |s| parse_date("--from", &s))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let range = DayRange::new(from, to).map_err(|e| anyhow::anyhow!("--from/--to: {e}"))?;
    let (from, to) = range.strings();
    let store = migrated_store(config).await?;
    let schools = if schools.is_empty() { store.reporting_schools().await? } else { schools };
    let started = std::time::Instant::now();
    let mut done = 0;
    for batch in schools.chunks(ROLLUP_BATCH) {
        store.rollup_school_days(batch, &from, &to).await.context("usage rollup")?;
        store.rollup_espd_days(batch, &from, &to).await.context("ЕСПД rollup")?;
        done += batch.len();
        eprintln!(
            "rollups {from} … {to}: {done}/{} schools ({:.1} s)",
            schools.len(),
            started.elapsed().as_secs_f64()
        );
    }
    eprintln!("rebuilt the rollups of {done} schools for {from} … {to}");
    Ok(())
}

/// Never echo a whole secret back.
pub(crate) fn abbreviate(s: &str) -> String {
    if s.len() > 16 { format!("{}…", s.chars().take(12).collect::<String>()) } else { s.to_owned() }
}

/// A store whose schema is current: what every command that reads or writes data starts with.
pub(crate) async fn migrated_store(config: &CollectorConfig) -> anyhow::Result<Store> {
    let store = Store::connect(&config.clickhouse).await?;
    store.migrate().await?;
    Ok(store)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "collector".into(), |s| s.trim().to_owned())
}
