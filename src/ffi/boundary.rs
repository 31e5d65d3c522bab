//! The boundary every entry point goes through: panics caught, failures turned into a status
//! and a thread-local message; and the functions about the library itself.

use std::cell::RefCell;
use std::ffi::CString;
use std::os::raw::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::status::{hl_status, Failure, FfiResult};

thread_local! {
    /// The message of this thread's last failure ("" before the first).
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Keeps `message` as this thread's last error (NUL bytes in it become spaces).
fn set_last_error(message: &str) {
    let clean = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // A thread being torn down has no slot left: the message is dropped.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = clean);
}

/// The text of a caught panic's payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// Runs an entry point's body: 0 on success; on failure its status, with the message kept for
/// `hl_last_error()`; a panic is caught (it never unwinds into C) and becomes `HL_ERR_PANIC`.
pub(crate) fn guard(body: impl FnOnce() -> FfiResult<()>) -> c_int {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return hl_status::HL_OK as c_int,
        Ok(Err(failure)) => failure,
        Err(payload) => Failure::new(
            hl_status::HL_ERR_PANIC,
            format!(
                "internal error (a bug in hooklens, please report it): {}",
                panic_text(payload.as_ref())
            ),
        ),
    };
    set_last_error(&failure.message);
    failure.status
}

/// Runs a body that returns nothing (the `_free` functions); a panic is caught and dropped.
pub(crate) fn guard_void(body: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(body));
}

/// Frees a handle made by `Box::into_raw`; NULL does nothing, a panic in its drop is caught.
///
/// # Safety
/// `p` is NULL or came from `Box::into_raw` and is not used afterwards.
pub(crate) unsafe fn free_handle<T>(p: *mut T) {
    if p.is_null() {
        return;
    }
    guard_void(|| {
        // SAFETY: the caller passes a pointer from Box::into_raw, freed once here.
        drop(unsafe { Box::from_raw(p) });
    });
}

/// The message of the last failed call on this thread, or "" when none has failed. The string
/// belongs to the library: it stays valid until the next failing call on the same thread; do
/// not free it. A successful call leaves it as it was.
#[no_mangle]
pub extern "C" fn hl_last_error() -> *const c_char {
    LAST_ERROR
        .try_with(|e| e.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

/// The library's version ("0.1.0"), a static string: never freed, valid for the whole run.
#[no_mangle]
pub extern "C" fn hl_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Sets the number of CPU threads later passes use, a budget shared by passes that run at
/// once (1 runs single-threaded; 0 restores the default: `$HOOKLENS_THREADS`, else every
/// core). Affects the whole process; may be called from any thread.
#[no_mangle]
pub extern "C" fn hl_set_threads(n: usize) {
    guard_void(|| crate::set_num_threads(n));
}

/// Frees a string the library returned (`hl_sweep_json`'s response). NULL does nothing.
///
/// # Safety
/// `s` is NULL or a string from this library not freed yet; it is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn hl_string_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    guard_void(|| {
        // SAFETY: the caller passes a pointer from `CString::into_raw` (hl_sweep_json) that
        // was not freed yet, so taking it back once is sound.
        drop(unsafe { CString::from_raw(s) });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last_error() -> String {
        // SAFETY: hl_last_error returns this thread's NUL-terminated message.
        unsafe { CStr::from_ptr(hl_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let status = guard(|| panic!("boom {}", 7));
        assert_eq!(status, hl_status::HL_ERR_PANIC as c_int);
        assert!(last_error().contains("boom 7"), "{}", last_error());
        let status = guard(|| Err(Failure::new(hl_status::HL_ERR_INPUT, "bad\0input")));
        assert_eq!(status, hl_status::HL_ERR_INPUT as c_int);
        assert_eq!(last_error(), "bad input");
        assert_eq!(guard(|| Ok(())), 0);
        assert_eq!(last_error(), "bad input", "success leaves the last error");
    }

    #[test]
    fn the_last_error_is_per_thread() {
        guard(|| Err(Failure::new(hl_status::HL_ERR_INPUT, "here")));
        let other = std::thread::spawn(last_error).join().unwrap();
        assert_eq!(other, "");
        assert_eq!(last_error(), "here");
    }
}
