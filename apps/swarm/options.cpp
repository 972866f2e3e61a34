#include "apps/swarm/options.hpp"

#include <cstdio>
#include <sstream>

namespace engram::swarm {

std::string command_of(const options& o, uint64_t seed) {
  std::ostringstream out;
  out << "engram-swarm --seed " << seed << " --agents " << o.agents
      << " --nodes " << o.nodes << " --writes " << o.writes << " --workload-ms "
      << o.workload_ms << " --conflict-rate " << o.conflict_rate
      << " --belief-share " << o.belief_share << " --episodic-share "
      << o.episodic_share << " --procedural-share " << o.procedural_share
      << " --instance-share " << o.instance_share;
  if (o.share_rate > 0)
    out << " --share-rate " << o.share_rate;
  if (o.tell_rate > 0)
    out << " --tell-rate " << o.tell_rate;
  if (o.broadcast_rate > 0)
    out << " --broadcast-rate " << o.broadcast_rate;
  if (o.loss > 0)
    out << " --loss " << o.loss;
  if (o.dup > 0)
    out << " --dup " << o.dup;
  if (o.delay > 0)
    out << " --delay " << o.delay;
  if (o.partition)
    out << " --partition";
  if (o.one_way)
    out << " --one-way";
  if (o.crash)
    out << " --crash";
  if (o.skew_ms > 0)
    out << " --skew-ms " << o.skew_ms;
  if (o.heal_limit_ms != options{}.heal_limit_ms)
    out << " --heal-limit-ms " << o.heal_limit_ms;
  return out.str();
}

uint64_t fnv1a(const std::string& text, uint64_t h) {
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string hex(uint64_t x) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx",
                static_cast<unsigned long long>(x));
  return buf;
}

} // namespace engram::swarm
