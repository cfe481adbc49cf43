# API reference from the public headers (Doxygen): `cmake --build build --target docs` writes
# build/docs/api/index.html. Reads only the libraries' include/ directories and the main page
# docs/api-mainpage.md; warnings go to build/docs/doxygen-warnings.log and never fail the build.
# Optional: without doxygen (site/install-deps.sh installs it) there is no docs target.
# Included from the top-level CMakeLists.txt after project().
find_package(Doxygen QUIET)
if(NOT DOXYGEN_FOUND)
  message(STATUS "sluice: doxygen not found, no 'docs' target (API reference)")
  return()
endif()

set(SLUICE_DOCS_OUTPUT_DIR ${PROJECT_BINARY_DIR}/docs)
set(SLUICE_DOCS_WARN_LOG ${SLUICE_DOCS_OUTPUT_DIR}/doxygen-warnings.log)
set(SLUICE_DOCS_MAINPAGE "\"${PROJECT_SOURCE_DIR}/docs/api-mainpage.md\"")

# The public headers: each library's include/ directory, where it exists. Paths are quoted
# for Doxygen (a source tree may sit in a directory with spaces).
set(SLUICE_DOCS_INPUT "")
set(SLUICE_DOCS_STRIP "")
set(_sluice_docs_depends ${PROJECT_SOURCE_DIR}/docs/Doxyfile.in ${PROJECT_SOURCE_DIR}/docs/api-mainpage.md)
foreach(_dir IN ITEMS common jobrt staging collectives monitor)
  set(_inc ${PROJECT_SOURCE_DIR}/${_dir}/include)
  if(IS_DIRECTORY ${_inc})
    string(APPEND SLUICE_DOCS_INPUT " \"${_inc}\"")
    string(APPEND SLUICE_DOCS_STRIP " \"${_inc}\"")
    file(GLOB_RECURSE _headers CONFIGURE_DEPENDS ${_inc}/*.h ${_inc}/*.hpp)
    list(APPEND _sluice_docs_depends ${_headers})
  endif()
endforeach()

configure_file(${PROJECT_SOURCE_DIR}/docs/Doxyfile.in ${SLUICE_DOCS_OUTPUT_DIR}/Doxyfile @ONLY)

add_custom_command(
  OUTPUT ${SLUICE_DOCS_OUTPUT_DIR}/api/index.html
  COMMAND ${CMAKE_COMMAND} -E rm -rf ${SLUICE_DOCS_OUTPUT_DIR}/api
  COMMAND Doxygen::doxygen ${SLUICE_DOCS_OUTPUT_DIR}/Doxyfile
  COMMAND ${CMAKE_COMMAND} -E echo "API reference: ${SLUICE_DOCS_OUTPUT_DIR}/api/index.html (warnings: ${SLUICE_DOCS_WARN_LOG})"
  DEPENDS ${_sluice_docs_depends}
  WORKING_DIRECTORY ${SLUICE_DOCS_OUTPUT_DIR}
  COMMENT "Generating the API reference with Doxygen"
  VERBATIM)
add_custom_target(docs DEPENDS ${SLUICE_DOCS_OUTPUT_DIR}/api/index.html)
