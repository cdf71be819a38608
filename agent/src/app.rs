//! Command dispatch: parse the command line, resolve the configuration, set up logging, run the
//! command, map failures to exit codes.

use std::io::Write as _;

use anyhow::Context as _;
use clap::{CommandFactory, FromArgMatches};
use parta_common::EXIT_CONFIG;
use parta_common::settings::ConfigError;
use parta_protocol::{Report, Sample};

use crate::cli::{CheckCommand, Cli, Command, OutputFormat, SnmpCommand};
use crate::config::AgentConfig;
use crate::enroll::EnrollError;
use crate::sources::host::HostSource;
use crate::uplink::UplinkError;

/// Exit code when the collector permanently refuses the agent (`EX_NOPERM`).
pub const EXIT_REJECTED: u8 = 77;
/// The configuration file `enroll` writes when no --config is given.
pub const DEFAULT_CONFIG: &str = "/etc/parta/agent.toml";

/// Runs the agent's command line and returns the process exit code.
pub fn main() -> u8 {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    // `enroll` writes the configuration file: one that does not exist yet is no error.
    let enrolling = matches!(cli.command, Command::Enroll(_));
    let config = match AgentConfig::resolve_for(&cli.global, &matches, enrolling) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("parta-agent: {e}");
            return EXIT_CONFIG as u8;
        }
    };
    parta_common::logging::init(config.log.format, &config.log.level);
    let result = match cli.command {
        Command::Enroll(args) => {
            let cmd = crate::enroll::EnrollCommand {
                join: args.join,
                room: args.room,
                class: args.class,
                config_path: cli.global.common.config.clone().unwrap_or_else(|| DEFAULT_CONFIG.into()),
                force: args.force,
                new_device: args.new_device,
            };
            crate::enroll::command(&config, &cmd)
        }
        Command::Run => {
            config.uplink(&cli.global, &matches).map_err(anyhow::Error::from).and_then(|uplink| {
                let source = crate::policy::ConfigSource::of_process(cli.global.common.config.as_deref())?;
                let (config, policy) = with_last_policy(config, &source);
                let rt = service_runtime()?;
                let result = rt.block_on(crate::runner::run(config, uplink, source, policy));
                // An ЕСПД check may still be running on a blocking thread (a speed test, a DNS
                // timeout): the reports are safe in the spool, so the process does not wait for it.
                rt.shutdown_timeout(std::time::Duration::from_millis(500));
                result
            })
        }
        Command::Sample { format } => sample(&config, format),
        Command::Inventory { format } => inventory(&config, format),
        Command::Status { format } => crate::status::show(&config.state_dir, format),
        Command::Snmp(SnmpCommand::Profiles) => crate::snmp::diagnose::list_profiles(&config),
        Command::Snmp(SnmpCommand::Poll(args)) => match crate::snmp::diagnose::poll(&config, *args) {
            Ok(true) => Ok(()),
            // The reason is printed already.
            Ok(false) => return 1,
            Err(e) => Err(e),
        },
        Command::Check(CheckCommand::Espd { format }) => match check_espd(&config, format) {
            Ok(true) => Ok(()),
            Ok(false) => return 1,
            Err(e) => Err(e),
        },
        Command::Update(crate::cli::UpdateCommand::Install(args)) => {
            let installer = crate::update::install::Installer {
                state_dir: config.state_dir.clone(),
                binary: args.binary,
                work_dir: args.work_dir,
                key: args.key,
                health_timeout: args.update_health_timeout,
                restart: args.restart_command.split_whitespace().map(str::to_owned).collect(),
            };
            match installer.run() {
                Ok(
                    crate::update::install::Outcome::Nothing | crate::update::install::Outcome::Healthy(_),
                ) => Ok(()),
                Ok(
                    crate::update::install::Outcome::RolledBack(v, why)
                    | crate::update::install::Outcome::Failed(v, why),
                ) => {
                    eprintln!("parta-agent: {v} not installed: {why}");
                    return 1;
                }
                Err(e) => Err(e),
            }
        }
        Command::Config => show_config(&config, cli.global.common.config.as_deref()).and_then(|()| {
            config.uplink(&cli.global, &matches)?;
            eprintln!("configuration is complete for `parta-agent run`");
            Ok(())
        }),
    };
    match result {
        Ok(()) => 0,
        // `parta-agent sample | head`: the reader went away; not an error worth reporting.
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            eprintln!("parta-agent: {e:#}");
            exit_code(&e)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

fn exit_code(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.is::<ConfigError>() || c.is::<crate::tls::TlsError>()) {
        EXIT_CONFIG as u8
    } else if e.chain().any(|c| {
        c.is::<UplinkError>()
            || c.downcast_ref::<crate::enroll::EnrollError>().is_some_and(EnrollError::is_permanent)
    }) {
        EXIT_REJECTED
    } else {
        1
    }
}

/// The configuration with the last policy the collector sent applied, so that an agent that
/// starts offline runs it; without it (none yet, damaged, or no longer valid with this file)
/// the local configuration, said in the log.
fn with_last_policy(
    config: AgentConfig,
    source: &crate::policy::ConfigSource,
) -> (AgentConfig, Option<crate::policy::LastKnownGood>) {
    match crate::policy::LastKnownGood::load(&config.state_dir) {
        Ok(None) => (config, None),
        Ok(Some(p)) => match source.resolve(Some(&p.document)) {
            Ok(c) => {
                if c.log.level != config.log.level
                    && let Err(e) = parta_common::logging::set_filter(&c.log.level)
                {
                    tracing::warn!(error = %e, "cannot set the policy's log level");
                }
                (c, Some(p))
            }
            Err(e) => {
                tracing::warn!(policy = %p.id().short(), error = %e,
                    "the last policy the collector sent does not apply with this configuration; running without it until the collector sends one");
                (config, None)
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the last policy the collector sent; running without it");
            (config, None)
        }
    }
}

/// The service's runtime: two workers, so that while the runner does file work
/// ([`crate::runner`]'s `blocking`) the uplink and the SNMP poller go on; the ЕСПД checks run on
/// its blocking threads.
fn service_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .thread_name("parta-agent")
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The agent needs one thread: sampling is quick, the uplink is I/O.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `parta-agent config`: the resolved configuration as JSON — with the last policy the
/// collector sent applied — token redacted, and where each key set anywhere came from.
fn show_config(c: &AgentConfig, path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let source = crate::policy::ConfigSource::of_process(path)?;
    let (effective, policy) = with_last_policy(c.clone(), &source);
    let c = &effective;
    let origins = crate::policy::origins(&source, policy.as_ref());
    let credential = crate::credential::load(&c.state_dir).ok().flatten();
    let v = serde_json::json!({
        "collector": c.collectors.iter().map(crate::config::CollectorAddr::to_socket_string).collect::<Vec<_>>(),
        "server_name": c.server_name,
        "ca_cert": c.ca_cert,
        "enroll_token": c.enroll_token.as_ref().map(|_| "<redacted>"),
        "school": c.school,
        "kind": c.kind.as_str(),
        "state_dir": c.state_dir,
        "enrolled": credential.as_ref().map(|c| serde_json::json!({
            "device_id": c.device_id.to_string(),
            "school": c.school,
            "credential_expires": crate::enroll::rfc3339_ms(c.not_after_ms),
        })),
        "interval": humantime::format_duration(c.interval).to_string(),
        "room": c.usage.room,
        "equipment_class": c.usage.equipment_class.map(|k| k.as_str()),
        "hostname_mode": c.usage.hostname_mode.as_str(),
        "user_hash_salt_file": c.usage.user_hash_salt_file,
        "sysfs": c.paths.sysfs,
        "procfs": c.paths.procfs,
        "rootfs": c.paths.rootfs,
        "log_format": format!("{:?}", c.log.format).to_lowercase(),
        "log_level": c.log.level,
        "snmp_targets": c.snmp.targets.iter().map(|t| serde_json::json!({
            "address": t.address,
            "version": format!("{:?}", t.version).to_lowercase(),
            "interval": humantime::format_duration(t.interval).to_string(),
            "label": t.label,
            "room": t.room,
        })).collect::<Vec<_>>(),
        "snmp_concurrency": c.snmp.concurrency,
        "snmp_profiles_dir": c.snmp.profiles_dir,
        "display_profiles_dir": c.usage.display_profiles_dir,
        "espd": {
            "enabled": c.espd.enabled,
            "every": humantime::format_duration(c.espd.every).to_string(),
            "locality": c.espd.locality.as_str(),
            "required_mbps": c.espd.required_mbps,
            "resolvers": c.espd.resolvers.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "must_reach": c.espd.must_reach,
            "must_block": c.espd.must_block,
            "block_markers": c.espd.block_markers,
            "latency_target": c.espd.latency_target,
            "latency_method": c.espd.latency_method.as_str(),
            "timeout": humantime::format_duration(c.espd.timeout).to_string(),
        },
        "policy": policy.as_ref().map(|p| serde_json::json!({
            "version": p.version,
            "sha256": p.hash,
        })),
        "origins": origins,
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// `check espd`: every check once; `Ok(true)` when all passed.
fn check_espd(config: &AgentConfig, format: OutputFormat) -> anyhow::Result<bool> {
    let tls = config.espd.tls_config()?;
    // Without a credential (and none to be had) the other checks still run.
    let identity = speedtest_identity(config).unwrap_or_else(|e| {
        eprintln!("parta-agent: no speed test: {e:#}");
        None
    });
    let speedtest = crate::espd::speedtest_target(config, identity);
    let run = crate::espd::run_checks(
        &config.espd,
        tls,
        parta_protocol::espd::RunTrigger::Manual,
        speedtest.as_ref(),
    );
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &run)?;
            writeln!(out)?;
        }
        OutputFormat::Text => crate::espd::write_text(&mut out, &run)?,
    }
    Ok(run.checks.iter().all(|c| c.outcome.passed()))
}

/// The device's identity for a speed test: its credential, or — on a device that has not
/// enrolled but has a token, as when commissioning a school before the agent ever ran — a
/// credential obtained now, as the first session would. `None` when neither is possible.
fn speedtest_identity(
    config: &AgentConfig,
) -> anyhow::Result<Option<std::sync::Arc<crate::credential::Identity>>> {
    let enrolled = config.state_dir.join(crate::credential::CERT_FILE).exists();
    if enrolled {
        return Ok(Some(std::sync::Arc::new(crate::credential::Identity::load(&config.state_dir)?)));
    }
    let (Some(ca), Some(token)) = (&config.ca_cert, &config.enroll_token) else {
        return Ok(None);
    };
    if config.collectors.is_empty() {
        return Ok(None);
    }
    let identity = std::sync::Arc::new(crate::credential::Identity::load(&config.state_dir)?);
    let c = runtime()?.block_on(crate::enroll::enroll(
        &config.collectors,
        config.server_name.as_deref(),
        crate::tls::Trust::CaFile(ca),
        &config.state_dir,
        &identity.key,
        token,
        config.kind,
    ))?;
    eprintln!("enrolled as device {} of school {} (needed for the speed test)", c.device_id, c.school);
    identity.set(Some(c));
    Ok(Some(identity))
}

/// `parta-agent sample`: one report's worth of samples, printed, not sent.
fn sample(config: &AgentConfig, format: OutputFormat) -> anyhow::Result<()> {
    let mut host = HostSource::new()?;
    let inventory = read_inventory(config);
    std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
    // As it would be sent (crate::privacy).
    let privacy = crate::privacy::Privacy::new(config.usage.hostname_mode, &config.paths, []);
    let metrics = privacy.metrics(host.metrics(std::time::Instant::now()));
    let report = Report {
        seq: 0,
        agent_time_ms: crate::runner::now_ms(),
        samples: vec![
            Sample::HostInfo(privacy.host_info(host.info(&inventory))),
            Sample::HostMetrics(metrics),
            Sample::Inventory(Box::new(privacy.inventory(inventory))),
        ],
    };
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &report.samples)?;
            writeln!(out)?;
        }
        OutputFormat::Text => write_text(&mut out, &report.samples)?,
    }
    Ok(())
}

/// The inventory for the commands that print it without running the agent. Display ids without
/// an EDID serial derive from the device id; before the first `run` there is none yet, and the
/// nil id stands in.
fn read_inventory(config: &AgentConfig) -> parta_protocol::inventory::Inventory {
    let options = inventory_options_now(config);
    crate::sources::inventory::InventorySource::new(config.paths.clone(), options).read()
}

fn inventory_options_now(config: &AgentConfig) -> crate::sources::inventory::InventoryOptions {
    let device_id =
        crate::identity::load(&config.state_dir).unwrap_or(parta_protocol::DeviceId(uuid::Uuid::nil()));
    crate::observer::inventory_options(config, device_id)
}

/// `parta-agent inventory`: the inventory as it would be sent; in text, with how each
/// display's id, size and class were decided.
fn inventory(config: &AgentConfig, format: OutputFormat) -> anyhow::Result<()> {
    let inv = read_inventory(config);
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &inv)?;
            writeln!(out)?;
        }
        OutputFormat::Text => {
            write_inventory_text(&mut out, &inv)?;
            let options = inventory_options_now(config);
            let connectors = crate::sources::drm::read(&config.paths);
            let explained =
                crate::sources::inventory::explained_displays(&options, &connectors, &mut Vec::new());
            for (d, reasons) in explained {
                writeln!(
                    out,
                    "\ndisplay {} ({} {}):",
                    d.connector,
                    d.manufacturer,
                    d.name.as_deref().unwrap_or("-")
                )?;
                for r in reasons {
                    writeln!(out, "  {r}")?;
                }
            }
        }
    }
    Ok(())
}

fn write_inventory_text(
    out: &mut impl std::io::Write,
    inv: &parta_protocol::inventory::Inventory,
) -> std::io::Result<()> {
    const GB: u64 = 1_000_000_000;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let class = inv.equipment_class.map_or("-", |c| c.as_str());
    let source = inv.class_source.map_or("-", parta_protocol::inventory::ClassSource::as_str);
    writeln!(out, "host:      {}", inv.hostname)?;
    writeln!(out, "room:      {}", if inv.room.is_empty() { "-" } else { &inv.room })?;
    writeln!(out, "class:     {class} ({source})")?;
    writeln!(out, "os:        {} {} {}", inv.os.name, inv.os.version, inv.os.edition)?;
    if !inv.os.release_fields.is_empty() {
        let raw: Vec<String> = inv.os.release_fields.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        writeln!(out, "os-release: {}", raw.join(" "))?;
    }
    writeln!(out, "kernel:    {}", inv.kernel)?;
    let d = &inv.dmi;
    writeln!(
        out,
        "hardware:  {} {} serial {} chassis {}",
        opt(&d.vendor),
        opt(&d.product),
        opt(&d.serial),
        d.chassis_type.map_or_else(|| "-".into(), |c| c.to_string())
    )?;
    writeln!(out, "bios:      {} {} {}", opt(&d.bios_vendor), opt(&d.bios_version), opt(&d.bios_date))?;
    writeln!(out, "cpu:       {} ({} cores, {} threads)", inv.cpu.model, inv.cpu.cores, inv.cpu.logical)?;
    writeln!(out, "memory:    {:.1} GB", inv.memory_bytes as f64 / GB as f64)?;
    for disk in &inv.disks {
        let media = match disk.media {
            Some(parta_protocol::inventory::Media::Ssd) => "SSD",
            Some(parta_protocol::inventory::Media::Hdd) => "HDD",
            None => "?",
        };
        writeln!(out, "disk:      {} {} {} GB {media}", disk.name, opt(&disk.model), disk.size_bytes / GB)?;
    }
    for nic in &inv.nics {
        let mac = nic.mac.map_or_else(|| "-".into(), |m| m.to_string());
        let speed = nic.speed_mbps.map_or_else(|| "-".into(), |s| format!("{s} Mbit/s"));
        writeln!(out, "nic:       {} {mac} {speed}{}", nic.name, if nic.wireless { " Wi-Fi" } else { "" })?;
    }
    for disp in &inv.displays {
        writeln!(
            out,
            "display:   {} {} {} serial {} {:.1}\" ({}) {} ({}) {}",
            disp.connector,
            disp.manufacturer,
            opt(&disp.name),
            opt(&disp.serial),
            f64::from(disp.diagonal_decimal_in) / 10.0,
            disp.size_source.as_str(),
            disp.equipment_class,
            disp.class_source.as_str(),
            disp.device_id
        )?;
    }
    Ok(())
}

fn write_text(out: &mut impl std::io::Write, samples: &[Sample]) -> std::io::Result<()> {
    const MIB: u64 = 1024 * 1024;
    for s in samples {
        match s {
            Sample::HostInfo(i) => {
                writeln!(out, "host:      {}", i.hostname)?;
                writeln!(out, "os:        {} {} {}", i.os.name, i.os.version, i.os.edition)?;
                writeln!(out, "kernel:    {}", i.kernel)?;
                let dmi = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                writeln!(
                    out,
                    "hardware:  {} {} serial {}",
                    dmi(&i.dmi.vendor),
                    dmi(&i.dmi.product),
                    dmi(&i.dmi.serial)
                )?;
                for nic in &i.interfaces {
                    let mac = nic.mac.map_or_else(|| "-".into(), |m| m.to_string());
                    writeln!(out, "interface: {} {mac}", nic.name)?;
                }
            }
            Sample::SpoolLoss(l) => {
                writeln!(
                    out,
                    "spool loss: {} reports #{}–#{} ({})",
                    l.reports,
                    l.first_seq,
                    l.last_seq,
                    l.reason.as_str()
                )?;
            }
            Sample::Inventory(inv) => write_inventory_text(out, inv)?,
            Sample::Usage(intervals) => {
                for i in intervals {
                    let subject = match i.subject {
                        parta_protocol::usage::Subject::Host => "host".to_owned(),
                        parta_protocol::usage::Subject::Display(d) => format!("display {d}"),
                    };
                    writeln!(
                        out,
                        "usage:     {subject} {} {} s ({})",
                        i.state.as_str(),
                        i.duration_ms() / 1000,
                        i.user_class.as_str()
                    )?;
                }
            }
            Sample::Power(e) => {
                writeln!(out, "power:     {:?} at {} ms (boot {})", e.kind, e.at_ms, e.boot_id)?
            }
            Sample::Snmp(p) => crate::snmp::diagnose::write_text(out, p)?,
            Sample::Connectivity(run) => crate::espd::write_text(out, run)?,
            Sample::HostMetrics(m) => {
                writeln!(
                    out,
                    "uptime:    {}",
                    humantime::format_duration(std::time::Duration::from_secs(m.uptime_s))
                )?;
                writeln!(out, "cpu:       {:.1} %", m.cpu_percent)?;
                writeln!(out, "memory:    {} / {} MiB", m.mem_used / MIB, m.mem_total / MIB)?;
                for fs in &m.filesystems {
                    writeln!(
                        out,
                        "fs:        {} ({}) {} MiB free of {} MiB",
                        fs.mount,
                        fs.fs_type,
                        fs.available / MIB,
                        fs.total / MIB
                    )?;
                }
                for nic in &m.interfaces {
                    writeln!(out, "traffic:   {} rx {} B tx {} B", nic.name, nic.rx_bytes, nic.tx_bytes)?;
                }
            }
        }
    }
    Ok(())
}
