//! `parta-release`: makes the region's release key and signs agent builds with it, on a machine
//! that is not the collector (the collector and the agents hold only the public key).
//!
//! ```sh
//! parta-release keygen --out /secure/parta-release          # release.key (0600), release.pub
//! parta-release sign --key /secure/parta-release/release.key --name parta-agent \
//!     --version 0.2.0 target/release/parta-agent            # writes parta-agent.sig beside it
//! parta-release verify --public release.pub --running 0.1.0 target/release/parta-agent
//! ```
//!
//! The signature file format and every check are in `parta_protocol::release`, shared with the
//! collector and the agents.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use parta_protocol::release::{self, Manifest, ReleaseVersion};
use ring::signature::KeyPair as _;
use sha2::Digest as _;

/// The first line of a private key file.
const PRIVATE_HEADER: &str = "parta-release-private-key 1";

#[derive(Debug, Parser)]
#[command(
    name = "parta-release",
    version,
    about = "Signs Parta releases with the region's Ed25519 release key"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a release key pair: DIR/release.key (private, 0600; keep it off the collector) and
    /// DIR/release.pub (the public key devices are to trust).
    Keygen {
        /// Directory for the two files (created 0700 if missing).
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing key pair (every device pinned to the old key will refuse
        /// releases signed by the new one).
        #[arg(long)]
        force: bool,
    },
    /// Stamp a build of the agent with the version it is released as (the version it will
    /// report and be compared by): writes OUT, executable.
    Stamp {
        /// The version (MAJOR.MINOR.PATCH).
        #[arg(long)]
        version: String,
        /// Where to write the stamped build.
        #[arg(long)]
        out: PathBuf,
        /// The build.
        binary: PathBuf,
    },
    /// Sign an artifact: writes ARTIFACT.sig (or --sig) naming the product, version, target,
    /// size and SHA-256, signed with the private key.
    Sign {
        /// The private key file from `keygen`.
        #[arg(long)]
        key: PathBuf,
        /// The product, e.g. parta-agent.
        #[arg(long, default_value = "parta-agent")]
        name: String,
        /// The version the artifact reports (MAJOR.MINOR.PATCH).
        #[arg(long)]
        version: String,
        /// The platform it runs on.
        #[arg(long, default_value = "x86_64-linux")]
        target: String,
        /// Where to write the signature file [default: ARTIFACT.sig].
        #[arg(long)]
        sig: Option<PathBuf>,
        /// The file to sign.
        artifact: PathBuf,
    },
    /// Check an artifact the way a device does: trusted key, signature, size, SHA-256 and,
    /// with --running, that it is newer. Exit status 1 with the reason when refused.
    Verify {
        /// A trusted public key file (`release.pub`); repeat for several.
        #[arg(long = "public", required = true)]
        public: Vec<PathBuf>,
        /// The signature file [default: ARTIFACT.sig].
        #[arg(long)]
        sig: Option<PathBuf>,
        /// The version the device runs: refuse anything not newer.
        #[arg(long)]
        running: Option<String>,
        /// The product the device runs.
        #[arg(long, default_value = "parta-agent")]
        name: String,
        /// The device's platform.
        #[arg(long, default_value = "x86_64-linux")]
        target: String,
        /// The artifact.
        artifact: PathBuf,
    },
    /// Print the public key of a private key file.
    Public {
        /// The private key file.
        #[arg(long)]
        key: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("parta-release: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn sig_path(artifact: &Path, sig: Option<PathBuf>) -> PathBuf {
    sig.unwrap_or_else(|| {
        let mut s = artifact.as_os_str().to_owned();
        s.push(".sig");
        PathBuf::from(s)
    })
}

fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Keygen { out, force } => {
            let (key_path, pub_path) = (out.join("release.key"), out.join("release.pub"));
            if !force && (key_path.exists() || pub_path.exists()) {
                anyhow::bail!(
                    "{} already holds a release key; devices trust it — --force replaces it",
                    out.display()
                );
            }
            parta_common::fsutil::create_private_dir(&out)
                .with_context(|| format!("creating {}", out.display()))?;
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| anyhow::anyhow!("the system's random source failed"))?;
            let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                .map_err(|_| anyhow::anyhow!("the generated key does not load (a bug)"))?;
            let public = public_of(&pair)?;
            let text = format!("{PRIVATE_HEADER}\n{}\n", hex_of(pkcs8.as_ref()));
            parta_common::fsutil::write_atomic(&key_path, text.as_bytes(), true)
                .with_context(|| format!("writing {}", key_path.display()))?;
            parta_common::fsutil::write_atomic(
                &pub_path,
                format!("{}\n", release::render_public_key(&public)).as_bytes(),
                false,
            )
            .with_context(|| format!("writing {}", pub_path.display()))?;
            println!("release key {}", release::key_id_text(&public));
            println!("private: {} (0600: keep it offline, never on the collector)", key_path.display());
            println!("public:  {}", pub_path.display());
            println!("{}", release::render_public_key(&public));
            Ok(ExitCode::SUCCESS)
        }
        Command::Stamp { version, out, binary } => {
            let version: ReleaseVersion =
                version.parse().map_err(|e: String| anyhow::anyhow!("--version: {e}"))?;
            let mut bytes =
                std::fs::read(&binary).with_context(|| format!("reading {}", binary.display()))?;
            let was =
                release::read_stamp(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", binary.display()))?;
            release::stamp(&mut bytes, version).map_err(|e| anyhow::anyhow!("{}: {e}", binary.display()))?;
            parta_common::fsutil::write_atomic(&out, &bytes, false)
                .with_context(|| format!("writing {}", out.display()))?;
            std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .with_context(|| format!("making {} executable", out.display()))?;
            println!("stamped {} (was {was}) as {version}: {}", binary.display(), out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Public { key } => {
            let pair = load_private(&key)?;
            println!("{}", release::render_public_key(&public_of(&pair)?));
            Ok(ExitCode::SUCCESS)
        }
        Command::Sign { key, name, version, target, sig, artifact } => {
            let pair = load_private(&key)?;
            let version: ReleaseVersion =
                version.parse().map_err(|e: String| anyhow::anyhow!("--version: {e}"))?;
            // A Parta build says which version it is: signing it as another would have devices
            // install it forever (it would never report the version it was offered as).
            if name == "parta-agent" {
                let head =
                    std::fs::read(&artifact).with_context(|| format!("reading {}", artifact.display()))?;
                if let Ok(stamped) = release::read_stamp(&head)
                    && stamped != version
                {
                    anyhow::bail!(
                        "{} is stamped {stamped}, not {version}: `parta-release stamp --version {version}` first",
                        artifact.display()
                    );
                }
            }
            let (size, sha256) = digest(&artifact)?;
            let public = public_of(&pair)?;
            let m = Manifest::sign(&name, version, &target, size, sha256, &pair);
            // What is written must be what devices read: parse it back before writing.
            let text = m.render();
            Manifest::parse(text.as_bytes()).map_err(|e| anyhow::anyhow!("--name/--target: {e}"))?;
            let out = sig_path(&artifact, sig);
            parta_common::fsutil::write_atomic(&out, text.as_bytes(), false)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "signed {} {} {} ({size} bytes) with key {}: {}",
                m.name,
                m.version,
                m.target,
                release::key_id_text(&public),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { public, sig, running, name, target, artifact } => {
            let mut trusted = Vec::new();
            for p in &public {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                trusted.push(
                    release::parse_public_key(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
                );
            }
            let running = running
                .map(|r| r.parse::<ReleaseVersion>())
                .transpose()
                .map_err(|e| anyhow::anyhow!("--running: {e}"))?;
            let sig = sig_path(&artifact, sig);
            match verify(&trusted, &sig, &artifact, &name, &target, running) {
                Ok(m) => {
                    println!(
                        "verified: {} {} {}, {} bytes, signed by key {}",
                        m.name,
                        m.version,
                        m.target,
                        m.size,
                        hex_of(&m.key)
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(refusal) => {
                    println!("refused: {refusal}");
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

/// Every check a device makes, in its order.
fn verify(
    trusted: &[[u8; 32]],
    sig: &Path,
    artifact: &Path,
    name: &str,
    target: &str,
    running: Option<ReleaseVersion>,
) -> Result<Manifest, release::Refusal> {
    let bytes = match std::fs::read(sig) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(release::Refusal::Unsigned),
        Err(e) => {
            return Err(release::Refusal::Malformed(release::ParseError {
                line: 0,
                why: format!("{}: {e}", sig.display()),
            }));
        }
    };
    let m = Manifest::parse(&bytes)?;
    m.verify_signature(trusted)?;
    if let Some(r) = running {
        m.check_offer(name, target, r)?;
    }
    let f = std::fs::File::open(artifact)
        .map_err(|_| release::Refusal::Truncated { expected: m.size, got: 0 })?;
    m.checker().check_reader(f, |_| {}).map_err(|e| match e {
        release::ReadCheckError::Io { seen, .. } => {
            release::Refusal::Truncated { expected: m.size, got: seen }
        }
        release::ReadCheckError::Refused(r) => r,
    })?;
    Ok(m)
}

fn digest(path: &Path) -> anyhow::Result<(u64, [u8; 32])> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let size = std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", path.display()))?;
    Ok((size, h.finalize().into()))
}

fn load_private(path: &Path) -> anyhow::Result<ring::signature::Ed25519KeyPair> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            anyhow::bail!(
                "{}: readable by others (mode {:o}); a release key must be 0600 — chmod 600 it and ask who could have copied it",
                path.display(),
                meta.permissions().mode() & 0o777
            );
        }
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    if lines.next() != Some(PRIVATE_HEADER) {
        anyhow::bail!(
            "{}: not a release private key (the first line must be {PRIVATE_HEADER:?})",
            path.display()
        );
    }
    let der = lines
        .next()
        .and_then(unhex)
        .ok_or_else(|| anyhow::anyhow!("{}: line 2 must be the key in hex", path.display()))?;
    ring::signature::Ed25519KeyPair::from_pkcs8(&der)
        .map_err(|e| anyhow::anyhow!("{}: not an Ed25519 key: {e}", path.display()))
}

fn public_of(pair: &ring::signature::Ed25519KeyPair) -> anyhow::Result<[u8; 32]> {
    pair.public_key().as_ref().try_into().context("an Ed25519 public key is 32 bytes")
}

fn hex_of(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    hex::decode(s).ok()
}
