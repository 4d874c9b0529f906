//! CLOCK_MONOTONIC time points and deadlines. Timeouts in shmproc never use the wall clock.

use std::time::Duration;

use nix::time::{ClockId, clock_gettime};

/// A point on CLOCK_MONOTONIC, in nanoseconds since an unspecified start (boot on Linux).
///
/// The same clock in every process of the machine, so a deadline can be compared against a time
/// taken in another process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct MonoTime {
    nanos: u64,
}

impl MonoTime {
    /// Now. A vDSO call, not a syscall.
    pub(crate) fn now() -> Self {
        // CLOCK_MONOTONIC cannot fail on Linux with a valid clock id and pointer.
        let ts = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC is always available on Linux");
        let nanos = (ts.tv_sec() as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec() as u64);
        MonoTime { nanos }
    }

    /// `now() + d`, saturating far in the future instead of overflowing.
    pub(crate) fn after(d: Duration) -> Self {
        let add = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        MonoTime { nanos: Self::now().nanos.saturating_add(add) }
    }

    /// The time left until `self`, zero when it has passed.
    pub(crate) fn remaining(self) -> Duration {
        Duration::from_nanos(self.nanos.saturating_sub(Self::now().nanos))
    }

    /// Whether `self` has passed.
    pub(crate) fn has_passed(self) -> bool {
        Self::now() >= self
    }

    /// Nanoseconds since the clock's origin.
    pub(crate) fn as_nanos(self) -> u64 {
        self.nanos
    }

    /// As an absolute `timespec` for futex and pthread calls that take CLOCK_MONOTONIC deadlines.
    pub(crate) fn to_timespec(self) -> nix::libc::timespec {
        // Saturate at i64::MAX seconds: far beyond any real deadline.
        let secs = (self.nanos / 1_000_000_000).min(i64::MAX as u64);
        nix::libc::timespec {
            tv_sec: secs as nix::libc::time_t,
            tv_nsec: (self.nanos % 1_000_000_000) as nix::libc::c_long,
        }
    }
}

/// When a blocking call gives up: never (`None`) or at a monotonic time point.
pub(crate) type Deadline = Option<MonoTime>;

/// The deadline for a call that may wait `timeout` (None = forever).
pub(crate) fn deadline_after(timeout: Option<Duration>) -> Deadline {
    timeout.map(MonoTime::after)
}

/// The deadline for a call that may wait at most `timeout`.
#[inline]
pub(crate) fn deadline_in(timeout: Duration) -> Deadline {
    Some(MonoTime::after(timeout))
}

/// Whether `deadline` has passed (never, for `None`).
#[inline]
pub(crate) fn deadline_passed(deadline: Deadline) -> bool {
    deadline.is_some_and(|d| d.has_passed())
}

/// The earlier of `deadline` and `now + slice`: how long to sleep before looking again at
/// something no wake-up announces (a peer's death, say).
#[inline]
pub(crate) fn slice_deadline(deadline: Deadline, slice: Duration) -> Deadline {
    let s = MonoTime::after(slice);
    Some(deadline.map_or(s, |d| d.min(s)))
}
