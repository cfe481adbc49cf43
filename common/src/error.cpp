#include <sluice/common/error.hpp>
#include <sluice/common/unique_handle.hpp>

#include <cstring>
#include <dlfcn.h>
#include <unistd.h>

namespace sluice {

SystemError::SystemError(const std::string& what_failed, int err)
    : Error(what_failed + ": " + std::strerror(err)), code_(err) {}

void FdTraits::close(int fd) noexcept { ::close(fd); }
void DlTraits::close(void* h) noexcept { ::dlclose(h); }

}  // namespace sluice
