// RAII for C handles: one owner, closed exactly once, movable, never copied.
#pragma once

#include <utility>

namespace sluice {

// Traits: static T invalid(); static void close(T) noexcept.
template <typename T, typename Traits>
class UniqueHandle {
 public:
  UniqueHandle() noexcept : h_(Traits::invalid()) {}
  explicit UniqueHandle(T h) noexcept : h_(h) {}
  UniqueHandle(UniqueHandle&& o) noexcept : h_(std::exchange(o.h_, Traits::invalid())) {}
  UniqueHandle& operator=(UniqueHandle&& o) noexcept {
    if (this != &o) reset(std::exchange(o.h_, Traits::invalid()));
    return *this;
  }
  UniqueHandle(const UniqueHandle&) = delete;
  UniqueHandle& operator=(const UniqueHandle&) = delete;
  ~UniqueHandle() { reset(); }

  T get() const noexcept { return h_; }
  explicit operator bool() const noexcept { return h_ != Traits::invalid(); }
  T release() noexcept { return std::exchange(h_, Traits::invalid()); }
  void reset(T h = Traits::invalid()) noexcept {
    if (h_ != Traits::invalid()) Traits::close(h_);
    h_ = h;
  }

 private:
  T h_;
};

struct FdTraits {
  static int invalid() noexcept { return -1; }
  static void close(int fd) noexcept;
};
using UniqueFd = UniqueHandle<int, FdTraits>;

// FD's open file once more, with FLAGS (e.g. O_RDONLY | O_DIRECT), through /proc/self/fd: the
// very inode already open, no path lookup, so nothing can be swapped in between. O_CLOEXEC is
// added. Invalid, errno set, where /proc is missing or the file system refuses the flags.
UniqueFd reopen_fd(int fd, int flags);

struct DlTraits {
  static void* invalid() noexcept { return nullptr; }
  static void close(void* h) noexcept;
};
// A dlopen() handle.
using UniqueDl = UniqueHandle<void*, DlTraits>;

}  // namespace sluice
