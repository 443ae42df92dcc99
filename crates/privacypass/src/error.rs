//! The crate's error type.

/// Everything that can go wrong in this crate.
///
/// Errors that reach a remote party should be reported opaquely (close the connection, or
/// answer "post failed"); the variants exist for local logs and tests.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A 32-byte string is not the canonical encoding of a ristretto255 point.
    #[error("invalid ristretto255 point encoding")]
    InvalidPoint,
    /// A 32-byte string is not a canonical ristretto255 scalar (or is zero where a secret key
    /// is expected).
    #[error("invalid or non-canonical ristretto255 scalar")]
    InvalidScalar,
    /// The input is not JSON of the expected shape.
    #[error("malformed JSON")]
    BadJson(#[source] serde_json::Error),
    /// A required JSON field is absent or `null`.
    #[error("JSON field {field:?} is missing or null")]
    MissingField {
        /// The Go name of the field.
        field: &'static str,
    },
    /// A field is not valid standard base64 (with padding).
    #[error("JSON field {field:?} is not valid standard base64")]
    InvalidBase64 {
        /// The Go name of the field.
        field: &'static str,
    },
    /// A field decodes to the wrong number of bytes.
    #[error("field {field:?} is {actual} bytes long, expected {expected}")]
    InvalidLength {
        /// The name of the field.
        field: &'static str,
        /// The length this protocol requires.
        expected: usize,
        /// The length received.
        actual: usize,
    },
    /// A batch is empty or larger than allowed.
    #[error("batch of {size} tokens is outside 1..={max}")]
    BatchSize {
        /// The number of tokens in the batch.
        size: usize,
        /// The largest batch accepted.
        max: usize,
    },
    /// The numbers of unsigned, blinded and signed tokens in one issuance do not agree.
    #[error("token counts disagree: {unsigned} unsigned, {blinded} blinded, {signed} signed")]
    CountMismatch {
        /// Client-side secrets kept for the batch.
        unsigned: usize,
        /// Blinded tokens sent to the server.
        blinded: usize,
        /// Signed tokens returned by the server.
        signed: usize,
    },
    /// The server's batch DLEQ proof does not verify (wrong key, forged tokens, or client and
    /// server transcripts differ).
    #[error("batch DLEQ proof does not verify")]
    BadProof,
    /// The token has already been spent.
    #[error("token already spent")]
    DoubleSpend,
    /// The token's MAC does not verify (wrong data, wrong server, or not a real token).
    #[error("token MAC does not verify")]
    InvalidMac,
    /// The spent-token store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A failure of a [`SpentTokenStore`](crate::SpentTokenStore) implementation.
///
/// Store implementations in other crates wrap their own error (or a static message) with
/// [`StoreError::new`]; the original is available as the error's `source()` and through
/// [`StoreError::inner`] (for downcasting).
#[derive(Debug, thiserror::Error)]
#[error("spent-token store failed")]
pub struct StoreError {
    #[source]
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl StoreError {
    /// Wrap a store's error: anything convertible into a boxed error, including a `&str` or
    /// `String` message.
    pub fn new<E>(source: E) -> StoreError
    where
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        StoreError {
            source: source.into(),
        }
    }

    /// The wrapped error.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }
}
