// Who the ranks of a communicator are: host, pid, node (for error messages, liveness checks
// and node membership). Filled once by the communicator with one MPI_Allgather.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace sluice::coll {

struct PeerInfo {
  std::string host;      // gethostname()
  std::string node;      // placement record's node when present, else host
  pid_t pid = 0;
  bool same_host = false;  // same host as this process: its pid can be checked
};

// True unless the process is known to be gone (no such pid, or a zombie).
bool process_alive(pid_t pid) noexcept;

}  // namespace sluice::coll
