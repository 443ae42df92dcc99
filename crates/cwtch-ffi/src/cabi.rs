//! The C side of the boundary: reading `(char*, int)` arguments, handing out strings that
//! `c_FreePointer` frees, and the panic guard every export runs in.
//!
//! All the crate's raw-pointer handling is here.

use std::collections::HashSet;
use std::ffi::{c_char, c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard, OnceLock};

use tracing::error;

/// Why an argument was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArgError {
    /// A null pointer with a non-zero length.
    Null(&'static str),
    /// A negative length.
    NegativeLength(&'static str),
    /// The bytes are not UTF-8 (Go would take any bytes; every string of this API is text).
    NotUtf8(&'static str),
}

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgError::Null(a) => write!(f, "invalid argument {a}: null pointer"),
            ArgError::NegativeLength(a) => write!(f, "invalid argument {a}: negative length"),
            ArgError::NotUtf8(a) => write!(f, "invalid argument {a}: not UTF-8"),
        }
    }
}

/// Read a Go-style string argument: `len` bytes at `ptr`, not NUL-terminated (a NUL inside
/// is kept). `(NULL, 0)` is the empty string, as in Go.
///
/// # Safety
///
/// If `ptr` is not null and `len > 0`, `ptr` must point to `len` readable bytes that stay
/// unchanged for the duration of the call.
pub(crate) unsafe fn str_arg(
    name: &'static str,
    ptr: *const c_char,
    len: c_int,
) -> Result<String, ArgError> {
    let len = usize::try_from(len).map_err(|_| ArgError::NegativeLength(name))?;
    if len == 0 {
        return Ok(String::new());
    }
    if ptr.is_null() {
        return Err(ArgError::Null(name));
    }
    // SAFETY: `ptr` is not null and, by this function's contract, points to `len` readable
    // bytes that nobody mutates during the call; `u8` has no alignment requirement.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| ArgError::NotUtf8(name))
}

/// Go's C `char` booleans: 1 is true, anything else false (as `libcwtch`'s `from_c_bool`).
pub(crate) fn bool_arg(b: c_char) -> bool {
    b == 1
}

/// Addresses of the strings handed out and not yet freed: `c_FreePointer` frees only these,
/// so a double free or a foreign pointer is refused (and logged) instead of corrupting the
/// heap.
fn outstanding() -> MutexGuard<'static, HashSet<usize>> {
    static OUT: OnceLock<Mutex<HashSet<usize>>> = OnceLock::new();
    OUT.get_or_init(|| Mutex::new(HashSet::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Hand a string to C: a NUL-terminated copy (interior NULs, which JSON never contains,
/// are dropped) that the caller frees with `c_FreePointer`. Never null.
pub(crate) fn give_string(s: String) -> *mut c_char {
    let c = CString::new(s).unwrap_or_else(|e| {
        let mut bytes = e.into_vec();
        bytes.retain(|b| *b != 0);
        CString::new(bytes).unwrap_or_default()
    });
    let ptr = c.into_raw();
    outstanding().insert(ptr as usize);
    ptr
}

/// Free a string from [`give_string`]. Anything else (null, not ours, already freed) is
/// ignored and logged. Returns whether it freed something.
///
/// The check is by address: a second free of a string is caught only until the allocator
/// hands the same address to a later string, which that stale free would then free. A host
/// that frees twice has a bug this narrows, not one it can always stop.
pub(crate) fn free_string(ptr: *mut c_char) -> bool {
    if ptr.is_null() {
        return false;
    }
    if !outstanding().remove(&(ptr as usize)) {
        error!("c_FreePointer: not a pointer this library handed out (or freed twice); ignored");
        return false;
    }
    // SAFETY: `ptr` came from `CString::into_raw` in `give_string` (it was in the set of
    // outstanding pointers, and is removed from it now, so it is reclaimed exactly once).
    drop(unsafe { CString::from_raw(ptr) });
    true
}

/// Run an export's body, turning a panic into `fallback` (and an error log): no panic ever
/// unwinds into C.
pub(crate) fn guard<T>(name: &str, fallback: impl FnOnce() -> T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(_) => {
            error!(
                function = name,
                "panic inside libCwtch call; returning an error value"
            );
            fallback()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn arguments_are_checked() {
        let s = b"hello\xff";
        let arg = |ptr: *const u8, len: i32| {
            // SAFETY: every call below passes a pointer into `s` with a length within it,
            // or a null pointer.
            unsafe { str_arg("a", ptr.cast(), len) }
        };
        assert_eq!(arg(s.as_ptr(), 5).unwrap(), "hello");
        assert_eq!(arg(std::ptr::null(), 0).unwrap(), "");
        assert_eq!(arg(std::ptr::null(), 3), Err(ArgError::Null("a")));
        assert_eq!(arg(s.as_ptr(), -1), Err(ArgError::NegativeLength("a")));
        assert_eq!(arg(s.as_ptr(), 6), Err(ArgError::NotUtf8("a")));
    }

    #[test]
    fn strings_are_freed_once() {
        let p = give_string("a\0b".into());
        assert!(free_string(p));
        assert!(!free_string(p), "a second free is refused");
        assert!(!free_string(std::ptr::null_mut()));
    }

    #[test]
    fn panics_become_the_fallback() {
        let v = guard("t", || 7, || -> i32 { panic!("boom") });
        assert_eq!(v, 7);
    }
}
