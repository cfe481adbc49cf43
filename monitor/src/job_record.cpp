#include <sluice/monitor/job_record.hpp>

#include <sluice/common/root_files.hpp>

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>

namespace sluice::monitor {
namespace fs = std::filesystem;
using nlohmann::json;

JobRecordError::JobRecordError(std::string file, const std::string& what)
    : Error("job record " + quote_input(file) + ": " + what), file_(std::move(file)) {}

fs::path job_record_dir(const fs::path& telemetry_dir) { return telemetry_dir / kJobRecordDirName; }

std::string node_record_file_name(std::uint64_t job_id, const std::string& node) {
  std::string safe = node.empty() ? std::string("unknown") : node;
  for (char& c : safe)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      c = '_';
  return "job-" + std::to_string(job_id) + "." + safe + ".json";
}

std::string to_json(const NodeJobRecord& r) {
  auto opt = [](const auto& v) { return v ? json(*v) : json(nullptr); };
  json j{{"schema", kJobRecordSchema},
         {"job_id", r.job_id},
         {"node", r.node},
         {"nodes", r.nodes},
         {"user", r.user},
         {"uid", r.uid},
         {"account", r.account},
         {"partition", r.partition},
         {"cluster", r.cluster},
         {"cpus", r.cpus},
         {"gpus", r.gpus},
         {"start_unix_ms", r.start_unix_ms},
         {"end_unix_ms", opt(r.end_unix_ms)},
         {"exit_code", opt(r.exit_code)},
         {"exit_signal", opt(r.exit_signal)},
         {"stage_in_bytes", r.stage_in_bytes},
         {"stage_in_s", r.stage_in_s},
         {"stage_out_bytes", r.stage_out_bytes},
         {"stage_out_s", r.stage_out_s},
         {"stage_error", r.stage_error}};
  // Invalid UTF-8 from the environment must not make the record unwritable.
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

NodeJobRecord parse_node_record(const std::string& text, const std::string& file) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw JobRecordError(file, "not a JSON object");
  const auto schema = j.find("schema");
  if (schema == j.end() || !schema->is_string() || schema->get<std::string>() != kJobRecordSchema)
    throw JobRecordError(file, std::string("schema is not ") + kJobRecordSchema);
  NodeJobRecord r;
  try {
    r.job_id = j.at("job_id").get<std::uint64_t>();
    r.node = j.at("node").get<std::string>();
    r.nodes = j.at("nodes").get<std::vector<std::string>>();
    r.user = j.at("user").get<std::string>();
    r.uid = j.at("uid").get<std::uint32_t>();
    r.account = j.at("account").get<std::string>();
    r.partition = j.at("partition").get<std::string>();
    r.cluster = j.value("cluster", std::string());
    r.cpus = j.at("cpus").get<std::uint32_t>();
    r.gpus = j.at("gpus").get<std::vector<int>>();
    r.start_unix_ms = j.at("start_unix_ms").get<std::int64_t>();
    if (!j.at("end_unix_ms").is_null()) r.end_unix_ms = j.at("end_unix_ms").get<std::int64_t>();
    if (!j.at("exit_code").is_null()) r.exit_code = j.at("exit_code").get<int>();
    if (!j.at("exit_signal").is_null()) r.exit_signal = j.at("exit_signal").get<int>();
    r.stage_in_bytes = j.at("stage_in_bytes").get<std::uint64_t>();
    r.stage_in_s = j.at("stage_in_s").get<double>();
    r.stage_out_bytes = j.at("stage_out_bytes").get<std::uint64_t>();
    r.stage_out_s = j.at("stage_out_s").get<double>();
    r.stage_error = j.at("stage_error").get<std::string>();
  } catch (const json::exception& e) {
    throw JobRecordError(file, std::string("bad field: ") + e.what());
  }
  return r;
}

NodeJobRecord read_node_record_file(const fs::path& file) {
  // The records directory sits in a directory every user may write: whatever is found under a
  // record's name may be a link, a FIFO (an open that would block forever, as root in the
  // epilog) or a forgery. Only regular files that root (the plugin) or the reader wrote count.
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) throw JobRecordError(file.string(), std::string("cannot be opened: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw JobRecordError(file.string(), std::string("cannot stat: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw JobRecordError(file.string(), "is not a regular file");
  if (st.st_uid != 0 && st.st_uid != ::geteuid())
    throw JobRecordError(file.string(), "belongs to uid " + std::to_string(st.st_uid) +
                                            ", not root: not a record the SPANK plugin wrote");
  constexpr std::size_t kMaxBytes = 1 << 20;
  if (static_cast<std::uint64_t>(st.st_size) > kMaxBytes) throw JobRecordError(file.string(), "is larger than 1 MiB");
  std::string text(static_cast<std::size_t>(st.st_size) + 1, '\0');
  std::size_t got = 0;
  for (;;) {
    const ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw JobRecordError(file.string(), std::string("cannot be read: ") + std::strerror(errno));
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
    if (got > kMaxBytes) throw JobRecordError(file.string(), "is larger than 1 MiB");
    if (got == text.size()) text.resize(std::min(text.size() * 2, kMaxBytes + 1));
  }
  text.resize(got);
  return parse_node_record(text, file.string());
}

void write_node_record(const fs::path& record_dir, const NodeJobRecord& r) {
  const std::string dir = record_dir.string();
  UniqueFd dfd = open_owned_dir(dir, "the job record directory");
  replace_file_at(dfd.get(), dir, node_record_file_name(r.job_id, r.node), to_json(r), 0644);
}

JobRecord merge_node_records(const std::vector<NodeJobRecord>& nodes) {
  if (nodes.empty()) throw InvalidArgument("merge_node_records: no record");
  std::vector<const NodeJobRecord*> sorted;
  for (const auto& n : nodes) sorted.push_back(&n);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->node < b->node; });
  JobRecord j;
  const NodeJobRecord& first = *sorted.front();
  j.job_id = first.job_id;
  j.start_unix_ms = first.start_unix_ms;
  bool all_ended = true;
  std::set<std::string> listed;
  for (const NodeJobRecord* n : sorted) {
    if (n->job_id != j.job_id)
      throw InvalidArgument("merge_node_records: records of jobs " + std::to_string(j.job_id) + " and " +
                            std::to_string(n->job_id));
    // Fields every node sees alike: the first node that has one gives it.
    if (j.user.empty()) j.user = n->user, j.uid = n->uid;
    if (j.account.empty()) j.account = n->account;
    if (j.partition.empty()) j.partition = n->partition;
    if (j.cluster.empty()) j.cluster = n->cluster;
    if (j.nodes.size() < n->nodes.size()) j.nodes = n->nodes;
    if (!j.exit_code && n->exit_code) j.exit_code = n->exit_code;
    if (!j.exit_signal && n->exit_signal) j.exit_signal = n->exit_signal;
    if (!listed.insert(n->node).second) continue;  // the same node twice: counted once
    j.nodes_recorded.push_back(n->node);
    j.cpus += n->cpus;
    j.gpus += static_cast<std::uint32_t>(n->gpus.size());
    j.start_unix_ms = std::min(j.start_unix_ms, n->start_unix_ms);
    if (n->end_unix_ms) j.end_unix_ms = std::max(j.end_unix_ms.value_or(*n->end_unix_ms), *n->end_unix_ms);
    else all_ended = false;
    j.stage_in_bytes += n->stage_in_bytes;
    j.stage_out_bytes += n->stage_out_bytes;
    j.stage_in_s = std::max(j.stage_in_s, n->stage_in_s);
    j.stage_out_s = std::max(j.stage_out_s, n->stage_out_s);
    if (!n->stage_error.empty()) j.stage_errors.push_back(n->node + ": " + n->stage_error);
  }
  if (!all_ended) j.end_unix_ms.reset();
  return j;
}

std::string JobRecord::state() const {
  if (!end_unix_ms) return "RUNNING";
  if (exit_signal.value_or(0) != 0) return "SIGNALED";
  if (exit_code.value_or(0) != 0) return "FAILED";
  return "COMPLETED";
}

double JobRecord::elapsed_s(std::int64_t now_unix_ms) const {
  if (start_unix_ms <= 0) return 0;
  const std::int64_t end = end_unix_ms.value_or(now_unix_ms);
  return end > start_unix_ms ? static_cast<double>(end - start_unix_ms) / 1000.0 : 0.0;
}

bool trusted_record_dir(const fs::path& record_dir, std::string* why) {
  struct stat st {};
  std::string reason;
  if (::lstat(record_dir.c_str(), &st) != 0) reason = std::strerror(errno);
  else if (!S_ISDIR(st.st_mode)) reason = "not a directory (or a link)";
  else if (st.st_uid != 0 && st.st_uid != ::geteuid()) reason = "belongs to uid " + std::to_string(st.st_uid) + ", not root";
  else if (st.st_mode & 022) reason = "writable by others than its owner";
  if (reason.empty()) return true;
  if (why) *why = "the record directory " + quote_input(record_dir.string()) + ": " + reason + "; its records are not used";
  return false;
}

std::optional<JobRecord> read_job_record(const fs::path& record_dir, std::uint64_t job_id,
                                         std::vector<std::string>* skipped) {
  const std::string prefix = "job-" + std::to_string(job_id) + ".";
  std::vector<NodeJobRecord> nodes;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(record_dir, ec))) return std::nullopt;  // no record written yet
  if (std::string why; !trusted_record_dir(record_dir, &why)) {
    if (skipped) skipped->push_back(why);
    return std::nullopt;
  }
  fs::directory_iterator it(record_dir, ec);
  if (ec) {
    if (skipped && ec != std::errc::no_such_file_or_directory)
      skipped->push_back("the record directory " + quote_input(record_dir.string()) + ": " + ec.message());
    return std::nullopt;
  }
  for (const fs::directory_entry& e : it) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || name.size() < 5 || name.compare(name.size() - 5, 5, ".json") != 0) continue;
    try {
      NodeJobRecord r = read_node_record_file(e.path());
      if (r.job_id != job_id) throw JobRecordError(e.path().string(), "holds job " + std::to_string(r.job_id));
      nodes.push_back(std::move(r));
    } catch (const std::exception& err) {
      if (skipped) skipped->push_back(err.what());
    }
  }
  if (nodes.empty()) return std::nullopt;
  return merge_node_records(nodes);
}

}  // namespace sluice::monitor
