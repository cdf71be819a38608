//! `parta-agent snmp poll` and `parta-agent snmp profiles`: what installers run on site to
//! check a device before adding it to the configuration.

use std::io::Write;

use anyhow::Context as _;
use parta_common::settings;
use parta_protocol::snmp::SnmpPoll;

use super::poller::{self, PollerSettings, Rates};
use super::profile::Profiles;
use super::target::TargetSpec;
use crate::cli::{OutputFormat, SnmpPollArgs};
use crate::config::AgentConfig;

/// `snmp profiles`.
pub fn list_profiles(config: &AgentConfig) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for (name, prefixes) in Profiles::load(Some(&config.snmp.profiles_dir))?.describe() {
        writeln!(out, "{name:<12} {}", if prefixes.is_empty() { "(any device)".into() } else { prefixes })?;
    }
    Ok(())
}

/// `snmp poll`: returns whether the device answered.
pub fn poll(config: &AgentConfig, args: SnmpPollArgs) -> anyhow::Result<bool> {
    let spec = TargetSpec {
        address: Some(args.address),
        version: args.snmp_version,
        community: args.community,
        user: args.user,
        auth_proto: args.auth_proto,
        auth_pass: args.auth_pass,
        priv_proto: args.priv_proto,
        priv_pass: args.priv_pass,
        timeout: args.timeout,
        retries: args.retries,
        profile: args.profile,
        ..TargetSpec::default()
    };
    let mut target = spec.resolve(config.snmp.defaults).map_err(|e| {
        let flag = if e.field == "address" {
            "ADDRESS".to_owned()
        } else {
            format!("--{}", e.field.replace('_', "-"))
        };
        let value = if e.value.is_empty() { "<redacted>".to_owned() } else { e.value };
        anyhow::Error::new(settings::ConfigError::Invalid {
            origin: settings::Origin::Flag(flag),
            value,
            reason: e.reason,
        })
    })?;
    let rates_after = args
        .rates_after
        .as_deref()
        .map(|t| {
            settings::parse_duration_within(
                t,
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(600),
            )
            .map_err(|reason| settings::ConfigError::Invalid {
                origin: settings::Origin::Flag("--rates-after".into()),
                value: t.to_owned(),
                reason,
            })
        })
        .transpose()?;
    // A poll is bounded by the target's interval; on site, give a slow device ten minutes.
    target.interval = std::time::Duration::from_secs(600);
    let settings = PollerSettings::new(&config.snmp, config.school.clone().unwrap_or_default())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let poll = rt.block_on(async {
        let mut rates = Rates::default();
        let mut session = None;
        let first = poller::poll_once(&target, &settings, &mut rates, &mut session).await;
        match rates_after {
            Some(d) if first.outcome.reachable() => {
                tokio::time::sleep(d).await;
                poller::poll_once(&target, &settings, &mut rates, &mut session).await
            }
            _ => first,
        }
    });
    let mut out = std::io::stdout().lock();
    match args.format {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &poll)?;
            writeln!(out)?;
        }
        OutputFormat::Text => write_text(&mut out, &poll)?,
    }
    if !poll.outcome.reachable() {
        eprintln!("parta-agent: {} ({})", poll.error, poll.outcome.as_str());
    }
    Ok(poll.outcome.reachable())
}

const OPER: [&str; 8] = ["?", "up", "down", "testing", "unknown", "dormant", "notPresent", "lowerLayerDown"];

/// A poll for people.
pub fn write_text(out: &mut impl Write, p: &SnmpPoll) -> std::io::Result<()> {
    writeln!(
        out,
        "snmp:      {} {} ({}, profile {})",
        p.target,
        p.outcome.as_str(),
        p.kind.as_str(),
        p.profile
    )?;
    if !p.error.is_empty() {
        writeln!(out, "error:     {}", p.error)?;
    }
    if let Some(s) = &p.system {
        writeln!(out, "sysDescr:  {}", s.descr)?;
        writeln!(out, "sysObjectID: {}  sysName: {}  sysLocation: {}", s.object_id, s.name, s.location)?;
        let up = std::time::Duration::from_secs(u64::from(s.uptime_cs / 100));
        writeln!(
            out,
            "uptime:    {}{}",
            humantime::format_duration(up),
            if s.rebooted { " (rebooted since the previous poll)" } else { "" }
        )?;
    }
    if let Some(serial) = &p.serial {
        writeln!(out, "serial:    {serial}")?;
    }
    for i in &p.interfaces {
        let oper = OPER.get(usize::from(i.oper_status)).unwrap_or(&"?");
        let rates = match (i.in_bps, i.out_bps) {
            (Some(a), Some(b)) => format!(" rx {:.1} Mbit/s tx {:.1} Mbit/s", a as f64 / 1e6, b as f64 / 1e6),
            _ => String::new(),
        };
        writeln!(
            out,
            "if {:>4}:   {:<16} {:<5} {:>6} Mbit/s in {} out {} ({}-bit){rates} {}",
            i.index,
            if i.name.is_empty() { &i.descr } else { &i.name },
            oper,
            i.speed_mbps,
            i.in_octets,
            i.out_octets,
            i.counter_bits,
            i.alias
        )?;
    }
    if let Some(pr) = &p.printer {
        writeln!(
            out,
            "pages:     {} (markers {:?}); device status {:?}, printer status {:?}",
            pr.life_count(),
            pr.markers,
            pr.device_status,
            pr.printer_status
        )?;
    }
    Ok(())
}
