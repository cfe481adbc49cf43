# Every dependency comes from Debian 12's packages (site/install-deps.sh) and is found
# the CMake way: config packages where Debian ships them, Find modules, pkg-config.
find_package(PkgConfig REQUIRED)

pkg_check_modules(HWLOC REQUIRED IMPORTED_TARGET hwloc>=2.0)
pkg_check_modules(UCX REQUIRED IMPORTED_TARGET ucx>=1.13)

find_package(nlohmann_json 3.10 CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(fmt CONFIG REQUIRED)
find_package(MPI REQUIRED COMPONENTS C CXX)
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(Boost 1.74 REQUIRED COMPONENTS unit_test_framework)

# Slurm ships no CMake or pkg-config file; the SPANK API is one header in libslurm-dev.
find_path(SLURM_INCLUDE_DIR slurm/spank.h REQUIRED
          DOC "Directory holding slurm/spank.h (Debian: libslurm-dev)")
file(STRINGS "${SLURM_INCLUDE_DIR}/slurm/slurm_version.h" _slurm_version_line
     REGEX "^#define SLURM_VERSION_STRING")
message(STATUS "Slurm SPANK headers: ${SLURM_INCLUDE_DIR} (${_slurm_version_line})")

# NVML is deliberately absent here: common/src/nvml.cpp loads it with dlopen.
