// Files that root writes for users and admins to read (staging status, job records): in a
// directory root owns, replaced atomically, never through a link a user planted.
#pragma once

#include <sluice/common/unique_handle.hpp>

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace sluice {

// Opens DIR (an absolute path chosen by the admin), creating it with mode 0755 when missing.
// The directory must belong to this process's effective uid and not be group- or
// other-writable, or a user could swap the files root writes there: throws Error naming it.
// `what` names the directory in messages ("the staging status directory"). PRIVATE: the
// directory is root's alone (created 0700, and made 0700 when found wider).
UniqueFd open_owned_dir(const std::string& dir, const std::string& what, bool private_dir = false);

// Reads DIR_FD/NAME (no link followed), which must be a regular file owned by this process's
// effective uid and at most MAX_BYTES: what root reads back from its own state. std::nullopt
// when it does not exist; throws Error naming DIR/NAME otherwise.
std::optional<std::string> read_owned_file(int dir_fd, const std::string& dir, const std::string& name,
                                           std::size_t max_bytes);

// Writes TEXT as DIR/NAME atomically: a temporary file beside it (O_EXCL, O_NOFOLLOW), then
// chown to OWNER (when given and running as root), fsync and rename. A reader sees the old
// file or the new one, never a half-written one; a failure leaves the old file in place.
// Throws SystemError naming DIR/NAME.
void replace_file_at(int dir_fd, const std::string& dir, const std::string& name, std::string_view text,
                     mode_t mode, std::optional<uid_t> owner = std::nullopt);

}  // namespace sluice
