// sluice job runtime, C++ API. Link with `target_link_libraries(app PRIVATE sluice::jobrt)`
// (CMake) or `pkg-config --cflags --libs sluice`.
#pragma once

#include <sluice/common/placement_record.hpp>

#include <optional>
#include <string>

namespace sluice {

// The runtime's version, "MAJOR.MINOR.PATCH".
const char* version() noexcept;

// Where this task runs, as the SPANK plugin placed it.
struct Placement {
  NodePlacement node;  // every local task of this node
  int local_task = 0;  // this task's id (SLURM_LOCALID)
  const TaskPlacement& self() const;
};

// Reads SLUICE_PLACEMENT (the JSON record itself, or the path of a file holding it) and
// SLURM_LOCALID. std::nullopt when the job was not placed by sluice (no SLUICE_PLACEMENT).
// Throws sluice::InvalidArgument when the record is malformed or lacks this task.
std::optional<Placement> placement_from_environment();

}  // namespace sluice
