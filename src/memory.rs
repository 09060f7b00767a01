//! Giving memory freed by a model load back to the system.
//!
//! Loading a large model decodes its trees into a transient form (~56 bytes a node) before
//! compiling them into the served one (8 or 12 bytes a node). glibc keeps the freed
//! transient pages resident: they sit below the small allocations the load leaves behind,
//! where its automatic trimming (the top of the heap only) never reaches. A 500-tree
//! XGBoost model of 1.5 MB compact left ~9 MB resident. `malloc_trim` returns every whole
//! free page of every arena (`docs/benchmarks.md`, "Large ensembles": the memory bar).
//!
//! This is the crate's one `unsafe` outside the vector walk: a call to a C function with no
//! preconditions (it takes the allocator's own locks and only releases pages of chunks
//! that are free). Elsewhere than glibc it is a no-op: musl's allocator unmaps freed
//! memory itself.
#![allow(unsafe_code)]

/// Returns the allocator's free pages to the system. Costs about a millisecond after a
/// large load; call it after one, not on a request's path.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: `malloc_trim` has no preconditions and is thread-safe (see the module).
        unsafe {
            malloc_trim(0);
        }
    }
}
