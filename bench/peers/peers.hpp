#pragma once

// Runs the peer benchmark script (bench/peers/keyed_updates.mjs) and reads
// its JSON figures, so a benchmark can compare against Yjs and Automerge in
// the same run.

#include <cstdio>
#include <cstdlib>
#include <string>

namespace engram::bench {

/// Runs `node keyed_updates.mjs <args>`; returns its JSON output (empty when
/// node or the npm packages are missing: `cd bench/peers && npm install`).
inline std::string run_peers(const std::string& args) {
  std::string cmd
      = "node " ENGRAM_PEERS_DIR "/keyed_updates.mjs " + args + " 2>/dev/null";
  std::string out;
  if (auto pipe = popen(cmd.c_str(), "r")) {
    char buf[4096];
    while (auto got = fread(buf, 1, sizeof(buf), pipe))
      out.append(buf, got);
    pclose(pipe);
  }
  return out;
}

/// Reads `"<key>":<number>` inside the object named `section`; 0 if absent.
inline double json_number(const std::string& json, const std::string& section,
                          const std::string& key) {
  auto s = json.find("\"" + section + "\"");
  if (s == std::string::npos)
    return 0;
  auto k = json.find("\"" + key + "\":", s);
  if (k == std::string::npos)
    return 0;
  return std::strtod(json.c_str() + k + key.size() + 3, nullptr);
}

} // namespace engram::bench
