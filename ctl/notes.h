// What the connections' counters mean for an operator, for decode and
// capture alike: lines said once a run ends (the unknown commands whose
// writes are not replicated, the cluster nodes -MOVED sent writes to that
// are not captured, TLS, parse errors…).
#pragma once

#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/endpoint.h"
#include "resp/connection.h"

namespace kvf::ctl {

// `s` for a terminal: bytes outside printable ASCII (and the backslash) as
// \xNN, at most `max` of them, then its length. For names and values that
// come off the wire or the disk, whose escape sequences would otherwise
// reach the operator's terminal (a review forged a line of decode's output
// with a REPLICAOF host name).
std::string Printable(std::string_view s, size_t max = 64);

// Names of the commands the server accepted that the table does not know,
// and of the nodes -MOVED and -ASK sent requests to, from every connection
// as it closes (several threads: capture's workers).
class ConnectionNames {
 public:
  static constexpr size_t kMaxRedirects = 64;
  void Add(const resp::Connection& conn);

  // The lines (without the tool's prefix) that `totals` calls for; the
  // nodes among `servers` are not named as missing.
  std::vector<std::string> Notes(const resp::ConnectionStats& totals,
                                 const std::vector<dataplane::Endpoint>& servers) const;

 private:
  mutable std::mutex mu_;
  std::set<std::string> names_;      // at most Connection::kMaxUnknownNames; guarded by mu_
  bool more_ = false;                // and others; guarded by mu_
  std::set<std::string> redirects_;  // at most kMaxRedirects; guarded by mu_
};

}  // namespace kvf::ctl
