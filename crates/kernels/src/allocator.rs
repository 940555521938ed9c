//! Keeping freed memory for reuse.
//!
//! A StyleGAN2 pass at 1024² allocates and frees activation buffers of 100+ MB many times. glibc
//! serves allocations above its mmap threshold (at most 32 MB) with fresh `mmap` pages and
//! returns them on `free`, so every such buffer costs one page fault per 4 KiB when it is first
//! written — measured at a third of the CPU time of a 1024² inversion, spent in the kernel.
//! [`reuse_freed_memory`] turns that off for the process.

/// Serves every allocation from the heap and keeps freed memory for later allocations instead of
/// returning it to the system (glibc: `mallopt(M_MMAP_MAX, 0)` and a 2 GiB `M_TRIM_THRESHOLD`),
/// for the whole process. The resident size then stays near its peak between passes rather
/// than falling back, which is what a process that runs many passes wants.
///
/// Call it once at start-up, before large allocations. Returns whether the settings were
/// applied: `false` on platforms other than Linux with glibc, where it does nothing (the same
/// can be had there from the allocator's own settings). With glibc, the environment variable
/// `GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647` has the same
/// effect without code.
pub fn reuse_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; both are valid values.
        unsafe { libc::mallopt(libc::M_MMAP_MAX, 0) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
