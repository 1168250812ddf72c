//! The server's failures: which mean a lost connection or a retryable conflict, how one reads on
//! a log line, and the failure type of the code that runs inside a transaction.

use postgres::error::SqlState;

use crate::error::StoreError;

/// Whether `e` says the connection is gone (rather than the statement failing): the next
/// operation must connect again.
pub(super) fn is_connection_error(e: &postgres::Error) -> bool {
    const LOST: [&str; 6] = [
        "error communicating",
        "error connecting",
        "timeout waiting",
        "unexpected message",
        "error parsing response",
        "error encoding",
    ];
    let text = e.to_string();
    e.is_closed()
        || LOST.iter().any(|p| text.starts_with(p))
        || matches!(
            e.code(),
            Some(c) if *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
        )
}

/// A client error with its causes on one line: the crate shows `db error` alone, and the server's
/// message (`FATAL: terminating connection due to administrator command`) is in the source.
#[derive(Debug)]
pub(super) struct Explained(pub(super) String);

impl From<&postgres::Error> for Explained {
    fn from(e: &postgres::Error) -> Self {
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            let more = c.to_string();
            if !text.ends_with(&more) {
                text.push_str(": ");
                text.push_str(&more);
            }
            cause = c.source();
        }
        Explained(text.replace('\n', " "))
    }
}

impl std::fmt::Display for Explained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Explained {}

/// A serialisation failure or deadlock: the transaction can be run again.
pub(super) fn is_serialisation_failure(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// A failure inside a transaction: the server's (maybe retryable) or the callback's own.
pub(super) enum PgFail {
    Db(postgres::Error),
    Store(StoreError),
}

impl From<StoreError> for PgFail {
    fn from(e: StoreError) -> Self {
        PgFail::Store(e)
    }
}
