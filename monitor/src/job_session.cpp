#include <sluice/monitor/job_session.hpp>

#include <sluice/common/error.hpp>

#include <charconv>
#include <cstdlib>
#include <optional>
#include <string_view>

namespace sluice::monitor {
namespace {

// Seconds from the environment: unset or empty is nullopt; anything but a number in
// [min, 1e6] is refused, naming the variable.
std::optional<std::chrono::milliseconds> env_seconds(const char* name, double min) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  double s = 0;
  const std::string_view text(v);
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), s);
  if (ec != std::errc() || end != text.data() + text.size() || !(s >= min) || s > 1e6)
    throw InvalidArgument(std::string(name) + "=" + quote_input(text) + " is not a number of seconds (at least " +
                          std::to_string(min).substr(0, 3) + ")");
  return std::chrono::milliseconds(static_cast<long long>(s * 1000));
}

}  // namespace

JobSession::JobSession(MPI_Comm comm, JobSessionOptions opts) {
  if (opts.from_environment) {
    if (auto c = env_seconds("SLUICE_TELEMETRY_CHECKPOINT", 0)) opts.telemetry.checkpoint_interval = *c;
    if (auto s = env_seconds("SLUICE_SAMPLE_INTERVAL", 0.1)) opts.sampler.interval = *s;
  }
  sampler_ = std::make_unique<Sampler>(opts.sampler);
  sampler_->start();
  opts.prometheus.sampler = sampler_.get();
  prometheus_ = std::make_unique<PrometheusWriter>(opts.prometheus);
  prometheus_->start();
  opts.telemetry.sampler = sampler_.get();
  writer_ = std::make_unique<JobTelemetryWriter>(comm, opts.telemetry);
}

JobSession::~JobSession() {
  writer_.reset();
  prometheus_->stop();
  sampler_->stop();
}

}  // namespace sluice::monitor
