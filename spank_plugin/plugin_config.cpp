#include "plugin_config.hpp"

#include <sluice/common/error.hpp>
#include <sluice/common/strings.hpp>

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>

namespace sluice::spank {

std::string default_stage_tool() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&default_stage_tool), &info) != 0 && info.dli_fname &&
      info.dli_fname[0] == '/') {
    const std::filesystem::path beside =
        std::filesystem::path(info.dli_fname).parent_path() / SLUICE_STAGE_TOOL_FROM_PLUGIN_DIR;
    if (::access(beside.c_str(), X_OK) == 0) return beside.lexically_normal().string();
  }
  return SLUICE_STAGE_TOOL_DEFAULT;
}

unsigned parse_duration_s(const std::string& text, const std::string& what) {
  std::size_t digits = 0;
  while (digits < text.size() && digits < 9 && text[digits] >= '0' && text[digits] <= '9') ++digits;
  const std::string unit = text.substr(digits);
  const unsigned long long scale = unit == "" || unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : 0;
  const unsigned long long value = digits ? std::stoull(text.substr(0, digits)) * scale : 0;
  if (digits == 0 || scale == 0 || value < 1 || value > 7ull * 24 * 3600)
    throw InvalidArgument(what + "=" + quote_input(text) + " must be a duration from 1 s to 7 days (90, 90s, 15m, 2h)");
  return static_cast<unsigned>(value);
}

PluginConfig parse_plugin_args(const std::vector<std::string>& args) {
  PluginConfig c;
  for (const std::string& a : args) {
    auto eq = a.find('=');
    std::string key = a.substr(0, eq);
    std::string value = eq == std::string::npos ? "" : a.substr(eq + 1);
    if (eq == std::string::npos || value.empty())
      throw InvalidArgument("plugstack.conf argument '" + a + "' needs a value (key=value)");
    if (key == "default_policy") {
      try {
        c.default_policy = parse_policy(value);
      } catch (const InvalidArgument&) {
        throw InvalidArgument("plugstack.conf argument default_policy=" + value + " is invalid (valid: pack, spread, none)");
      }
    } else if (key == "topology_xml") {
      if (value.front() != '/') throw InvalidArgument("plugstack.conf argument topology_xml=" + value + " must be an absolute path");
      c.topology_xml = value;
    } else if (key == "cpu_emulation") {
      if (value == "none") c.cpu_emulation = CpuEmulation::none;
      else if (value == "block") c.cpu_emulation = CpuEmulation::block;
      else throw InvalidArgument("plugstack.conf argument cpu_emulation=" + value + " is invalid (valid: none, block)");
    } else if (key == "nics" || key == "exclude_nics") {
      (key == "nics" ? c.nics.allow : c.nics.exclude) =
          topo::parse_nic_patterns(value, "plugstack.conf argument " + key + "=");
    } else if (key == "run_dir") {
      if (value.front() != '/') throw InvalidArgument("plugstack.conf argument run_dir=" + value + " must be an absolute path");
      c.run_dir = value;
    } else if (key == "bb_root" || key == "stage_tool" || key == "telemetry_dir" || key == "prometheus_dir") {
      if (value.front() != '/' || value == "/")
        throw InvalidArgument("plugstack.conf argument " + key + "=" + value + " must be an absolute path (not /)");
      (key == "bb_root"         ? c.bb_root
       : key == "stage_tool"    ? c.stage_tool
       : key == "telemetry_dir" ? c.telemetry_dir
                                : c.prometheus_dir) = value;
    } else if (key == "cache_max") {
      c.cache_max = parse_byte_size(value, "plugstack.conf argument cache_max=");
    } else if (key == "stage_jobs") {
      unsigned long n = 0;
      std::size_t used = 0;
      try {
        n = std::stoul(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != value.size() || n < 1 || n > 256)
        throw InvalidArgument("plugstack.conf argument stage_jobs=" + value + " must be a number from 1 to 256");
      c.stage_jobs = static_cast<unsigned>(n);
    } else if (key == "stage_in_timeout" || key == "stage_out_timeout") {
      (key == "stage_in_timeout" ? c.stage_in_timeout_s : c.stage_out_timeout_s) =
          parse_duration_s(value, "plugstack.conf argument " + key);
    } else {
      throw InvalidArgument("unknown plugstack.conf argument '" + a +
                            "' (valid: default_policy=, topology_xml=, cpu_emulation=, nics=, exclude_nics=, run_dir=, "
                            "bb_root=, cache_max=, stage_tool=, stage_jobs=, stage_in_timeout=, stage_out_timeout=, "
                            "telemetry_dir=, prometheus_dir=)");
    }
  }
  return c;
}

}  // namespace sluice::spank
