//! `parta-collector` binary; see the library crate for the layout.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(parta_collector::app::main())
}
