#include <sluice/common/error.hpp>
#include <sluice/common/unique_handle.hpp>

#include <cstdio>
#include <fcntl.h>
#include <string>
#include <cstring>
#include <dlfcn.h>
#include <unistd.h>

namespace sluice {

SystemError::SystemError(const std::string& what_failed, int err)
    : Error(what_failed + ": " + std::strerror(err)), code_(err) {}

std::string quote_input(std::string_view text) {
  constexpr std::size_t kMax = 64;
  std::string out;
  for (std::size_t i = 0; i < text.size() && i < kMax; ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += char(c);
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (text.size() > kMax) out += "...(" + std::to_string(text.size()) + " bytes)";
  return out;
}

void FdTraits::close(int fd) noexcept { ::close(fd); }

UniqueFd reopen_fd(int fd, int flags) {
  const std::string self = "/proc/self/fd/" + std::to_string(fd);
  return UniqueFd(::open(self.c_str(), flags | O_CLOEXEC));
}
void DlTraits::close(void* h) noexcept { ::dlclose(h); }

}  // namespace sluice
