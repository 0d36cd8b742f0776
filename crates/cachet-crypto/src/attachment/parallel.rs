//! Sealing and opening an attachment on several cores.
//!
//! A chunk's nonce depends only on its index and on whether it is the last one, so the
//! chunks of a stream are independent: worker threads seal (or open) several at once while
//! the caller's thread hands the results on strictly in order. The bytes are exactly those
//! of [`super::seal_all`] and [`super::open_all`], and so are the checks: chunk `i` is
//! opened under the nonce of position `i` with the final flag where the stored object
//! ends, and nothing after the first chunk that fails is handed on.
//!
//! Memory stays flat: at most [`Parallelism::buffers`] chunk buffers (one per worker, plus
//! one being handed on) exist at any time, whatever the file size; a worker that finds
//! them all in use waits until the caller has consumed the oldest chunk. Reading stays
//! sequential: the workers take turns calling the caller's `read`, in chunk order, so a
//! plain [`std::io::Read`] works as the source.
//!
//! This is still sans-IO: the caller supplies `read` (fill the next chunk's input) and
//! `write` (consume the next chunk's output); only the computation is spread over threads.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use zeroize::Zeroizing;

use super::{
    chunk_count, open_indexed, seal_indexed, FormatVersion, CHUNK_SIZE, SEALED_CHUNK_SIZE,
};
use crate::secretbox::SecretBox;
use crate::{CryptoError, SymmetricKey, MAC_LEN};

/// How many chunks are sealed or opened at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parallelism {
    workers: NonZeroUsize,
}

impl Parallelism {
    /// The most workers [`Parallelism::available`] picks: past this, memory grows by
    /// 2 MiB per worker for little gain (the disk or the network is the limit).
    pub const MAX_AUTO_WORKERS: usize = 8;

    /// One worker per available core, at most [`Self::MAX_AUTO_WORKERS`].
    pub fn available() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Self::workers(cores.min(Self::MAX_AUTO_WORKERS))
    }

    /// Exactly `workers` worker threads (at least one). One worker means no extra thread:
    /// the chunks are processed one after the other on the caller's thread.
    pub fn workers(workers: usize) -> Self {
        Self {
            workers: NonZeroUsize::new(workers).unwrap_or(NonZeroUsize::MIN),
        }
    }

    /// The number of worker threads.
    pub fn worker_count(self) -> usize {
        self.workers.get()
    }

    /// The most chunk buffers ([`SEALED_CHUNK_SIZE`] bytes each) alive at once: one per
    /// worker, plus the one whose output the caller is consuming.
    pub fn buffers(self) -> usize {
        match self.workers.get() {
            1 => 1,
            n => n + 1,
        }
    }
}

impl Default for Parallelism {
    fn default() -> Self {
        Self::available()
    }
}

/// Seals `plaintext_len` bytes as an attachment of `version`, chunk by chunk.
///
/// `read` is called once per chunk, in order, with a slice of exactly that chunk's
/// plaintext length to fill ([`CHUNK_SIZE`] bytes but for the last chunk; none for an
/// empty version 1 attachment). `write` is called on the calling thread with each sealed
/// chunk (`tag || ciphertext`), in order. The first error from either stops the run and
/// is returned; no chunk after it is written.
pub fn seal_chunks<E, R, W>(
    key: &SymmetricKey,
    version: FormatVersion,
    plaintext_len: u64,
    parallelism: Parallelism,
    read: R,
    write: W,
) -> Result<(), E>
where
    E: From<CryptoError> + Send,
    R: FnMut(&mut [u8]) -> Result<(), E> + Send,
    W: FnMut(&[u8]) -> Result<(), E>,
{
    let chunks = chunk_count(version, plaintext_len);
    let plan = Plan {
        cipher: SecretBox::new(key),
        version,
        direction: Direction::Seal,
        total_len: plaintext_len,
        chunk_len: CHUNK_SIZE,
        chunks,
    };
    plan.run(parallelism, read, write)
}

/// Opens a stored attachment of `sealed_len` bytes, chunk by chunk: the parallel
/// counterpart of [`super::ChunkOpener`], with the same checks.
///
/// `read` is called once per chunk, in order, with a slice of exactly that chunk's stored
/// length to fill ([`SEALED_CHUNK_SIZE`] bytes but for the last chunk). `write` is called
/// on the calling thread with each chunk's plaintext, in order. A chunk that does not
/// authenticate at its position (corrupted, reordered, dropped, duplicated, or a stream
/// cut short) stops the run with [`CryptoError::Stream`] before its plaintext, or any
/// later chunk's, is written. A version 2 object of zero bytes fails the same way: it
/// lacks its final chunk.
pub fn open_chunks<E, R, W>(
    key: &SymmetricKey,
    version: FormatVersion,
    sealed_len: u64,
    parallelism: Parallelism,
    read: R,
    write: W,
) -> Result<(), E>
where
    E: From<CryptoError> + Send,
    R: FnMut(&mut [u8]) -> Result<(), E> + Send,
    W: FnMut(&[u8]) -> Result<(), E>,
{
    if sealed_len == 0 && version == FormatVersion::V2 {
        return Err(CryptoError::Stream("attachment ended before its final chunk").into());
    }
    let plan = Plan {
        cipher: SecretBox::new(key),
        version,
        direction: Direction::Open,
        total_len: sealed_len,
        chunk_len: SEALED_CHUNK_SIZE,
        chunks: sealed_len.div_ceil(SEALED_CHUNK_SIZE as u64),
    };
    plan.run(parallelism, read, write)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Seal,
    Open,
}

/// What is done to each chunk of one stream.
struct Plan {
    cipher: SecretBox,
    version: FormatVersion,
    direction: Direction,
    /// Length of the whole input: plaintext when sealing, the stored object when opening.
    total_len: u64,
    /// Input bytes per chunk but the last.
    chunk_len: usize,
    chunks: u64,
}

type Buffer = Zeroizing<Vec<u8>>;

impl Plan {
    fn input_len(&self, index: u64) -> usize {
        let start = index * self.chunk_len as u64;
        (self.total_len - start).min(self.chunk_len as u64) as usize
    }

    /// Where `read` writes chunk `index`'s input inside a buffer.
    fn input_range(&self, index: u64) -> Range<usize> {
        let len = self.input_len(index);
        match self.direction {
            Direction::Seal => MAC_LEN..MAC_LEN + len,
            Direction::Open => 0..len,
        }
    }

    /// Seals or opens chunk `index` in place; returns where its output lies.
    fn apply(&self, index: u64, buffer: &mut [u8]) -> Result<Range<usize>, CryptoError> {
        let is_last = index + 1 == self.chunks;
        let len = self.input_len(index);
        match self.direction {
            Direction::Seal => {
                let sealed = &mut buffer[..MAC_LEN + len];
                seal_indexed(&self.cipher, self.version, index + 1, sealed, is_last)?;
                Ok(0..MAC_LEN + len)
            }
            Direction::Open => {
                open_indexed(
                    &self.cipher,
                    self.version,
                    index + 1,
                    &mut buffer[..len],
                    is_last,
                )?;
                Ok(MAC_LEN..len)
            }
        }
    }

    fn run<E, R, W>(&self, parallelism: Parallelism, mut read: R, mut write: W) -> Result<(), E>
    where
        E: From<CryptoError> + Send,
        R: FnMut(&mut [u8]) -> Result<(), E> + Send,
        W: FnMut(&[u8]) -> Result<(), E>,
    {
        if parallelism.worker_count() == 1 || self.chunks <= 1 {
            return self.run_here(&mut read, &mut write);
        }
        let pipeline = Pipeline {
            plan: self,
            source: Mutex::new(Source { read, next: 0 }),
            state: Mutex::new(State {
                free: Vec::new(),
                allocated: 0,
                done: BTreeMap::new(),
            }),
            changed: Condvar::new(),
            stopped: AtomicBool::new(false),
            buffers: parallelism.buffers(),
        };
        std::thread::scope(|scope| {
            for _ in 0..parallelism.worker_count() {
                scope.spawn(|| {
                    let _stop_if_panicking = StopOnDrop {
                        pipeline: &pipeline,
                        only_when_panicking: true,
                    };
                    pipeline.work();
                });
            }
            let _stop_workers = StopOnDrop {
                pipeline: &pipeline,
                only_when_panicking: false,
            };
            pipeline.hand_on(&mut write)
        })
    }

    /// One chunk after the other on the calling thread, in a single buffer.
    fn run_here<E, R, W>(&self, read: &mut R, write: &mut W) -> Result<(), E>
    where
        E: From<CryptoError>,
        R: FnMut(&mut [u8]) -> Result<(), E>,
        W: FnMut(&[u8]) -> Result<(), E>,
    {
        // Sized to the largest chunk, so a small file does not cost (and wipe) 2 MiB.
        let largest = match self.chunks {
            0 => 0,
            _ => self.input_range(0).end,
        };
        let mut buffer: Buffer = Zeroizing::new(vec![0u8; largest]);
        for index in 0..self.chunks {
            read(&mut buffer[self.input_range(index)])?;
            let output = self.apply(index, &mut buffer)?;
            write(&buffer[output])?;
        }
        Ok(())
    }
}

/// The state shared by the workers and the thread that hands chunks on.
struct Pipeline<'a, R, E> {
    plan: &'a Plan,
    /// The caller's reader and the index of the next chunk to read. Locked for the whole
    /// read, which is what keeps reads in chunk order.
    source: Mutex<Source<R>>,
    state: Mutex<State<E>>,
    /// Signalled whenever a buffer is freed, a chunk is done, or the run stops.
    changed: Condvar,
    stopped: AtomicBool,
    buffers: usize,
}

struct Source<R> {
    read: R,
    next: u64,
}

struct State<E> {
    free: Vec<Buffer>,
    allocated: usize,
    /// Chunks processed but not yet handed on, by index.
    done: BTreeMap<u64, (Buffer, Outcome<E>)>,
}

enum Outcome<E> {
    Output(Range<usize>),
    ReadFailed(E),
    Refused(CryptoError),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere poisons the lock; the run is then stopping and the panic is
    // re-raised when the scope joins, so the data behind the lock needs no repair.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<R, E> Pipeline<'_, R, E>
where
    R: FnMut(&mut [u8]) -> Result<(), E>,
{
    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let _state = lock(&self.state);
        self.changed.notify_all();
    }

    /// A worker: take a free buffer, read the next chunk into it, process it, hand it to
    /// the consuming thread; until the stream is read or the run stops.
    fn work(&self) {
        while let Some(mut buffer) = self.free_buffer() {
            let (index, read) = {
                let mut source = lock(&self.source);
                if source.next == self.plan.chunks || self.stopped() {
                    drop(source);
                    self.release(buffer);
                    return;
                }
                let index = source.next;
                source.next += 1;
                let read = (source.read)(&mut buffer[self.plan.input_range(index)]);
                if read.is_err() {
                    // Nothing after a failed read can be handed on.
                    source.next = self.plan.chunks;
                }
                (index, read)
            };
            let outcome = match read {
                Err(e) => Outcome::ReadFailed(e),
                Ok(()) => match self.plan.apply(index, &mut buffer) {
                    Ok(output) => Outcome::Output(output),
                    Err(e) => Outcome::Refused(e),
                },
            };
            lock(&self.state).done.insert(index, (buffer, outcome));
            self.changed.notify_all();
        }
    }

    /// Waits for a buffer that no chunk in flight holds; `None` once the run stops.
    fn free_buffer(&self) -> Option<Buffer> {
        let mut state = lock(&self.state);
        loop {
            if self.stopped() {
                return None;
            }
            if let Some(buffer) = state.free.pop() {
                return Some(buffer);
            }
            if state.allocated < self.buffers {
                state.allocated += 1;
                return Some(Zeroizing::new(vec![0u8; SEALED_CHUNK_SIZE]));
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn release(&self, buffer: Buffer) {
        lock(&self.state).free.push(buffer);
        self.changed.notify_all();
    }

    /// The consuming thread: hands each chunk's output to `write` in index order.
    fn hand_on<W>(&self, write: &mut W) -> Result<(), E>
    where
        E: From<CryptoError>,
        W: FnMut(&[u8]) -> Result<(), E>,
    {
        for index in 0..self.plan.chunks {
            let Some((buffer, outcome)) = self.wait_for(index) else {
                // A worker panicked; the scope re-raises its panic once all have stopped.
                return Err(CryptoError::Stream("attachment worker failed").into());
            };
            let written = match outcome {
                Outcome::Output(output) => write(&buffer[output]),
                Outcome::ReadFailed(e) => Err(e),
                Outcome::Refused(e) => Err(e.into()),
            };
            self.release(buffer);
            written?;
        }
        Ok(())
    }

    fn wait_for(&self, index: u64) -> Option<(Buffer, Outcome<E>)> {
        let mut state = lock(&self.state);
        loop {
            if let Some(done) = state.done.remove(&index) {
                return Some(done);
            }
            if self.stopped() {
                return None;
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Stops the run when dropped: at the end of the consuming side (so that idle workers
/// exit before the scope joins them, also when `write` panics), and when a worker
/// unwinds (so that nobody waits for the chunk it held).
struct StopOnDrop<'p, 'a, R, E>
where
    R: FnMut(&mut [u8]) -> Result<(), E>,
{
    pipeline: &'p Pipeline<'a, R, E>,
    only_when_panicking: bool,
}

impl<R, E> Drop for StopOnDrop<'_, '_, R, E>
where
    R: FnMut(&mut [u8]) -> Result<(), E>,
{
    fn drop(&mut self) {
        if !self.only_when_panicking || std::thread::panicking() {
            self.pipeline.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::super::{open_all, seal_all};
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 37 % 253) as u8).collect()
    }

    /// Seals or opens `input` from memory; returns the result and the output handed on
    /// before the run ended.
    fn through(
        input: &[u8],
        key: &SymmetricKey,
        version: FormatVersion,
        workers: usize,
        direction: Direction,
    ) -> (Result<(), CryptoError>, Vec<u8>) {
        let mut source = input;
        let mut out = Vec::new();
        let read = |chunk: &mut [u8]| {
            let (head, tail) = source.split_at(chunk.len());
            chunk.copy_from_slice(head);
            source = tail;
            Ok(())
        };
        let write = |bytes: &[u8]| {
            out.extend_from_slice(bytes);
            Ok(())
        };
        let (len, parallelism) = (input.len() as u64, Parallelism::workers(workers));
        let result = match direction {
            Direction::Seal => seal_chunks(key, version, len, parallelism, read, write),
            Direction::Open => open_chunks(key, version, len, parallelism, read, write),
        };
        (result, out)
    }

    fn seal(plain: &[u8], key: &SymmetricKey, version: FormatVersion, workers: usize) -> Vec<u8> {
        let (result, sealed) = through(plain, key, version, workers, Direction::Seal);
        result.expect("seals");
        sealed
    }

    fn open(
        sealed: &[u8],
        key: &SymmetricKey,
        version: FormatVersion,
        workers: usize,
    ) -> (Result<(), CryptoError>, Vec<u8>) {
        through(sealed, key, version, workers, Direction::Open)
    }

    const SIZES: [usize; 8] = [
        0,
        1,
        CHUNK_SIZE - 1,
        CHUNK_SIZE,
        CHUNK_SIZE + 1,
        2 * CHUNK_SIZE,
        5 * CHUNK_SIZE + 3,
        9 * CHUNK_SIZE,
    ];

    #[test]
    fn parallel_output_equals_the_sequential_stream_byte_for_byte() {
        let key = SymmetricKey::generate();
        for version in [FormatVersion::V1, FormatVersion::V2] {
            for len in SIZES {
                let plain = data(len);
                let reference = seal_all(&plain, &key, version);
                for workers in [1, 2, 3, 8] {
                    let sealed = seal(&plain, &key, version, workers);
                    assert!(
                        sealed == reference,
                        "{version:?} {len} bytes, {workers} workers"
                    );
                    let (opened, back) = open(&reference, &key, version, workers);
                    assert_eq!(opened, Ok(()), "{version:?} {len} bytes, {workers} workers");
                    assert!(back == plain, "{version:?} {len} bytes, {workers} workers");
                }
            }
        }
    }

    #[test]
    fn attacks_on_the_chunk_sequence_are_refused_in_parallel() {
        let key = SymmetricKey::generate();
        let plain = data(4 * CHUNK_SIZE + 100);
        let v2 = seal_all(&plain, &key, FormatVersion::V2);
        let chunk =
            |i: usize| &v2[i * SEALED_CHUNK_SIZE..((i + 1) * SEALED_CHUNK_SIZE).min(v2.len())];
        let join = |order: &[usize]| -> Vec<u8> {
            order.iter().flat_map(|&i| chunk(i)).copied().collect()
        };
        let mut flipped = v2.clone();
        flipped[2 * SEALED_CHUNK_SIZE + 40] ^= 1;
        // (name, stored object, index of the first chunk that must fail)
        let attacks: Vec<(&str, Vec<u8>, usize)> = vec![
            ("reordered", join(&[0, 2, 1, 3, 4]), 1),
            ("dropped middle", join(&[0, 1, 3, 4]), 2),
            ("dropped final", join(&[0, 1, 2, 3]), 3),
            ("duplicated", join(&[0, 1, 1, 2, 3, 4]), 2),
            ("final repeated", join(&[0, 1, 2, 3, 4, 4]), 4),
            (
                "truncated inside a chunk",
                v2[..3 * SEALED_CHUNK_SIZE + 7].to_vec(),
                3,
            ),
            (
                "truncated to the tag",
                v2[..4 * SEALED_CHUNK_SIZE + MAC_LEN - 1].to_vec(),
                4,
            ),
            ("bit flipped", flipped, 2),
            ("empty", Vec::new(), 0),
        ];
        for (name, stored, first_bad) in attacks {
            // The sequential opener is the reference: same verdict, same plaintext prefix.
            assert!(
                open_all(&stored, &key, FormatVersion::V2).is_err(),
                "{name}"
            );
            for workers in [1, 2, 3, 8] {
                let (result, out) = open(&stored, &key, FormatVersion::V2, workers);
                assert!(
                    matches!(result, Err(CryptoError::Stream(_))),
                    "{name}, {workers} workers: {result:?}"
                );
                assert!(
                    out == plain[..first_bad * CHUNK_SIZE],
                    "{name}, {workers} workers: exactly the chunks before the bad one"
                );
            }
        }
        // A v2 object read as v1 fails at once: the nonces are domain-separated.
        assert!(open(&v2, &key, FormatVersion::V1, 2).0.is_err());
    }

    #[test]
    fn errors_from_read_and_write_stop_the_run_in_order() {
        #[derive(Debug, PartialEq)]
        enum Failure {
            Read(u64),
            Write(u64),
            Crypto,
        }
        impl From<CryptoError> for Failure {
            fn from(_: CryptoError) -> Self {
                Self::Crypto
            }
        }
        let key = SymmetricKey::generate();
        let len = 10 * CHUNK_SIZE as u64;
        for workers in [1, 2, 4] {
            let (mut reads, mut writes) = (0u64, 0u64);
            let result = seal_chunks(
                &key,
                FormatVersion::V2,
                len,
                Parallelism::workers(workers),
                |_| {
                    reads += 1;
                    if reads == 6 {
                        return Err(Failure::Read(reads - 1));
                    }
                    Ok(())
                },
                |_| {
                    writes += 1;
                    Ok(())
                },
            );
            assert_eq!(result, Err(Failure::Read(5)), "{workers} workers");
            assert_eq!(reads, 6, "no read after the failed one");
            assert_eq!(writes, 5, "every chunk before the failed read is written");

            let mut writes = 0u64;
            let result = seal_chunks(
                &key,
                FormatVersion::V2,
                len,
                Parallelism::workers(workers),
                |_| Ok(()),
                |_| {
                    writes += 1;
                    if writes == 3 {
                        return Err(Failure::Write(writes - 1));
                    }
                    Ok(())
                },
            );
            assert_eq!(result, Err(Failure::Write(2)), "{workers} workers");
            assert_eq!(writes, 3, "nothing is written after a failed write");
        }
    }

    /// Counts chunks read but not yet written; the first write waits until the workers
    /// have read as far ahead as the buffers allow, so the bound is reached, not just
    /// respected.
    #[test]
    fn chunks_in_flight_never_exceed_the_buffers() {
        let key = SymmetricKey::generate();
        let chunks = 40u64;
        for workers in [2, 3, 5] {
            let parallelism = Parallelism::workers(workers);
            let cap = parallelism.buffers();
            let reads = AtomicUsize::new(0);
            let writes = AtomicUsize::new(0);
            let peak = AtomicUsize::new(0);
            let read_ahead = (Mutex::new(()), Condvar::new());
            seal_chunks::<CryptoError, _, _>(
                &key,
                FormatVersion::V2,
                chunks * CHUNK_SIZE as u64,
                parallelism,
                |_| {
                    let in_flight =
                        reads.fetch_add(1, Ordering::SeqCst) + 1 - writes.load(Ordering::SeqCst);
                    peak.fetch_max(in_flight, Ordering::SeqCst);
                    let _waiting = lock(&read_ahead.0);
                    read_ahead.1.notify_all();
                    Ok(())
                },
                |_| {
                    if writes.load(Ordering::SeqCst) == 0 {
                        // Deadlock guard only: a correct pipeline reaches `cap` promptly.
                        let guard = lock(&read_ahead.0);
                        let (_guard, timeout) = read_ahead
                            .1
                            .wait_timeout_while(guard, std::time::Duration::from_secs(60), |_| {
                                reads.load(Ordering::SeqCst) < cap
                            })
                            .expect("not poisoned");
                        assert!(
                            !timeout.timed_out(),
                            "the workers never read {cap} chunks ahead"
                        );
                    }
                    writes.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                },
            )
            .expect("seals");
            assert_eq!(writes.load(Ordering::SeqCst), chunks as usize);
            assert_eq!(peak.load(Ordering::SeqCst), cap, "{workers} workers");
        }
    }

    #[test]
    fn a_panicking_reader_does_not_hang_the_run() {
        let key = SymmetricKey::generate();
        let outcome = std::panic::catch_unwind(|| {
            let mut reads = 0;
            seal_chunks::<CryptoError, _, _>(
                &key,
                FormatVersion::V2,
                8 * CHUNK_SIZE as u64,
                Parallelism::workers(3),
                |_| {
                    reads += 1;
                    assert!(reads < 4, "reader failure");
                    Ok(())
                },
                |_| Ok(()),
            )
        });
        assert!(outcome.is_err(), "the reader's panic reaches the caller");
    }

    #[test]
    fn worker_counts_are_at_least_one() {
        assert_eq!(Parallelism::workers(0).worker_count(), 1);
        assert_eq!(Parallelism::workers(1).buffers(), 1);
        assert_eq!(Parallelism::workers(4).buffers(), 5);
        let auto = Parallelism::available().worker_count();
        assert!((1..=Parallelism::MAX_AUTO_WORKERS).contains(&auto));
    }
}
