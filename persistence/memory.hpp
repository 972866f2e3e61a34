#pragma once

namespace engram::persistence {

/// Makes the process's allocator (glibc malloc) return freed memory to the
/// system promptly: fixed mmap and trim thresholds of 128 KiB instead of
/// glibc's dynamic ones. With the dynamic ones, freeing one large block
/// (RocksDB frees multi-megabyte memtable blocks when a store closes)
/// raises the trim threshold up to 64 MiB, after which the heaps of worker
/// threads keep the pages they freed — megabytes per thread that a
/// long-running node never gets back. engramd calls this at start; a
/// program hosting stores may too. Returns false where the allocator has no
/// such settings.
bool release_memory_promptly() noexcept;

} // namespace engram::persistence
