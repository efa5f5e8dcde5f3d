//! The WASI a plugin sees: the interfaces guest toolchains import, each implemented so that it
//! grants nothing real, never blocks and bounds what the host does on the plugin's behalf.
//!
//! - Clocks are fixed (wall: 2024-01-01T00:00:00Z, monotonic: 0), and a clock subscription is
//!   ready at once: time never has to pass, so a sleeping plugin does not sleep.
//! - Randomness is a seeded generator, reseeded at the start of every call, so an answer is a
//!   function of the call's input only; a request is capped at [`MAX_RANDOM_BYTES`].
//! - `wasi:io/poll` and the `blocking-*` stream functions look once: everything the sandbox
//!   hands out is ready at once, and a wait that could never end traps instead of blocking a
//!   host thread. Nothing here enters an async runtime, so a call may run on any thread.
//! - stdout and stderr go to the host log through a budget: at most [`MAX_LOG_BYTES_PER_CALL`]
//!   and [`MAX_LOG_LINES_PER_CALL`] per call, and [`LOG_LINES_PER_SECOND`] per plugin; what is
//!   dropped is counted and reported at most once a second.
//!
//! `wasi:cli/*` comes from wasmtime-wasi (an empty environment, closed stdin), and so does
//! `wasi:filesystem/*`: `preopens` lists no directory, so no descriptor ever exists, and every
//! `wasi:filesystem/types` function but `filesystem-error-code` takes one (a guest cannot
//! forge a handle to a host resource: the canonical ABI refuses it before the host is
//! called). Those functions would enter an async runtime; they are unreachable.

use std::future::Future;

use futures_util::FutureExt;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::bindings::{clocks, random};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, StreamError, StreamResult};
use wasmtime_wasi_io::bindings::wasi::io::{poll as async_poll, streams as async_streams};

use super::FIXED_WALL_CLOCK_SECS;
use super::log::MAX_LOG_BYTES_PER_CALL;
use super::store::{PluginState, RANDOM_SEED};

/// Links our WASI implementations. `wasi:sockets/*` is linked per component, every function
/// trapping (see `Sandbox::instantiate_pre`); `wasi:http/*` never is.
pub(crate) fn add_to_linker(l: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView as _};
    use wasmtime_wasi::p2::bindings::{cli, filesystem};

    type S = PluginState;
    clocks::wall_clock::add_to_linker::<S, Sandboxed>(l, |s| s)?;
    clocks::monotonic_clock::add_to_linker::<S, Sandboxed>(l, |s| s)?;
    random::random::add_to_linker::<S, Sandboxed>(l, |s| s)?;
    random::insecure::add_to_linker::<S, Sandboxed>(l, |s| s)?;
    random::insecure_seed::add_to_linker::<S, Sandboxed>(l, |s| s)?;
    poll::add_to_linker::<S, Sandboxed>(l, |s| s)?;
    streams::add_to_linker::<S, Sandboxed>(l, |s| s)?;
    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<S, Table>(l, |s| &mut s.table)?;
    filesystem::preopens::add_to_linker::<S, WasiFilesystem>(l, S::filesystem)?;
    wasmtime_wasi::p2::bindings::sync::filesystem::types::add_to_linker::<S, WasiFilesystem>(
        l,
        S::filesystem,
    )?;
    cli::exit::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::environment::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::stdin::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::stdout::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::stderr::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_input::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_output::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_stdin::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_stdout::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_stderr::add_to_linker::<S, WasiCli>(l, S::cli)?;
    Ok(())
}

/// Our host implementations, on the store's state.
struct Sandboxed;

impl wasmtime::component::HasData for Sandboxed {
    type Data<'a> = &'a mut PluginState;
}

/// `wasi:io/error` only needs the resource table.
struct Table;

impl wasmtime::component::HasData for Table {
    type Data<'a> = &'a mut wasmtime::component::ResourceTable;
}

const WOULD_BLOCK: &str =
    "would wait forever: nothing in the plugin sandbox becomes ready later (no I/O, fixed clocks)";

/// Runs an operation that might wait, looking once: in this sandbox it is ready at once or
/// never.
fn at_once<T>(f: impl Future<Output = wasmtime::Result<T>>) -> wasmtime::Result<T> {
    f.now_or_never()
        .unwrap_or_else(|| Err(wasmtime::format_err!("{WOULD_BLOCK}")))
}

fn stream_at_once<T>(f: impl Future<Output = StreamResult<T>>) -> StreamResult<T> {
    f.now_or_never()
        .unwrap_or_else(|| Err(StreamError::trap(WOULD_BLOCK)))
}

// ---- clocks ----

/// A clock subscription: the clocks are fixed, so no time has to pass.
struct ReadyNow;

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi_io::poll::Pollable for ReadyNow {
    async fn ready(&mut self) {}
}

impl PluginState {
    fn ready_now(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        let ready = self.table.push(ReadyNow)?;
        wasmtime_wasi_io::poll::subscribe(&mut self.table, ready)
    }
}

impl clocks::wall_clock::Host for PluginState {
    fn now(&mut self) -> wasmtime::Result<clocks::wall_clock::Datetime> {
        Ok(clocks::wall_clock::Datetime {
            seconds: FIXED_WALL_CLOCK_SECS,
            nanoseconds: 0,
        })
    }

    fn resolution(&mut self) -> wasmtime::Result<clocks::wall_clock::Datetime> {
        Ok(clocks::wall_clock::Datetime {
            seconds: 1,
            nanoseconds: 0,
        })
    }
}

impl clocks::monotonic_clock::Host for PluginState {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(0)
    }

    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(1_000_000_000)
    }

    fn subscribe_instant(&mut self, _when: u64) -> wasmtime::Result<Resource<DynPollable>> {
        self.ready_now()
    }

    fn subscribe_duration(&mut self, _duration: u64) -> wasmtime::Result<Resource<DynPollable>> {
        self.ready_now()
    }
}

// ---- random ----

impl random::random::Host for PluginState {
    fn get_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        self.random.bytes(len)
    }

    fn get_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(self.random.u64())
    }
}

impl random::insecure::Host for PluginState {
    fn get_insecure_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        self.random.bytes(len)
    }

    fn get_insecure_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(self.random.u64())
    }
}

impl random::insecure_seed::Host for PluginState {
    fn insecure_seed(&mut self) -> wasmtime::Result<(u64, u64)> {
        Ok((RANDOM_SEED, RANDOM_SEED.rotate_left(32)))
    }
}

// ---- io/poll ----

impl poll::Host for PluginState {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        at_once(async_poll::Host::poll(&mut self.table, pollables))
    }
}

impl poll::HostPollable for PluginState {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        at_once(async_poll::HostPollable::ready(&mut self.table, pollable))
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        at_once(async_poll::HostPollable::block(&mut self.table, pollable))
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        async_poll::HostPollable::drop(&mut self.table, pollable)
    }
}

// ---- io/streams ----

impl streams::Host for PluginState {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        Ok(async_streams::Host::convert_stream_error(&mut self.table, err)?.into())
    }
}

impl streams::HostOutputStream for PluginState {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        at_once(async_streams::HostOutputStream::drop(
            &mut self.table,
            stream,
        ))
    }

    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        async_streams::HostOutputStream::check_write(&mut self.table, stream)
    }

    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        async_streams::HostOutputStream::write(&mut self.table, stream, bytes)
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        stream_at_once(async_streams::HostOutputStream::blocking_write_and_flush(
            &mut self.table,
            stream,
            bytes,
        ))
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        stream_at_once(
            async_streams::HostOutputStream::blocking_write_zeroes_and_flush(
                &mut self.table,
                stream,
                len,
            ),
        )
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynOutputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        async_streams::HostOutputStream::subscribe(&mut self.table, stream)
    }

    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        // Our streams take at most `check_write` bytes; more is the guest's error.
        if len > MAX_LOG_BYTES_PER_CALL as u64 {
            return Err(StreamError::trap("write-zeroes of more than 1 MiB"));
        }
        async_streams::HostOutputStream::write_zeroes(&mut self.table, stream, len)
    }

    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        async_streams::HostOutputStream::flush(&mut self.table, stream)
    }

    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        stream_at_once(async_streams::HostOutputStream::blocking_flush(
            &mut self.table,
            stream,
        ))
    }

    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        async_streams::HostOutputStream::splice(&mut self.table, dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        stream_at_once(async_streams::HostOutputStream::blocking_splice(
            &mut self.table,
            dst,
            src,
            len,
        ))
    }
}

impl streams::HostInputStream for PluginState {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        at_once(async_streams::HostInputStream::drop(
            &mut self.table,
            stream,
        ))
    }

    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        async_streams::HostInputStream::read(&mut self.table, stream, len)
    }

    fn blocking_read(
        &mut self,
        stream: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<Vec<u8>> {
        stream_at_once(async_streams::HostInputStream::blocking_read(
            &mut self.table,
            stream,
            len,
        ))
    }

    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        async_streams::HostInputStream::skip(&mut self.table, stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        stream_at_once(async_streams::HostInputStream::blocking_skip(
            &mut self.table,
            stream,
            len,
        ))
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynInputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        async_streams::HostInputStream::subscribe(&mut self.table, stream)
    }
}
