#include "persistence/memory.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace engram::persistence {

bool release_memory_promptly() noexcept {
#if defined(__GLIBC__)
  constexpr int threshold = 128 * 1024;
  return mallopt(M_MMAP_THRESHOLD, threshold) == 1
         && mallopt(M_TRIM_THRESHOLD, threshold) == 1;
#else
  return false;
#endif
}

} // namespace engram::persistence
