//! Tests with a timing bound (a verdict within 100 ms while a writer holds the database, a thousand
//! rebindings under a flood in 3 s) run alone. A crate's integration tests are one binary whose
//! tests run side by side on threads, and a heavy neighbour (a million records written, another
//! flood) would make such a bound fail for load, not for a fault.
//!
//! One lock decides: every root test holds [`alongside`] for its whole run and a timed one holds
//! [`exclusive`], both taken by `#[root_test]` (`#[root_test("what it needs", timing)]` for a timed
//! one) before the test's body, so a timed test starts once the tests running have finished and
//! none starts beside it. Tests without root take nothing: they are light (a program's usage, a
//! parse), and none has a timing bound. A timed test that is no root test calls [`exclusive`]
//! itself.

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

static LOAD: RwLock<()> = RwLock::new(());

/// Held by a test that may run beside others (shared).
pub fn alongside() -> RwLockReadGuard<'static, ()> {
    // A test that failed while holding it leaves nothing to repair: the lock guards no data.
    LOAD.read().unwrap_or_else(PoisonError::into_inner)
}

/// Held by a test with a timing bound: no other test that takes the lock runs meanwhile.
pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    LOAD.write().unwrap_or_else(PoisonError::into_inner)
}
