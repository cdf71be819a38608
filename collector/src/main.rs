//! `parta-collector` binary; see the library crate for the layout.

/// Ingest allocates and frees many small objects on several threads (decoded reports, rows);
/// mimalloc handles that pattern with a fraction of glibc malloc's CPU (measured with
/// `bench-ingest`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(parta_collector::app::main())
}
