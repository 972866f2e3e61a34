#pragma once

// Network namespaces made by a test (needs root and iproute2): real
// partitions between engramd processes by taking links or forwarding down.
// Everything made is removed afterwards.

#include <boost/test/unit_test.hpp>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace engram::test {

inline bool sh(const std::string& cmd) { return std::system(cmd.c_str()) == 0; }

inline std::string ip_path() {
  for (auto p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
    if (::access(p, X_OK) == 0)
      return p;
  return "ip";
}

/// Moves this process (the calling thread and every thread or process it
/// starts afterwards) into namespace `name`; returns the original's fd.
inline int enter_netns(const std::string& name) {
  int original = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  int fd = ::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  bool ok = original >= 0 && fd >= 0 && ::setns(fd, CLONE_NEWNET) == 0;
  if (fd >= 0)
    ::close(fd);
  if (!ok && original >= 0) {
    ::close(original);
    return -1;
  }
  return original;
}

inline void leave_netns(int original) {
  if (original >= 0) {
    ::setns(original, CLONE_NEWNET);
    ::close(original);
  }
}

// Two network namespaces made by the test, joined by a veth pair: side A
// (10.R.0.1) and side B (10.R.0.2). The test process runs in B while it
// lives (its threads, and the processes it spawns, see B's network);
// everything is removed afterwards.
class netns_pair {
public:
  netns_pair() {
    auto tag = std::to_string(::getpid() % 100000);
    a_ = "engram-t" + tag + "a";
    b_ = "engram-t" + tag + "b";
    va_ = "egv" + tag + "a";
    vb_ = "egv" + tag + "b";
    subnet_ = "10." + std::to_string(100 + ::getpid() % 150) + ".0.";
    ok_ = sh("ip netns add " + a_) && sh("ip netns add " + b_)
          && sh("ip link add " + va_ + " type veth peer name " + vb_)
          && sh("ip link set " + va_ + " netns " + a_)
          && sh("ip link set " + vb_ + " netns " + b_)
          && sh("ip -n " + a_ + " addr add " + host_a() + "/24 dev " + va_)
          && sh("ip -n " + b_ + " addr add " + host_b() + "/24 dev " + vb_)
          && sh("ip -n " + a_ + " link set lo up")
          && sh("ip -n " + b_ + " link set lo up") && link(true);
    if (!ok_)
      return;
    original_ = enter_netns(b_);
    ok_ = original_ >= 0;
  }

  ~netns_pair() {
    leave_netns(original_);
    sh("ip netns del " + a_ + " 2>/dev/null");
    sh("ip netns del " + b_ + " 2>/dev/null");
  }

  bool ok() const { return ok_; }

  std::string host_a() const { return subnet_ + "1"; }
  std::string host_b() const { return subnet_ + "2"; }

  /// Runs a command in namespace A.
  std::vector<std::string> in_a() const {
    return {ip_path(), "netns", "exec", a_};
  }

  /// Takes the link between A and B down (a partition) or up (heal).
  bool link(bool up) {
    return sh("ip -n " + a_ + " link set " + va_ + (up ? " up" : " down"))
           && sh("ip -n " + b_ + " link set " + vb_ + (up ? " up" : " down"));
  }

  /// Whether this machine lets the test make namespaces.
  static bool supported() {
    auto name = "engram-probe" + std::to_string(::getpid());
    bool ok = sh("ip netns add " + name + " 2>/dev/null");
    if (ok)
      sh("ip netns del " + name);
    return ok;
  }

private:
  std::string a_, b_, va_, vb_, subnet_;
  int original_ = -1;
  bool ok_ = false;
};

struct netns_supported {
  boost::test_tools::assertion_result
  operator()(boost::unit_test::test_unit_id) const {
    boost::test_tools::assertion_result r{netns_pair::supported()};
    if (!r)
      r.message() << "network namespaces cannot be made here (needs root "
                     "and iproute2)";
    return r;
  }
};

// Three namespaces: A and B each joined by a veth pair to M, which routes
// between them. This process runs in M (it reaches both sides whatever
// happens); `forward(false)` stops M routing: A and B are partitioned from
// each other, not from this test.
class netns_routed {
public:
  netns_routed() {
    auto tag = std::to_string(::getpid() % 100000);
    m_ = "engram-r" + tag + "m";
    a_ = "engram-r" + tag + "a";
    b_ = "engram-r" + tag + "b";
    auto net = std::to_string(100 + ::getpid() % 150);
    a_net_ = "10." + net + ".1.";
    b_net_ = "10." + net + ".2.";
    auto va = "egr" + tag + "a", vam = "egr" + tag + "am";
    auto vb = "egr" + tag + "b", vbm = "egr" + tag + "bm";
    ok_ = sh("ip netns add " + m_) && sh("ip netns add " + a_)
          && sh("ip netns add " + b_)
          && sh("ip link add " + va + " type veth peer name " + vam)
          && sh("ip link add " + vb + " type veth peer name " + vbm)
          && sh("ip link set " + va + " netns " + a_)
          && sh("ip link set " + vam + " netns " + m_)
          && sh("ip link set " + vb + " netns " + b_)
          && sh("ip link set " + vbm + " netns " + m_)
          && sh("ip -n " + a_ + " addr add " + host_a() + "/24 dev " + va)
          && sh("ip -n " + m_ + " addr add " + a_net_ + "2/24 dev " + vam)
          && sh("ip -n " + b_ + " addr add " + host_b() + "/24 dev " + vb)
          && sh("ip -n " + m_ + " addr add " + b_net_ + "2/24 dev " + vbm)
          && sh("ip -n " + a_ + " link set lo up")
          && sh("ip -n " + b_ + " link set lo up")
          && sh("ip -n " + m_ + " link set lo up")
          && sh("ip -n " + a_ + " link set " + va + " up")
          && sh("ip -n " + b_ + " link set " + vb + " up")
          && sh("ip -n " + m_ + " link set " + vam + " up")
          && sh("ip -n " + m_ + " link set " + vbm + " up")
          && sh("ip -n " + a_ + " route add default via " + a_net_ + "2")
          && sh("ip -n " + b_ + " route add default via " + b_net_ + "2")
          && forward(true);
    if (ok_) {
      original_ = enter_netns(m_);
      ok_ = original_ >= 0;
    }
  }

  ~netns_routed() {
    leave_netns(original_);
    for (auto& ns : {a_, b_, m_})
      sh("ip netns del " + ns + " 2>/dev/null");
  }

  bool ok() const { return ok_; }
  std::string host_a() const { return a_net_ + "1"; }
  std::string host_b() const { return b_net_ + "1"; }
  std::vector<std::string> in_a() const {
    return {ip_path(), "netns", "exec", a_};
  }
  std::vector<std::string> in_b() const {
    return {ip_path(), "netns", "exec", b_};
  }

  /// M routes between A and B (true) or not (a partition).
  bool forward(bool on) {
    // procps' sysctl may be missing: /proc/sys is the namespace's own.
    return sh(ip_path() + " netns exec " + m_ + " sh -c 'echo "
              + (on ? "1" : "0") + " > /proc/sys/net/ipv4/ip_forward'");
  }

private:
  std::string m_, a_, b_, a_net_, b_net_;
  int original_ = -1;
  bool ok_ = false;
};

} // namespace engram::test
