//! `parta-agent` binary; see the library crate for the layout.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(parta_agent::app::main())
}
