//! `parta-release`: a key pair, a signature, and every refusal a device makes, through the real
//! binary (the checks themselves are `parta_protocol::release`, which the agents use).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use parta_tests::util::binary;

/// Runs `parta-release ARGS` and returns (exit code, stdout + stderr).
fn release(args: &[&str]) -> (i32, String) {
    let out = Command::new(binary("parta-release")).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap(), text)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn signed_builds_verify_and_every_bad_one_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, other) = (dir.path().join("keys"), dir.path().join("other"));
    let (code, said) = release(&["keygen", "--out", s(&keys)]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("never on the collector"), "{said}");
    let (key, public) = (keys.join("release.key"), keys.join("release.pub"));
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // A second keygen would orphan every device pinned to the first key: refused.
    let (code, said) = release(&["keygen", "--out", s(&keys)]);
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("--force"), "{said}");
    assert_eq!(release(&["keygen", "--out", s(&other)]).0, 0);

    // The artifact: the agent binary as built, stamped with the version it is released as. A
    // build stamped otherwise is not signed as another version.
    let artifact = dir.path().join("parta-agent");
    let (code, said) = release(&["sign", "--key", s(&key), "--version", "0.2.0", s(&binary("parta-agent"))]);
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("is stamped 0.1.0, not 0.2.0"), "{said}");
    let (code, said) =
        release(&["stamp", "--version", "0.2.0", "--out", s(&artifact), s(&binary("parta-agent"))]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("(was 0.1.0) as 0.2.0"), "{said}");
    let out = Command::new(&artifact).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "parta-agent 0.2.0");
    let (code, said) = release(&["sign", "--key", s(&key), "--version", "0.2.0", s(&artifact)]);
    assert_eq!(code, 0, "{said}");
    let sig = dir.path().join("parta-agent.sig");
    assert!(
        std::fs::read_to_string(&sig).unwrap().starts_with("parta-release-signature 1\nname = parta-agent\n")
    );
    let verify = |extra: &[&str], art: &Path| {
        let mut a = vec!["verify", "--public", s(&public)];
        a.extend(extra);
        a.push(s(art));
        release(&a)
    };
    let (code, said) = verify(&["--running", "0.1.0"], &artifact);
    assert_eq!(code, 0, "{said}");
    assert!(said.starts_with("verified: parta-agent 0.2.0 x86_64-linux"), "{said}");

    let refused = |extra: &[&str], art: &Path, reason: &str| {
        let (code, said) = verify(extra, art);
        assert_eq!(code, 1, "{said}");
        assert!(said.contains(reason), "expected {reason:?}: {said}");
    };
    // Another region's key.
    let (code, said) = release(&["verify", "--public", s(&other.join("release.pub")), s(&artifact)]);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("which this device does not trust"), "{said}");
    // Older or the same version.
    refused(
        &["--running", "0.2.0"],
        &artifact,
        "downgrade refused: 0.2.0 is not newer than the running 0.2.0",
    );
    refused(&["--running", "0.10.0"], &artifact, "not newer than the running 0.10.0");
    // Truncated, bit-flipped.
    let bytes = std::fs::read(&artifact).unwrap();
    let cut = dir.path().join("cut");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::copy(&sig, dir.path().join("cut.sig")).unwrap();
    refused(&[], &cut, &format!("truncated: {} of {} bytes", bytes.len() / 2, bytes.len()));
    let flipped = dir.path().join("flipped");
    let mut f = bytes.clone();
    f[bytes.len() / 3] ^= 0x01;
    std::fs::write(&flipped, &f).unwrap();
    std::fs::copy(&sig, dir.path().join("flipped.sig")).unwrap();
    refused(&[], &flipped, "altered: SHA-256");
    // Unsigned: no signature file.
    let bare = dir.path().join("bare");
    std::fs::write(&bare, &bytes).unwrap();
    refused(&[], &bare, "unsigned: no signature file");
    // A signature file edited to fit another artifact (its size and digest), not re-signed.
    let forged = dir.path().join("forged");
    std::fs::write(&forged, b"something else").unwrap();
    let text = std::fs::read_to_string(&sig).unwrap();
    let digest = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(b"something else"))
    };
    let edited: String = text
        .lines()
        .map(|l| match l.split_once(" = ") {
            Some(("size", _)) => "size = 14".to_owned(),
            Some(("sha256", _)) => format!("sha256 = {digest}"),
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join("forged.sig"), format!("{edited}\n")).unwrap();
    refused(&[], &forged, "bad signature");
    // A damaged signature file names its line.
    std::fs::write(dir.path().join("bare.sig"), text.replace("version = 0.2.0", "version = 0.2")).unwrap();
    refused(&[], &bare, "line 3: version");

    // A private key others can read is refused before it signs anything.
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (code, said) = release(&["sign", "--key", s(&key), "--version", "0.3.0", s(&artifact)]);
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("readable by others"), "{said}");
    assert!(std::fs::read_to_string(&sig).unwrap().contains("version = 0.2.0"), "nothing re-signed");
}

#[test]
fn the_release_key_travels_in_join_strings_and_is_pinned_at_enrollment() {
    use parta_tests::clickhouse::ClickHouse;
    use parta_tests::procs::Collector;
    let art = parta_tests::util::artifacts_dir("release-pin");
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    assert_eq!(release(&["keygen", "--out", s(&keys)]).0, 0);
    let public = keys.join("release.pub");
    let public_text = std::fs::read_to_string(&public).unwrap();

    // A collector given something else than a public key says so, naming the setting.
    let bad = dir.path().join("bad.pub");
    std::fs::write(&bad, "not a key\n").unwrap();
    let out = Command::new(binary("parta-collector"))
        .env_clear()
        .args(["--release-key", s(&bad), "config"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("--release-key") && err.contains("not a release public key"), "{err}");
    // The private key is not a public key either.
    let out = Command::new(binary("parta-collector"))
        .env_clear()
        .args(["--release-key", s(&keys.join("release.key")), "config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));

    let ch = ClickHouse::start();
    let collector = Collector::start_with(&ch, "relpin", &art, &[("PARTA_RELEASE_KEY", s(&public))]);
    let (_, join) = collector.create_join("74-0012", &[]);
    let key_hex = public_text.trim().rsplit(' ').next().unwrap();
    assert!(join.ends_with(&format!("&release=ed25519:{key_hex}")), "{join}");
    let state = dir.path().join("state");
    let cfg = dir.path().join("agent.toml");
    let out = Command::new(binary("parta-agent"))
        .env_clear()
        .args(["--config", s(&cfg), "--state-dir", s(&state), "enroll", &join])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("release key:") && said.contains("updates must be signed by it"), "{said}");
    assert_eq!(std::fs::read_to_string(state.join("release.pub")).unwrap(), public_text);
}
