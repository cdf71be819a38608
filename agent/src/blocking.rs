//! File work inside the agent's async code: spool appends with their fsyncs, the state and
//! status files, reads of `/proc` and `/sys`. [`run`] hands the worker's other tasks — the
//! uplink's acknowledgements, SNMP polls in flight, the ЕСПД probe's timer — to another thread
//! for the time it takes, so that none of them waits on a disk. Only on the agent's
//! multi-threaded runtime (`parta-agent run`); elsewhere (tests, one-shot commands on a
//! current-thread runtime) the work runs in place.

/// Runs `f`, which blocks on files, without holding up the runtime's other tasks.
pub fn run<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
