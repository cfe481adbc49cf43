#include "copy_range.hpp"

#include <sluice/common/error.hpp>
#include <sluice/staging/hash.hpp>

#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <memory>

namespace sluice::staging::detail {
namespace {

constexpr std::size_t kBufSize = 1 << 20;

[[noreturn]] void changed(const std::string& src_name) {
  throw Error("source " + src_name + " changed while it was copied (it became shorter); stage it again");
}

bool fallback_errno(int err) { return err == EXDEV || err == EINVAL || err == ENOSYS || err == EOPNOTSUPP; }

}  // namespace

std::uint64_t copy_range(int in, int out, std::uint64_t offset, std::uint64_t len, CopyContext& ctx,
                         const std::string& src_name, const std::string& dst_name) {
  std::uint64_t done = 0;
  bool kernel_copied = false;
  if (!ctx.buffered_only && !ctx.cfr_unsupported.load(std::memory_order_relaxed)) {
    while (done < len) {
      loff_t off_in = static_cast<loff_t>(offset + done), off_out = off_in;
      std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(len - done, 1ull << 30));
      ssize_t n = ::copy_file_range(in, &off_in, out, &off_out, want, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (!fallback_errno(errno)) throw SystemError("copy " + src_name + " to " + dst_name, errno);
        if (errno != EINVAL) ctx.cfr_unsupported.store(true, std::memory_order_relaxed);  // EINVAL may be per file
        break;
      }
      if (n == 0) changed(src_name);
      done += static_cast<std::uint64_t>(n);
      kernel_copied = true;
      ctx.bytes_done.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
    }
  }

  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> st(XXH3_createState(), XXH3_freeState);
  if (!st) throw std::bad_alloc();
  XXH3_64bits_reset(st.get());
  if (done < len) {
    thread_local std::unique_ptr<char[]> buf(new char[kBufSize]);
    while (done < len) {
      std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(len - done, kBufSize));
      ssize_t n = ::pread(in, buf.get(), want, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        throw SystemError("read " + src_name, errno);
      }
      if (n == 0) changed(src_name);
      for (ssize_t w = 0; w < n;) {
        ssize_t m = ::pwrite(out, buf.get() + w, static_cast<std::size_t>(n - w), static_cast<off_t>(offset + done) + w);
        if (m < 0) {
          if (errno == EINTR) continue;
          throw SystemError("write " + dst_name, errno);
        }
        w += m;
      }
      XXH3_64bits_update(st.get(), buf.get(), static_cast<std::size_t>(n));
      done += static_cast<std::uint64_t>(n);
      ctx.bytes_done.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
    }
  }
  // Data the kernel moved is hashed as it landed: read back from the destination.
  if (kernel_copied) return hash_range(out, offset, len, dst_name);
  return XXH3_64bits_digest(st.get());
}

}  // namespace sluice::staging::detail
