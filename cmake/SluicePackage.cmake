# Installed package: find_package(sluice) gives sluice:: targets; pkg-config gives sluice.
include(CMakePackageConfigHelpers)
set(SLUICE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/sluice)

# sluice_reader links the shared sluice_monitor privately (telemetry into the default recorder);
# CMake records a private shared dependency of an exported library for the linker
# (IMPORTED_LINK_DEPENDENT_LIBRARIES), so sluice_monitor joins the export set here (monitor/
# installs its headers and the other monitor libraries).
if(TARGET sluice_monitor)
  install(TARGETS sluice_monitor EXPORT sluiceTargets LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()
install(EXPORT sluiceTargets NAMESPACE sluice:: DESTINATION ${SLUICE_CMAKE_DIR})
# The libraries that link MPI publicly (sluice::collectives, sluice::monitor_mpi) in a file of
# their own, which sluiceConfig.cmake loads only where MPI is found: a code using only the
# placement API needs no MPI.
if(TARGET sluice_collectives OR TARGET sluice_monitor_mpi)
  install(EXPORT sluiceMpiTargets NAMESPACE sluice:: DESTINATION ${SLUICE_CMAKE_DIR})
endif()
configure_package_config_file(cmake/sluiceConfig.cmake.in ${PROJECT_BINARY_DIR}/sluiceConfig.cmake
                              INSTALL_DESTINATION ${SLUICE_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/sluiceConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/sluiceConfig.cmake ${PROJECT_BINARY_DIR}/sluiceConfigVersion.cmake
        DESTINATION ${SLUICE_CMAKE_DIR})

# Relocatable: the prefix is found from the .pc file's own place, so `cmake --install
# --prefix DIR` and a DESTDIR-built package both work.
file(RELATIVE_PATH SLUICE_PC_TO_PREFIX "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
string(REGEX REPLACE "/$" "" SLUICE_PC_TO_PREFIX "${SLUICE_PC_TO_PREFIX}")
configure_file(cmake/sluice.pc.in ${PROJECT_BINARY_DIR}/sluice.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/sluice.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
