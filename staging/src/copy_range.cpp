#include "copy_range.hpp"

#include <sluice/common/error.hpp>
#include <sluice/staging/hash.hpp>

#include <sluice/common/unique_handle.hpp>

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstdlib>
#include <memory>

namespace sluice::staging::detail {
namespace {

constexpr std::size_t kBufSize = 1 << 20;

[[noreturn]] void changed(const std::string& src_name) {
  throw Error("source " + src_name + " changed while it was copied (it became shorter); stage it again");
}

bool fallback_errno(int err) { return err == EXDEV || err == EINVAL || err == ENOSYS || err == EOPNOTSUPP; }

// O_DIRECT wants the buffer, the offset and the length aligned to the logical block size;
// 4 KiB covers every block device in use (512 B and 4 KiB sectors).
constexpr std::uint64_t kDirectAlign = 4096;

struct FreeDeleter {
  void operator()(char* p) const noexcept { std::free(p); }
};

// Step 1 of copy_range(): copies the aligned part of the range, hashing into ST; returns the
// bytes done (0 when direct I/O is not possible here; the caller goes on from there).
std::uint64_t copy_direct(int in, int out, std::uint64_t offset, std::uint64_t len, CopyContext& ctx,
                          XXH3_state_t* st, const std::string& src_name, const std::string& dst_name) {
  const std::uint64_t aligned = len / kDirectAlign * kDirectAlign;
  if (aligned == 0) return 0;
  // The same open files once more with O_DIRECT (refused by tmpfs before Linux 6.6, some FUSE).
  UniqueFd din = reopen_fd(in, O_RDONLY | O_DIRECT);
  UniqueFd dout = din ? reopen_fd(out, O_WRONLY | O_DIRECT) : UniqueFd();
  if (!din || !dout) {
    // Not for this stage where the file system or /proc says no; EACCES (a temporary
    // already 0400, for a read-only source, and no CAP_DAC_OVERRIDE) is this file's only.
    if (errno == EINVAL || errno == ENOENT || errno == EOPNOTSUPP || errno == ENOTSUP)
      ctx.direct_unsupported.store(true, std::memory_order_relaxed);
    return 0;
  }
  const std::size_t block = ctx.direct_block;
  thread_local std::unique_ptr<char, FreeDeleter> buf;
  thread_local std::size_t buf_size = 0;
  if (buf_size != block) {
    buf.reset(static_cast<char*>(std::aligned_alloc(kDirectAlign, block)));
    if (!buf) throw std::bad_alloc();
    buf_size = block;
  }
  std::uint64_t done = 0;
  while (done < aligned) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(aligned - done, block));
    std::size_t got = 0;
    while (got < want) {
      ssize_t n = ::pread(din.get(), buf.get() + got, want - got, static_cast<off_t>(offset + done + got));
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EINVAL && got == 0) {  // refused after all (alignment): the rest goes buffered
          ctx.direct_unsupported.store(true, std::memory_order_relaxed);
          return done;
        }
        throw SystemError("read " + src_name, errno);
      }
      if (n == 0) changed(src_name);
      got += static_cast<std::size_t>(n);
      if (got % kDirectAlign != 0 && got < want) changed(src_name);  // a short read mid-file
    }
    for (std::size_t w = 0; w < got;) {
      ssize_t m = ::pwrite(dout.get(), buf.get() + w, got - w, static_cast<off_t>(offset + done + w));
      if (m < 0) {
        if (errno == EINTR) continue;
        if (errno == EINVAL && w == 0) {  // the same: this block and the rest again, buffered
          ctx.direct_unsupported.store(true, std::memory_order_relaxed);
          return done;
        }
        throw SystemError("write " + dst_name, errno);
      }
      w += static_cast<std::size_t>(m);
    }
    XXH3_64bits_update(st, buf.get(), got);
    done += got;
    ctx.bytes_done.fetch_add(got, std::memory_order_relaxed);
    ctx.bytes_direct.fetch_add(got, std::memory_order_relaxed);
  }
  return done;
}

}  // namespace

std::uint64_t copy_range(int in, int out, std::uint64_t offset, std::uint64_t len, CopyContext& ctx,
                         const std::string& src_name, const std::string& dst_name) {
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> st(XXH3_createState(), XXH3_freeState);
  if (!st) throw std::bad_alloc();
  XXH3_64bits_reset(st.get());
  std::uint64_t done = 0;
  if (ctx.direct_io && len >= kDirectMinBytes && offset % kDirectAlign == 0 &&
      !ctx.direct_unsupported.load(std::memory_order_relaxed))
    done = copy_direct(in, out, offset, len, ctx, st.get(), src_name, dst_name);
  bool kernel_copied = false;
  if (done == 0 && !ctx.buffered_only && !ctx.cfr_unsupported.load(std::memory_order_relaxed)) {
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
