// What Slurm's accounting (sacct) knows about a job and the job record does not: why it
// ended (CANCELLED, TIMEOUT, OUT_OF_MEMORY...) and its memory request. `sluice-report job`
// asks when sacct is installed and answers; a cluster without slurmdbd simply has no answer.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace sluice::monitor::report {

struct SacctJob {
  std::string user, account, partition;
  std::string state;                            // first word: "CANCELLED by 1000" -> CANCELLED
  std::optional<int> exit_code, exit_signal;    // ExitCode "code:signal"
  std::optional<std::uint64_t> mem_bytes;       // AllocTRES mem=, else ReqMem
  std::optional<std::uint32_t> gpus, cpus;      // AllocTRES gres/gpu=, cpu=
};

// The sacct arguments for JOB_ID (one allocation line, parsable, no header, units as stored).
// Fields: JobID|User|Account|Partition|State|ExitCode|AllocTRES|ReqMem
inline constexpr const char* kSacctFormat = "JobID,User,Account,Partition,State,ExitCode,AllocTRES,ReqMem";

// Parses one line of `sacct -X -n -P -o <kSacctFormat>`; std::nullopt when it is not one.
std::optional<SacctJob> parse_sacct_line(const std::string& line);

// "16G", "4000M", "512K", "1T", "123" (bytes... as sacct prints them: a bare number is MB).
std::optional<std::uint64_t> parse_sacct_memory(const std::string& text);

// Runs `sacct` (found in $PATH) for JOB_ID, at most TIMEOUT. std::nullopt when there is no
// sacct, the job id is not a Slurm one, sacct fails (no slurmdbd) or says nothing; WHY (when
// given) then says which.
std::optional<SacctJob> query_sacct(const std::string& job_id, std::chrono::milliseconds timeout,
                                    std::string* why = nullptr);

}  // namespace sluice::monitor::report
