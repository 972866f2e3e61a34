#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

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

} // namespace engram::test
