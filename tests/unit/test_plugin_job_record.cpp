// The plugin's side of the job record (spank_plugin/job_record.*): what the prolog and epilog
// environment gives, the staging figures, and the removal of a killed job's Prometheus files.
#define BOOST_TEST_MODULE plugin_job_record
#include <boost/test/unit_test.hpp>

#include "job_record.hpp"

#include <sluice/common/error.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace fs = std::filesystem;
using namespace sluice;
using namespace sluice::spank;

namespace {

GetEnv env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

// What slurmd 22.05 gave the prolog of `sbatch -N2 --gres=gpu:2 -A research` on the dev
// cluster (node1's copy).
std::map<std::string, std::string> prolog_env() {
  return {{"SLURM_JOB_ID", "17"},           {"SLURM_JOB_UID", "1001"},         {"SLURM_JOB_GID", "1001"},
          {"SLURMD_NODENAME", "node2"},     {"SLURM_NODELIST", "node[1-2]"},   {"SLURM_JOB_USER", "alice"},
          {"SLURM_JOB_ACCOUNT", "research"}, {"SLURM_JOB_PARTITION", "gpu"},   {"SLURM_CLUSTER_NAME", "sluicedev"},
          {"SLURM_JOB_CPUS_PER_NODE", "8,4"}, {"SLURM_JOB_GPUS", "0,1"}};
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("sluice-plugin-record-" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

void touch(const fs::path& p) { std::ofstream(p) << "x\n"; }

}  // namespace

BOOST_AUTO_TEST_CASE(cpus_per_node_expands_slurms_compressed_form) {
  BOOST_TEST(expand_cpus_per_node("4(x2),2") == (std::vector<std::uint32_t>{4, 4, 2}));
  BOOST_TEST(expand_cpus_per_node("160") == (std::vector<std::uint32_t>{160}));
  BOOST_TEST(expand_cpus_per_node("1,2(x1),3") == (std::vector<std::uint32_t>{1, 2, 3}));
  for (const char* bad : {"", "x", "4(x", "4(x0)", "4(y2)", "4(x2", "-1", "4,,", "4(x99999999999)"})
    BOOST_CHECK_THROW(expand_cpus_per_node(bad), InvalidArgument);
}

BOOST_AUTO_TEST_CASE(the_prolog_environment_gives_who_where_and_what) {
  const auto env = env_of(prolog_env());
  const JobIdentity job = job_identity_from_env(env);
  const monitor::NodeJobRecord r = node_record_from_env(env, job, 1'700'000'000'000);
  BOOST_TEST(r.job_id == 17u);
  BOOST_TEST(r.node == "node2");
  BOOST_TEST(r.nodes == (std::vector<std::string>{"node1", "node2"}));
  BOOST_TEST(r.user == "alice");
  BOOST_TEST(r.uid == 1001u);
  BOOST_TEST(r.account == "research");
  BOOST_TEST(r.partition == "gpu");
  BOOST_TEST(r.cluster == "sluicedev");
  BOOST_TEST(r.cpus == 4u);  // node2 is the second node: its count is the second
  BOOST_TEST(r.gpus == (std::vector<int>{0, 1}));
  BOOST_TEST(r.start_unix_ms == 1'700'000'000'000);
  BOOST_TEST(!r.end_unix_ms);
  BOOST_TEST(!r.exit_code);
}

BOOST_AUTO_TEST_CASE(missing_or_malformed_optional_fields_stay_empty) {
  auto vars = prolog_env();
  vars.erase("SLURM_JOB_ACCOUNT");
  vars.erase("SLURM_JOB_USER");
  vars["SLURM_JOB_CPUS_PER_NODE"] = "lots";
  vars["SLURM_JOB_GPUS"] = "0,x";
  const auto env = env_of(vars);
  const monitor::NodeJobRecord r = node_record_from_env(env, job_identity_from_env(env), 1);
  BOOST_TEST(r.account.empty());
  BOOST_TEST(r.user.empty());
  BOOST_TEST(r.cpus == 0u);
  BOOST_TEST(r.gpus.empty());
  vars["SLURM_JOB_GPUS"] = "0-3";
  vars["SLURM_JOB_CPUS_PER_NODE"] = "6(x2)";
  const auto env2 = env_of(vars);
  const monitor::NodeJobRecord r2 = node_record_from_env(env2, job_identity_from_env(env2), 1);
  BOOST_TEST(r2.gpus == (std::vector<int>{0, 1, 2, 3}));
  BOOST_TEST(r2.cpus == 6u);
}

BOOST_AUTO_TEST_CASE(the_epilog_adds_the_end_and_the_exit) {
  monitor::NodeJobRecord r;
  add_job_end(r, env_of({{"SLURM_JOB_EXIT_CODE2", "3:0"}, {"SLURM_JOB_EXIT_CODE", "768"}}), 42);
  BOOST_TEST(*r.end_unix_ms == 42);
  BOOST_TEST(*r.exit_code == 3);
  BOOST_TEST(*r.exit_signal == 0);
  monitor::NodeJobRecord k;
  add_job_end(k, env_of({{"SLURM_JOB_EXIT_CODE", "9"}}), 43);  // a wait status: killed by SIGKILL
  BOOST_TEST(*k.exit_code == 0);
  BOOST_TEST(*k.exit_signal == 9);
  monitor::NodeJobRecord none;
  add_job_end(none, env_of({{"SLURM_JOB_EXIT_CODE2", "x:y"}}), 44);
  BOOST_TEST(*none.end_unix_ms == 44);
  BOOST_TEST(!none.exit_code);  // unknown, not invented
}

BOOST_AUTO_TEST_CASE(staging_figures_come_from_the_right_phase) {
  staging::JobStageStatus s;
  s.phase = staging::StagePhase::Ready;
  s.bytes_done = 1000;
  s.seconds = 2.5;
  monitor::NodeJobRecord r;
  add_stage_in(r, s);
  add_stage_out(r, s);  // Ready: no stage-out yet
  BOOST_TEST(r.stage_in_bytes == 1000u);
  BOOST_TEST(r.stage_in_s == 2.5);
  BOOST_TEST(r.stage_out_bytes == 0u);
  s.phase = staging::StagePhase::Failed;
  s.stage_out_failed = true;
  s.bytes_done = 10;
  s.error = "no space";
  add_stage_in(r, s);  // a failed stage-out's figures are not stage-in's
  BOOST_TEST(r.stage_in_bytes == 1000u);
  add_stage_out(r, s);
  BOOST_TEST(r.stage_out_bytes == 10u);
  BOOST_TEST(r.stage_error == "stage-out: no space");
}

BOOST_AUTO_TEST_CASE(records_are_written_to_the_record_directory_and_read_back_at_the_end) {
  TempDir t;
  PluginConfig config;
  config.telemetry_dir = t.path.string();
  const auto env = env_of(prolog_env());
  const JobIdentity job = job_identity_from_env(env);
  monitor::NodeJobRecord start = node_record_from_env(env, job, 1000);
  start.stage_in_bytes = 77;
  write_job_record(config, start);
  const fs::path file = t.path / "records" / "job-17.node2.json";
  BOOST_TEST(fs::exists(file));
  BOOST_TEST(((fs::status(t.path / "records").permissions() & fs::perms::group_write) == fs::perms::none));
  // The epilog keeps the prolog's start (and its stage-in), not its own clock.
  monitor::NodeJobRecord end = load_start_record(config, job, node_record_from_env(env, job, 5000));
  BOOST_TEST(end.start_unix_ms == 1000);
  BOOST_TEST(end.stage_in_bytes == 77u);
  // Without a start record: the epilog's own view.
  fs::remove(file);
  BOOST_TEST(load_start_record(config, job, node_record_from_env(env, job, 5000)).start_unix_ms == 5000);
  // Without telemetry_dir: nothing written, nothing refused.
  PluginConfig off;
  write_job_record(off, start);
  BOOST_TEST(!fs::exists(file));
}

BOOST_AUTO_TEST_CASE(a_record_directory_a_user_could_write_is_refused) {
  TempDir t;
  PluginConfig config;
  config.telemetry_dir = t.path.string();
  fs::create_directory(t.path / "records");
  fs::permissions(t.path / "records", fs::perms::all);  // 0777: anyone could swap the records
  const auto env = env_of(prolog_env());
  const auto r = node_record_from_env(env, job_identity_from_env(env), 1);
  try {
    write_job_record(config, r);
    BOOST_ERROR("a group/other-writable record directory was accepted");
  } catch (const Error& e) {
    BOOST_TEST(std::string(e.what()).find("records") != std::string::npos);
  }
  fs::remove(t.path / "records");
  fs::create_directory_symlink(t.path, t.path / "records");  // a planted link is not followed
  BOOST_CHECK_THROW(write_job_record(config, r), Error);
}

BOOST_AUTO_TEST_CASE(the_epilog_removes_only_this_jobs_metrics_files) {
  TempDir t;
  PluginConfig config;
  config.prometheus_dir = t.path.string();
  for (const char* name : {"sluice_job_17_rank0.prom", "sluice_job_17_rank12.prom", ".sluice_job_17_rank3.prom.tmp",
                           "sluice_job_170_rank0.prom", "sluice_job_1_rank0.prom", "sluice_job_17_rankX.prom",
                           "node.prom", "sluice_job_17_rank0.prom.bak"})
    touch(t.path / name);
  fs::create_directory(t.path / "sluice_job_17_rank9.prom");  // not a file: left alone
  fs::create_directory(t.path / "victim");
  touch(t.path / "victim" / "keep");
  fs::create_symlink(t.path / "victim" / "keep", t.path / "sluice_job_17_rank5.prom");  // the link goes, not its target
  BOOST_TEST(remove_job_metrics(config, 17, ::geteuid()) == 4u);
  for (const char* gone : {"sluice_job_17_rank0.prom", "sluice_job_17_rank12.prom", ".sluice_job_17_rank3.prom.tmp",
                           "sluice_job_17_rank5.prom"})
    BOOST_TEST(!fs::exists(fs::symlink_status(t.path / gone)), gone);
  for (const char* kept : {"sluice_job_170_rank0.prom", "sluice_job_1_rank0.prom", "sluice_job_17_rankX.prom",
                           "node.prom", "sluice_job_17_rank0.prom.bak", "sluice_job_17_rank9.prom", "victim/keep"})
    BOOST_TEST(fs::exists(t.path / kept), kept);
  PluginConfig off;
  // Another user's file of the job's name (the directory is shared) is not the job's to remove.
  touch(t.path / "sluice_job_17_rank7.prom");
  if (::geteuid() == 0 && ::chown((t.path / "sluice_job_17_rank7.prom").c_str(), 65534, 65534) == 0) {
    BOOST_TEST(remove_job_metrics(config, 17, ::geteuid()) == 0u);
    BOOST_TEST(fs::exists(t.path / "sluice_job_17_rank7.prom"));
    BOOST_TEST(remove_job_metrics(config, 17, 65534) == 1u);  // the owner's own job: removed
  }
  BOOST_TEST(remove_job_metrics(off, 17, ::geteuid()) == 0u);
  config.prometheus_dir = (t.path / "missing").string();
  BOOST_TEST(remove_job_metrics(config, 17, ::geteuid()) == 0u);  // nothing to clean
}
