#include "persistence/allocator.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace engram::persistence {

bool tune_allocator() noexcept {
#if defined(__GLIBC__)
  return mallopt(M_MMAP_THRESHOLD, 4 << 20) == 1
         && mallopt(M_TRIM_THRESHOLD, 32 << 20) == 1;
#else
  return false;
#endif
}

void return_free_memory() noexcept {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

} // namespace engram::persistence
