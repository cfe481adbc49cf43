// Typed errors. Every C failure becomes one of these, carrying what failed and on what
// (which file, which device, which option), so a message is useful without a debugger.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace sluice {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad input from a user or an admin: an option value, a plugstack argument, a GPU list.
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// The machine's topology could not be read, or does not fit what Slurm allocated.
class TopologyError : public Error {
 public:
  using Error::Error;
};

// A system call failed; the message names the call and its object, plus strerror(errno).
class SystemError : public Error {
 public:
  SystemError(const std::string& what_failed, int err);
  int code() const noexcept { return code_; }

 private:
  int code_;
};

// User-supplied text for an error message: at most 64 bytes, control and non-ASCII bytes
// escaped (\xNN), so a hostile value can neither flood nor forge lines in slurmd's log.
std::string quote_input(std::string_view text);

// User-controlled text (a file name, a spec) for a log line, a status listing or a report,
// whole: C0 controls, DEL, C1 controls and bytes that are not valid UTF-8 are written
// \xNN, so no such text can start a line or send a terminal escape. Valid printable UTF-8
// (accents, CJK) is kept. Backslash is kept too, so text already escaped by quote_input
// (sluice-stage's messages, relayed by the plugin) reads the same after a second pass.
std::string escape_text(std::string_view text);

}  // namespace sluice
