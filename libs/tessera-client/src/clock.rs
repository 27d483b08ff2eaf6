//! An injectable source of "now", so that expiry, caching and signatures can be tested without sleeping.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where this library reads the current time from.
///
/// Every component that needs "now" takes an `Arc<dyn Clock>`; the default is [`SystemClock`].
pub trait Clock: fmt::Debug + Send + Sync {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;

    /// The current time as whole seconds since the Unix epoch (0 for times before it).
    fn unix_seconds(&self) -> u64 {
        self.now().duration_since(UNIX_EPOCH).map(|it| it.as_secs()).unwrap_or(0)
    }
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // The one place that reads the real clock.
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to; meant for tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<SystemTime>,
}

impl ManualClock {
    /// A clock standing at `unix_seconds` after the epoch.
    pub fn at_unix(unix_seconds: u64) -> Self {
        Self { now: Mutex::new(UNIX_EPOCH + Duration::from_secs(unix_seconds)) }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }

    /// Sets the clock to `unix_seconds` after the epoch.
    pub fn set_unix(&self, unix_seconds: u64) {
        let mut now = self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *now = UNIX_EPOCH + Duration::from_secs(unix_seconds);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::at_unix(1_000);
        assert_eq!(clock.unix_seconds(), 1_000);
        clock.advance(Duration::from_secs(61));
        assert_eq!(clock.unix_seconds(), 1_061);
        clock.set_unix(5);
        assert_eq!(clock.unix_seconds(), 5);
    }
}
