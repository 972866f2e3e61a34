#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace engram::test {

/// A fresh directory under $TMPDIR, removed with everything in it.
class temp_dir {
public:
  temp_dir() {
    // mkdtemp replaces the trailing six 'X's with a unique suffix.
    std::string buf
        = (std::filesystem::temp_directory_path() / "engram-test-").string()
          + std::string(6, 'X');
    if (mkdtemp(buf.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    path_ = buf;
  }

  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::string& path() const { return path_; }

  std::string sub(const std::string& name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

/// The names of the files below `dir` that contain `needle` (e.g. a
/// store's tables, logs and manifests holding a text that must not be
/// there).
inline std::vector<std::string> files_containing(const std::string& dir,
                                                 const std::string& needle) {
  std::vector<std::string> found;
  for (auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file())
      continue;
    std::ifstream in{entry.path(), std::ios::binary};
    std::string bytes{std::istreambuf_iterator<char>{in}, {}};
    if (bytes.find(needle) != std::string::npos)
      found.push_back(entry.path().filename().string());
  }
  return found;
}

/// True when any file below `dir` contains `needle`.
inline bool any_file_contains(const std::string& dir,
                              const std::string& needle) {
  return !files_containing(dir, needle).empty();
}

} // namespace engram::test
