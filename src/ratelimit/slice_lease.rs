//! How far in time this process may take first slices, written to the data dir before it
//! may. A restarted node reads how far its last process could have gone: its enrolments
//! in windows that began after that (made ahead of them, before the restart) are as good
//! as fresh, since that process admitted nothing there. Both figures are on the clock
//! that placed the windows, and the lease never moves back, so a clock stepped back (in a
//! process, or at a restart) changes nothing. A data dir restored from a backup must lose
//! this file (`ratelimit-slice-lease`): without it, every window counts as reached.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::wall_clock::now_ms;
use crate::shutdown::Shutdown;

const FILE: &str = "ratelimit-slice-lease";
/// How far ahead each renewal reaches, and how often it is renewed: a disk that stalls
/// for longer than the difference stops first slices until it answers again.
const AHEAD: Duration = Duration::from_secs(3);
const RENEW_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct SliceLease {
    /// First slices may be taken in windows that begin before this (ms since the epoch).
    until: AtomicU64,
    /// How far the process before this one could have taken them.
    previous_until: u64,
    file: Option<PathBuf>,
}

impl SliceLease {
    /// Reads the last process's lease from `dir` and writes this one's first. A data dir
    /// that held a node before but no lease was used by a version without one, which may
    /// have reached any window.
    pub fn open(dir: &Path, fresh_dir: bool) -> io::Result<Arc<SliceLease>> {
        let path = dir.join(FILE);
        let previous_until = match std::fs::read(&path) {
            Ok(bytes) => bytes.get(..8).map_or(u64::MAX, |b| u64::from_be_bytes(b.try_into().expect("eight bytes"))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => if fresh_dir { 0 } else { u64::MAX },
            Err(e) => return Err(e),
        };
        let lease = SliceLease { until: AtomicU64::new(0), previous_until, file: Some(path) };
        lease.renew_once()?;
        Ok(Arc::new(lease))
    }

    /// No file: a lease reaching `until`, after a process that reached `previous_until`.
    #[cfg(test)]
    pub fn fixed(until: u64, previous_until: u64) -> Arc<SliceLease> {
        Arc::new(SliceLease { until: AtomicU64::new(until), previous_until, file: None })
    }

    /// Whether a first slice may be taken in a window that began at `start_ms`.
    pub fn covers(&self, start_ms: u64) -> bool {
        start_ms < self.until.load(Ordering::Relaxed)
    }

    /// Whether the process before this one can have taken a first slice in a window that
    /// began at `start_ms`.
    pub fn previous_reached(&self, start_ms: u64) -> bool {
        start_ms < self.previous_until
    }

    /// Renews the lease every second until `shutdown`; a renewal that fails leaves the
    /// last one to run out.
    pub async fn renew(self: Arc<Self>, mut shutdown: Shutdown) {
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(RENEW_EVERY) => {}
            }
            let this = self.clone();
            // An fsync: off the runtime's threads, which serve the proxy.
            match tokio::task::spawn_blocking(move || this.renew_once()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "renewing the rate limit's first-slice lease failed; first slices stop when it runs out"),
                Err(e) => tracing::warn!(error = %e, "the first-slice lease renewal panicked"),
            }
        }
    }

    /// Writes `now + AHEAD` durably, then lets this process use it: what the file says is
    /// never short of what the process may have done. Never less than the file said
    /// before, this process's or the last one's: a clock stepped back must not shrink it.
    fn renew_once(&self) -> io::Result<()> {
        let before = if self.previous_until == u64::MAX { 0 } else { self.previous_until };
        let until = (now_ms() + AHEAD.as_millis() as u64).max(self.until.load(Ordering::Relaxed)).max(before);
        if let Some(path) = &self.file {
            let file: File = OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
            // Eight bytes at the start of one block: rewritten whole or not at all.
            file.write_all_at(&until.to_be_bytes(), 0)?;
            file.sync_data()?;
        }
        self.until.fetch_max(until, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_reads_how_far_the_last_process_could_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = SliceLease::open(dir.path(), true).unwrap();
        assert_eq!(first.previous_until, 0, "a fresh data dir: no process before");
        let reached = first.until.load(Ordering::Relaxed);
        assert!(reached >= now_ms() && first.covers(reached - 1) && !first.covers(reached));
        drop(first);
        let second = SliceLease::open(dir.path(), false).unwrap();
        assert_eq!(second.previous_until, reached);
        assert!(second.previous_reached(reached - 1) && !second.previous_reached(reached));
    }

    /// The last process's lease reached further than this one's first would (the clock
    /// stepped back): the file keeps the further one.
    #[test]
    fn the_lease_never_shrinks() {
        let dir = tempfile::tempdir().unwrap();
        let far = now_ms() + 3_600_000;
        std::fs::write(dir.path().join(FILE), far.to_be_bytes()).unwrap();
        let lease = SliceLease::open(dir.path(), false).unwrap();
        assert_eq!(lease.previous_until, far);
        let written = u64::from_be_bytes(std::fs::read(dir.path().join(FILE)).unwrap()[..8].try_into().unwrap());
        assert!(written >= far, "the file went back from {far} to {written}");
        lease.renew_once().unwrap();
        assert!(lease.until.load(Ordering::Relaxed) >= far);
    }

    #[test]
    fn a_short_lease_file_may_have_reached_any_window() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), [1, 2, 3]).unwrap();
        assert!(SliceLease::open(dir.path(), false).unwrap().previous_reached(u64::MAX - 1));
    }

    #[test]
    fn a_data_dir_used_before_without_a_lease_may_have_reached_any_window() {
        let dir = tempfile::tempdir().unwrap();
        let lease = SliceLease::open(dir.path(), false).unwrap();
        assert!(lease.previous_reached(u64::MAX - 1));
    }
}
