#pragma once

// engram-swarm --real: the workload on engramd processes on 127.0.0.1.

#include "apps/swarm/options.hpp"

#include <string>

namespace engram::swarm {

/// Runs the workload against `o.nodes` engramd processes (the binary at
/// `engramd`) on 127.0.0.1, real time and TCP; the same invariants.
run_result run_real(const options& o, uint64_t seed,
                    const std::string& engramd);

} // namespace engram::swarm
