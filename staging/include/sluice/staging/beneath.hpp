// Safe destination paths. Everything sluice creates under a destination root (the job's
// burst-buffer directory, or a stage-out target) is opened *beneath* that root without
// following any symlink, so a symlink planted in the destination (by the job, or by an
// earlier job on a shared node) cannot redirect a write outside it.
//
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) does this in one
// call (Linux >= 5.6). Where it is missing (ENOSYS, or EPERM from an old seccomp filter),
// the same guarantee comes from a walk, one component at a time, with
// openat(O_NOFOLLOW | O_DIRECTORY) from the root's descriptor.
#pragma once

#include <sluice/common/unique_handle.hpp>

#include <sys/types.h>

#include <memory>
#include <string>

namespace sluice::staging {

// Opens REL (relative; "." is the root itself) beneath the directory ROOT. Refuses a
// symlink in any component, '..', and absolute paths; throws SystemError naming the path.
UniqueFd open_beneath(int root, const std::string& rel, int flags, mode_t mode = 0);

// mkdir -p REL beneath ROOT (each new directory with MODE), every component opened
// beneath its parent; returns the last directory, opened O_DIRECTORY.
UniqueFd make_dirs_beneath(int root, const std::string& rel, mode_t mode);

// Opens a destination root, creating it (and its parents, mode 0700) if asked. The root's
// own path is the caller's choice and trusted: symlinks in it are followed, like cp does.
UniqueFd open_root(const std::string& path, bool create);

// The path a descriptor refers to (for messages), "fd N" when /proc cannot tell.
std::string fd_path(int fd);

// A file written under a temporary name (".NAME.sluice-tmp.XXXXXX") in its final
// directory, so no half-written file ever carries the final name. Unlinked on destruction
// unless committed.
class TempFile {
 public:
  TempFile(UniqueFd dir, std::string final_name, mode_t mode);
  // DIR shared with other temporary files of the same directory (opened beneath the root
  // by the caller); FINAL_NAME is one component. MODE is given to open (less the umask).
  TempFile(std::shared_ptr<const UniqueFd> dir, std::string final_name, mode_t mode);
  TempFile(TempFile&&) noexcept = default;
  TempFile& operator=(TempFile&&) = delete;
  ~TempFile();

  int fd() const noexcept { return fd_.get(); }
  int dir() const noexcept { return dir_->get(); }
  const std::string& temp_name() const noexcept { return temp_; }
  const std::string& final_name() const noexcept { return final_; }

  // Closes the descriptor (the name stays); throws SystemError when close reports an error.
  void close();

  // Renames to the final name. replace=false never clobbers an existing final name
  // (renameat2 RENAME_NOREPLACE, else link+unlink) and throws SystemError(EEXIST).
  void commit(bool replace);

 private:
  void create(mode_t mode);

  std::shared_ptr<const UniqueFd> dir_;
  UniqueFd fd_;
  std::string final_;
  std::string temp_;
  bool committed_ = false;
};

// True when NAME is one of our temporary names (left behind by a killed stage).
bool is_temp_name(const std::string& name);

// Hard-links FROM_DIR/FROM_NAME (never following a symlink there) into DIR under a fresh
// temporary name for FINAL_NAME, as TempFile names them; returns that name. Throws
// SystemError (ENOENT: FROM_NAME vanished; EXDEV: another file system).
std::string link_temp(int from_dir, const std::string& from_name, int dir, const std::string& final_name);

// Renames DIR/TEMP to DIR/FINAL_NAME as TempFile::commit does (replace=false: EEXIST when
// the final name exists).
void commit_temp(int dir, const std::string& temp, const std::string& final_name, bool replace);

namespace detail {
enum class Resolver { Auto, Walk };
UniqueFd open_beneath(int root, const std::string& rel, int flags, mode_t mode, Resolver how);
bool openat2_available();
}  // namespace detail

}  // namespace sluice::staging
