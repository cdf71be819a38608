//! The service units and example configurations in `installers/` work with the real binaries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use parta_tests::util::{binary, workspace_root};

#[test]
fn systemd_units_verify_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for name in ["parta-agent", "parta-collector"] {
        let text =
            std::fs::read_to_string(workspace_root().join(format!("installers/systemd/{name}.service")))
                .unwrap();
        if name == "parta-collector" {
            // A flood of requests cannot take the machine: memory and tasks are capped.
            assert!(text.contains("\nMemoryMax=") && text.contains("\nTasksMax="), "{text}");
        }
        // Point ExecStart at the binaries just built (verify checks they are executable).
        let text = text.replace(&format!("/usr/bin/{name}"), binary(name).to_str().unwrap());
        let path = dir.path().join(format!("{name}.service"));
        std::fs::write(&path, text).unwrap();
        units.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg("--man=no")
        .args(&units)
        .output()
        .expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
}

#[test]
fn example_configurations_are_accepted_by_the_binaries() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("enroll-token"), "pt1_0123456789abcdef0123456789abcdef01234567\n")
        .unwrap();
    std::fs::write(dir.path().join("ca.pem"), "placeholder").unwrap();
    let shipped = std::fs::read_to_string(workspace_root().join("installers/config/agent.toml")).unwrap();
    // As shipped (the packages install it, then enroll, which writes the CA and collector): a
    // device not enrolled yet is told what is missing, as a configuration error.
    let agent_cfg = dir.path().join("agent.toml");
    let agent_config = |text: &str| {
        std::fs::write(&agent_cfg, text).unwrap();
        Command::new(binary("parta-agent"))
            .env_clear()
            .arg("--config")
            .arg(&agent_cfg)
            .arg("config")
            .output()
            .unwrap()
    };
    let out = agent_config(&shipped);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(78) && err.contains("missing setting `ca_cert`"), "{err}");
    // With the commented-out token file and CA (enrollment at the first session instead).
    let agent_toml = shipped
        .replace("# enroll_token_file =", "enroll_token_file =")
        .replace("# ca_cert =", "ca_cert =")
        .replace("/etc/parta/", &format!("{}/", dir.path().display()));
    let out = agent_config(&agent_toml);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["school"], "74-0012");
    assert_eq!(v["interval"], "1m");
    assert_eq!(v["enroll_token"], "<redacted>", "the token is never printed");

    let collector_cfg = workspace_root().join("installers/config/collector.toml");
    let out = Command::new(binary("parta-collector"))
        .env_clear()
        .arg("--config")
        .arg(&collector_cfg)
        .arg("config")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["quic_listen"], "0.0.0.0:4433");
    assert_eq!(v["speedtest_listen"], "0.0.0.0:4434");
    assert_eq!(v["tls"]["extra_names"][0], "parta.example.ru");
}
