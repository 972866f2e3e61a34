#pragma once

namespace engram::persistence {

/// Fixes the process allocator's (glibc malloc's) thresholds instead of
/// letting them drift: blocks up to 4 MiB come from the heap and are
/// reused once freed, and up to 32 MiB of free memory at a heap's top is
/// kept. A node receiving frames of hundreds of kilobytes then reuses their
/// buffers instead of mapping fresh pages for each (page faults were a
/// seventh of a sink's time at glibc's 128 KiB default); with glibc's
/// dynamic thresholds instead, freeing one multi-megabyte block (RocksDB's
/// memtables) raises them for good. What a large load leaves free is given
/// back by `return_free_memory`. engramd calls this at start; a program
/// hosting stores may too. Returns false where the allocator has no such
/// settings.
bool tune_allocator() noexcept;

/// Gives the allocator's free memory back to the system (glibc's
/// malloc_trim): `store::load` does after a large load, whose decoding
/// threads freed their batches.
void return_free_memory() noexcept;

} // namespace engram::persistence
