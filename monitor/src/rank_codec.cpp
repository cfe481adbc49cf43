// A rank's contribution to the job file as bytes (native byte order, bounds-checked reads).
#include "rank_codec.hpp"

#include "summary_fields.hpp"

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>

namespace sluice::monitor::detail {
namespace {

constexpr std::uint32_t kMagic = 0x4d544c53;  // "SLTM"
constexpr std::uint32_t kVersion = 1;

struct Out {
  static constexpr bool reading = false;
  std::vector<std::byte> bytes;

  template <class T>
    requires std::is_trivially_copyable_v<T>
  void operator()(const T& v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    bytes.insert(bytes.end(), p, p + sizeof v);
  }
  void operator()(const std::string& s) {
    (*this)(std::uint64_t(s.size()));
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    bytes.insert(bytes.end(), p, p + s.size());
  }
  template <class T>
  void operator()(const std::optional<T>& o) {
    (*this)(std::uint8_t(o.has_value()));
    if (o) (*this)(*o);
  }
  void operator()(const Histogram& h) {
    std::uint32_t nonzero = 0;
    for (auto c : h.buckets()) nonzero += c != 0;
    (*this)(nonzero);
    for (std::size_t i = 0; i < h.buckets().size(); ++i)
      if (h.buckets()[i]) (*this)(std::uint32_t(i)), (*this)(h.buckets()[i]);
    (*this)(h.sum()), (*this)(h.min()), (*this)(h.max());
  }
  template <class T>
  void count(const std::vector<T>& v) {
    (*this)(std::uint64_t(v.size()));
  }
};

struct In {
  static constexpr bool reading = true;
  std::span<const std::byte> bytes;
  int rank;
  std::size_t pos = 0;

  [[noreturn]] void damaged(const char* what) const {
    throw Error("sluice telemetry: the data gathered from rank " + std::to_string(rank) + " is damaged (" + what +
                " at byte " + std::to_string(pos) + " of " + std::to_string(bytes.size()) + ")");
  }
  const std::byte* take(std::size_t n) {
    if (n > bytes.size() - pos) damaged("truncated");
    const std::byte* p = bytes.data() + pos;
    pos += n;
    return p;
  }
  template <class T>
    requires std::is_trivially_copyable_v<T>
  void operator()(T& v) {
    if constexpr (std::is_same_v<T, bool>) {
      std::uint8_t b = 0;
      (*this)(b);
      v = b != 0;
    } else {
      std::memcpy(&v, take(sizeof v), sizeof v);
    }
  }
  void operator()(std::string& s) {
    std::uint64_t n = 0;
    (*this)(n);
    const auto* p = reinterpret_cast<const char*>(take(n));
    s.assign(p, n);
  }
  template <class T>
  void operator()(std::optional<T>& o) {
    bool present = false;
    (*this)(present);
    if (present) (*this)(o.emplace());
  }
  void operator()(Histogram& h) {
    std::uint32_t nonzero = 0;
    (*this)(nonzero);
    for (std::uint32_t k = 0; k < nonzero; ++k) {
      std::uint32_t i = 0;
      std::uint64_t c = 0;
      (*this)(i), (*this)(c);
      if (i >= HistogramLayout::kBuckets) damaged("histogram bucket out of range");
      h.add_bucket(i, c);
    }
    std::uint64_t sum = 0, mn = 0, mx = 0;
    (*this)(sum), (*this)(mn), (*this)(mx);
    if (h.count()) h.add_stats(sum, mn, mx);
  }
  template <class T>
  void count(std::vector<T>& v) {
    std::uint64_t n = 0;
    (*this)(n);
    if (n > bytes.size() - pos) damaged("count larger than the data");  // every element takes >= 1 byte
    v.resize(n);
  }
};

// Both directions in one place: Ar is Out (R const) or In.
template <class Ar, class R>
void transfer(Ar& ar, R& r) {
  std::uint32_t magic = kMagic, version = kVersion;
  ar(magic), ar(version);
  if constexpr (Ar::reading)
    if (magic != kMagic || version != kVersion) ar.damaged("not sluice rank data of this version");
  ar(r.rank), ar(r.host), ar(r.samples_dropped);
  auto& s = r.snapshot;
  ar(s.elapsed_ns), ar(s.threads), ar(s.torn_groups);
  ar(s.steps), ar(s.step_ns), ar(s.step_data_wait_ns), ar(s.step_allreduce_ns), ar(s.step_compute_ns);
  ar(s.io_ops), ar(s.io_bytes), ar(s.io_ns), ar(s.stalls), ar(s.stall_ns);
  ar(s.allreduces), ar(s.allreduce_bytes), ar(s.allreduce_bus_bytes), ar(s.allreduce_ns);
  ar(s.step_time), ar(s.step_data_wait), ar(s.io_time), ar(s.stall_time), ar(s.allreduce_time);
  ar.count(r.samples);
  for (auto& x : r.samples) {
    visit_sample_fields([&](const char*, auto member) { ar(x.*member); });
    ar.count(x.gpus);
    for (auto& g : x.gpus) {
      ar(g.index);
      visit_gpu_fields([&](const char*, auto member) { ar(g.*member); });
    }
  }
}

std::vector<std::byte> encode(const RankInput& r) {
  Out out;
  transfer(out, r);
  return std::move(out.bytes);
}

}  // namespace

std::vector<std::byte> encode_rank(const RankInput& r, std::size_t budget) {
  std::vector<std::byte> full = encode(r);
  if (full.size() <= budget || r.samples.empty()) return full;
  RankInput thin{r.rank, r.host, r.snapshot, {}, r.samples_dropped};
  const std::size_t base = encode(thin).size();
  const std::size_t n = r.samples.size();
  const std::size_t per_sample = (full.size() - base + n - 1) / n;
  std::size_t fit = budget > base ? (budget - base) / per_sample : 0;
  while (true) {
    thin.samples.clear();
    if (fit > 0) {
      const std::size_t stride = (n + fit - 1) / fit;
      for (std::size_t i = (n - 1) % stride; i < n; i += stride) thin.samples.push_back(r.samples[i]);  // ends at n-1
    }
    thin.samples_dropped = r.samples_dropped + (n - thin.samples.size());
    std::vector<std::byte> b = encode(thin);
    if (b.size() <= budget || fit == 0) return b;
    fit /= 2;  // samples of unequal size (GPU lists): try again with fewer
  }
}

RankInput decode_rank(std::span<const std::byte> bytes, int rank_hint) {
  In in{bytes, rank_hint};
  RankInput r;
  transfer(in, r);
  if (in.pos != bytes.size()) in.damaged("trailing bytes");
  return r;
}

}  // namespace sluice::monitor::detail
