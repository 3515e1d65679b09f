//! Allocator settings that decide most of the process's RSS. Measured with the load script,
//! back to back on one machine: SQLite idle 55 → 37 MiB and sustained peak 136–156 → 99–122 MiB,
//! PostgreSQL idle 43 → 33 MiB and peak 125–135 → 88–101 MiB, CPU per alert unchanged within noise.
//!
//! - No transparent huge pages. mimalloc asks for them on its arenas (the crate's `no_thp`
//!   feature stops that) and a host with THP `always` hands them out unasked (the prctl stops
//!   that): a 2 MiB page stays resident whole while one byte of it is live.
//! - Freed memory goes back to the OS at once. By default mimalloc waits a second and then purges
//!   only when the same thread allocates again, so what a burst freed stayed resident while the
//!   process idled.

/// `mi_option_purge_delay` in mimalloc 3's `mimalloc.h`; `libmimalloc-sys` names no constant for
/// it. The unit test below checks the index against the option's documented default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Applies the settings above; `main` calls it first, before any other thread exists. An
/// operator's `MIMALLOC_PURGE_DELAY` still wins.
pub fn bound_memory() {
    let purge_delay_set = std::env::var_os("MIMALLOC_PURGE_DELAY").is_some();
    // SAFETY: prctl(PR_SET_THP_DISABLE) takes integers and touches no memory of ours;
    // mi_option_set only stores an option value.
    unsafe {
        #[cfg(target_os = "linux")]
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        if !purge_delay_set {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_delay_index_names_the_purge_delay() {
        // mimalloc's default purge delay is 1000 ms (options.c); no other option defaults to it.
        // The test binary runs with the system allocator and never calls `bound_memory`.
        let value = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(value, 1000, "option {MI_OPTION_PURGE_DELAY} is not mimalloc's purge delay");
    }
}
