# A Debian package of everything `cmake --install` installs (plugin, runtime libraries and
# headers, CMake package, tools): `cpack -G DEB` in the build directory, or
# `cmake --build build --target package`. Its files keep their relative RUNPATH and the
# plugin finds sluice-stage beside itself, so the package works at /usr (dpkg -i) and
# unpacked into any prefix (dpkg-deb -x; tests/e2e/test_package.sh).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME sluice)
set(CPACK_PACKAGE_VENDOR "sluice developers")
set(CPACK_PACKAGE_CONTACT "sluice developers <sluice@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_DESCRIPTION "SPANK plugin (GPU/NIC/CPU placement, burst-buffer staging, job records), \
job runtime (sharded HDF5 reader, allreduce over MPI and UCX, telemetry) and tools \
(sluice-topo, sluice-stage, sluice-report, sluice-mkdata) for Slurm GPU clusters.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Stripped: the build's debug info would make the package five times larger.
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
# Library dependencies from the binaries themselves (dpkg-shlibdeps); Slurm is what loads
# the plugin, so it is recommended rather than required (a login node needs only the tools).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "slurmd (>= 22.05), slurm-client (>= 22.05)")
# The examples' and tests' programs are not part of the package: only install() rules are.
include(CPack)
