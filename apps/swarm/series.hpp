#pragma once

// The time series of a run: its CSV (--csv) and a plot of it (--plot,
// gnuplot).

#include "apps/swarm/options.hpp"

#include <optional>
#include <string>

namespace engram::swarm {

/// Writes the run's CSV (--csv, or a private temporary file for --plot
/// alone) and the plot; an error message when either could not be written.
std::optional<std::string> write_series(const options& o,
                                        const std::string& csv, bool simulated);

} // namespace engram::swarm
