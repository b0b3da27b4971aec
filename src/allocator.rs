//! The process's memory allocator: jemalloc, whose per-thread caches take malloc and free off the hot
//! path of every request (glibc's allocator spent a fifth of the worker's time there under load).
//!
//! Its settings keep the footprint of a service that idles most of the time small: two arenas (one per
//! core here, rather than four per core), and freed pages handed back to the kernel after a second
//! rather than ten.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Read by jemalloc when it starts; environment variable `_RJEM_MALLOC_CONF` overrides it.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8; 50] = b"narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:1000\0";
