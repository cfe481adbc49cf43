// Kernel dispatch (cpuid + SLUICE_COLL_ISA), type/op names and scalar 16-bit conversions.
#include "reduce.hpp"

#include <cstdlib>
#include <cstring>
#include <string>

namespace sluice::coll {

std::size_t size_of(DataType t) noexcept {
  switch (t) {
    case DataType::f32: case DataType::i32: return 4;
    case DataType::f64: case DataType::i64: return 8;
    case DataType::f16: case DataType::bf16: return 2;
  }
  return 0;
}

std::string_view name(DataType t) noexcept {
  switch (t) {
    case DataType::f32: return "f32";
    case DataType::f64: return "f64";
    case DataType::f16: return "f16";
    case DataType::bf16: return "bf16";
    case DataType::i32: return "i32";
    case DataType::i64: return "i64";
  }
  return "?";
}

std::string_view name(ReduceOp op) noexcept {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::avg: return "avg";
    case ReduceOp::min: return "min";
    case ReduceOp::max: return "max";
    case ReduceOp::prod: return "prod";
  }
  return "?";
}

std::string_view name(Algorithm a) noexcept {
  switch (a) {
    case Algorithm::automatic: return "auto";
    case Algorithm::shm: return "shm";
    case Algorithm::ring: return "ring";
    case Algorithm::recursive_doubling: return "rd";
    case Algorithm::rabenseifner: return "rabenseifner";
    case Algorithm::hierarchical: return "hierarchical";
  }
  return "?";
}

std::string_view name(TransportKind t) noexcept {
  switch (t) {
    case TransportKind::mpi: return "mpi";
    case TransportKind::ucx: return "ucx";
  }
  return "?";
}

std::optional<TransportKind> parse_transport(std::string_view s) noexcept {
  if (s == "mpi") return TransportKind::mpi;
  if (s == "ucx") return TransportKind::ucx;
  return std::nullopt;
}

std::optional<Algorithm> parse_algorithm(std::string_view s) noexcept {
  if (s == "auto" || s == "automatic" || s.empty()) return Algorithm::automatic;
  if (s == "shm") return Algorithm::shm;
  if (s == "ring") return Algorithm::ring;
  if (s == "rd" || s == "recursive_doubling") return Algorithm::recursive_doubling;
  if (s == "rabenseifner" || s == "rab") return Algorithm::rabenseifner;
  if (s == "hierarchical" || s == "hier") return Algorithm::hierarchical;
  return std::nullopt;
}

std::optional<DataType> parse_datatype(std::string_view s) noexcept {
  for (int i = 0; i < kDataTypeCount; ++i)
    if (name(DataType(i)) == s) return DataType(i);
  return std::nullopt;
}

std::optional<ReduceOp> parse_op(std::string_view s) noexcept {
  for (int i = 0; i < kReduceOpCount; ++i)
    if (name(ReduceOp(i)) == s) return ReduceOp(i);
  return std::nullopt;
}

std::string_view name(Isa isa) noexcept {
  switch (isa) {
    case Isa::generic: return "generic";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

bool isa_supported(Isa isa) noexcept {
  __builtin_cpu_init();
  switch (isa) {
    case Isa::generic: return true;
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("f16c");
  }
  return false;
}

namespace {
Isa detect() noexcept {
  if (const char* forced = std::getenv("SLUICE_COLL_ISA")) {
    std::string_view f(forced);
    for (Isa i : {Isa::generic, Isa::avx2, Isa::avx512})
      if (f == name(i) && isa_supported(i)) return i;
  }
  if (isa_supported(Isa::avx512)) return Isa::avx512;
  if (isa_supported(Isa::avx2)) return Isa::avx2;
  return Isa::generic;
}

ReduceFn lookup(Isa isa, DataType t, ReduceOp op) noexcept {
  switch (isa) {
    case Isa::avx512: return isa_avx512::kernel(t, op);
    case Isa::avx2: return isa_avx2::kernel(t, op);
    case Isa::generic: break;
  }
  return isa_generic::kernel(t, op);
}

// Table filled once: [isa][type][op].
struct Table {
  ReduceFn fn[3][kDataTypeCount][kReduceOpCount];
  Table() {
    for (int i = 0; i < 3; ++i)
      for (int t = 0; t < kDataTypeCount; ++t)
        for (int o = 0; o < kReduceOpCount; ++o) fn[i][t][o] = lookup(Isa(i), DataType(t), ReduceOp(o));
  }
};
const Table& table() {
  static const Table tbl;
  return tbl;
}
}  // namespace

Isa active_isa() noexcept {
  static const Isa isa = detect();
  return isa;
}

void reduce_with(Isa isa, DataType t, ReduceOp op, void* out, const void* const* srcs, int k,
                 std::size_t n, std::size_t divisor, void* out2) {
  if (n == 0 || k <= 0) return;
  if (!isa_supported(isa)) throw InvalidArgument("reduce: ISA " + std::string(name(isa)) + " not supported here");
  table().fn[int(isa)][int(t)][int(op)](out, srcs, k, n, op == ReduceOp::avg ? divisor : 0, out2);
}

void reduce(DataType t, ReduceOp op, void* out, const void* const* srcs, int k, std::size_t n,
            std::size_t divisor, void* out2) {
  if (n == 0 || k <= 0) return;
  table().fn[int(active_isa())][int(t)][int(op)](out, srcs, k, n, op == ReduceOp::avg ? divisor : 0, out2);
}

void divide(DataType t, void* out, std::size_t n, std::size_t divisor) {
  const void* src[1] = {out};
  reduce(t, ReduceOp::avg, out, src, 1, n, divisor);
}

// --- scalar conversions ------------------------------------------------------------------
float f16_to_f32(std::uint16_t h) noexcept {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t man = h & 0x3ffu;
  std::uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((man & 0x400u) == 0) { man <<= 1; --exp; }
      man &= 0x3ffu;
      u = sign | (exp << 23) | (man << 13);
    }
  } else if (exp == 0x1f) {
    u = sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0u);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::uint16_t f32_to_f16(float f) noexcept {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  const std::uint16_t sign = std::uint16_t((u >> 16) & 0x8000u);
  const std::uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return std::uint16_t(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));  // NaN, quiet
  if (abs >= 0x477ff000u) return std::uint16_t(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {  // result is subnormal or zero: shift with round-to-nearest-even
    if (abs < 0x33000000u) return sign;  // < 2^-25: rounds to 0
    const std::uint32_t e = abs >> 23;
    const std::uint32_t m = (abs & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126 - e;  // 14 + (113 - e) - ... : puts the value in units of 2^-24
    // value = m * 2^(e-150); in units of 2^-24: m * 2^(e-126) = m >> (126 - e)
    std::uint32_t q = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1u);
    const std::uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return std::uint16_t(sign | q);
  }
  // normal: rebias, round the 13 dropped bits to nearest-even (may carry into the exponent)
  std::uint32_t v = abs - ((127u - 15u) << 23);
  v = (v + 0xfffu + ((v >> 13) & 1u)) >> 13;
  return std::uint16_t(sign | v);
}

float bf16_to_f32(std::uint16_t h) noexcept {
  std::uint32_t u = std::uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::uint16_t f32_to_bf16(float f) noexcept {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x40u);
  return std::uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

}  // namespace sluice::coll
