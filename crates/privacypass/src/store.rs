//! Where a token server remembers spent tokens.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use crate::StoreError;

/// The set of spent token preimages `t`. Implementations must make
/// [`mark_spent`](SpentTokenStore::mark_spent) atomic: of two concurrent calls with the same
/// `t`, exactly one returns `Ok(true)`.
pub trait SpentTokenStore: Send + Sync {
    /// Whether `t` has been spent.
    fn is_spent(&self, t: &[u8; 32]) -> Result<bool, StoreError>;
    /// Record t as spent; Ok(false) if it already was (a concurrent spend won).
    fn mark_spent(&self, t: &[u8; 32]) -> Result<bool, StoreError>;
}

/// An in-memory [`SpentTokenStore`], for tests and ephemeral servers.
#[derive(Debug, Default)]
pub struct MemorySpentTokens {
    spent: Mutex<HashSet<[u8; 32]>>,
}

impl MemorySpentTokens {
    /// An empty store.
    pub fn new() -> MemorySpentTokens {
        MemorySpentTokens::default()
    }

    /// How many tokens have been spent.
    pub fn len(&self) -> usize {
        self.set().len()
    }

    /// Whether no token has been spent.
    pub fn is_empty(&self) -> bool {
        self.set().is_empty()
    }

    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        // Each operation is a single HashSet call, so a panic elsewhere while holding the
        // lock cannot leave the set inconsistent: recover from poisoning.
        self.spent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SpentTokenStore for MemorySpentTokens {
    fn is_spent(&self, t: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self.set().contains(t))
    }

    fn mark_spent(&self, t: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self.set().insert(*t))
    }
}
