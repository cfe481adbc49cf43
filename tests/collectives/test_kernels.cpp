// Reduction kernels: every type and op against a scalar reference, the 16-bit conversions
// (exhaustive for f16 and bf16 -> f32 -> back; RNE ties; against F16C hardware), every ISA build
// bit-identical to the generic one, aliasing (out == a source), and lengths around the SIMD
// widths and the block size.
#define BOOST_TEST_MODULE collectives_kernels
#include <boost/test/unit_test.hpp>

#include "../../collectives/src/reduce.hpp"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

using namespace sluice::coll;

namespace {

#if defined(__x86_64__)
__attribute__((target("f16c"))) std::uint16_t hardware_f16(float f) {
  return std::uint16_t(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}
#endif

std::vector<Isa> isas() {
  std::vector<Isa> v;
  for (Isa i : {Isa::generic, Isa::avx2, Isa::avx512})
    if (isa_supported(i)) v.push_back(i);
  return v;
}

// Random bytes that are valid finite values of type t (no NaN: its payload is not compared).
std::vector<char> random_values(DataType t, std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> d(-4.0, 4.0);
  std::vector<char> out(n * size_of(t));
  for (std::size_t i = 0; i < n; ++i) {
    double v = d(rng);
    switch (t) {
      case DataType::f32: { float f = float(v); std::memcpy(&out[i * 4], &f, 4); break; }
      case DataType::f64: std::memcpy(&out[i * 8], &v, 8); break;
      case DataType::i32: { std::int32_t x = std::int32_t(rng()); std::memcpy(&out[i * 4], &x, 4); break; }
      case DataType::i64: { std::int64_t x = std::int64_t(rng()) << 20 ^ rng(); std::memcpy(&out[i * 8], &x, 8); break; }
      case DataType::f16: { std::uint16_t h = f32_to_f16(float(v)); std::memcpy(&out[i * 2], &h, 2); break; }
      case DataType::bf16: { std::uint16_t h = f32_to_bf16(float(v)); std::memcpy(&out[i * 2], &h, 2); break; }
    }
  }
  return out;
}

// Scalar reference: fold in source order; 16-bit floats in f32 with one rounding at the end.
template <class A>
A apply(ReduceOp op, A a, A b) {
  switch (op) {
    case ReduceOp::sum: case ReduceOp::avg:
      if constexpr (std::is_integral_v<A>) return A(std::make_unsigned_t<A>(a) + std::make_unsigned_t<A>(b));
      else return a + b;
    case ReduceOp::prod:
      if constexpr (std::is_integral_v<A>) return A(std::make_unsigned_t<A>(a) * std::make_unsigned_t<A>(b));
      else return a * b;
    case ReduceOp::min: return b < a ? b : a;
    case ReduceOp::max: return a < b ? b : a;
  }
  return a;
}

template <class T, class A, class Load, class Store>
void reference_t(ReduceOp op, const std::vector<const char*>& src, char* out, std::size_t n, std::size_t div,
                 Load load, Store store) {
  for (std::size_t i = 0; i < n; ++i) {
    T x;
    std::memcpy(&x, src[0] + i * sizeof(T), sizeof(T));
    A acc = load(x);
    for (std::size_t j = 1; j < src.size(); ++j) {
      std::memcpy(&x, src[j] + i * sizeof(T), sizeof(T));
      acc = apply(op, acc, load(x));
    }
    if (op == ReduceOp::avg) acc = acc / A(div);
    T r = store(acc);
    std::memcpy(out + i * sizeof(T), &r, sizeof(T));
  }
}

void reference(DataType t, ReduceOp op, const std::vector<const char*>& src, char* out, std::size_t n, std::size_t div) {
  auto id = [](auto v) { return v; };
  switch (t) {
    case DataType::f32: reference_t<float, float>(op, src, out, n, div, id, id); break;
    case DataType::f64: reference_t<double, double>(op, src, out, n, div, id, id); break;
    case DataType::i32: reference_t<std::int32_t, std::int32_t>(op, src, out, n, div, id, id); break;
    case DataType::i64: reference_t<std::int64_t, std::int64_t>(op, src, out, n, div, id, id); break;
    case DataType::f16: reference_t<std::uint16_t, float>(op, src, out, n, div, f16_to_f32, f32_to_f16); break;
    case DataType::bf16: reference_t<std::uint16_t, float>(op, src, out, n, div, bf16_to_f32, f32_to_bf16); break;
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_type_op_isa_matches_the_reference) {
  for (Isa isa : isas()) {
    for (int t = 0; t < kDataTypeCount; ++t) {
      for (int o = 0; o < kReduceOpCount; ++o) {
        const auto type = DataType(t);
        const auto op = ReduceOp(o);
        for (int k : {1, 2, 3, 8}) {
          for (std::size_t n : {std::size_t(1), std::size_t(7), std::size_t(15), std::size_t(16), std::size_t(33),
                                std::size_t(1023), std::size_t(1024), std::size_t(1025), std::size_t(5000)}) {
            std::vector<std::vector<char>> in;
            std::vector<const char*> src;
            for (int j = 0; j < k; ++j) in.push_back(random_values(type, n, unsigned(j * 31 + t * 7 + o)));
            for (auto& v : in) src.push_back(v.data());
            std::vector<char> want(n * size_of(type)), got(n * size_of(type) + 8, 'x');
            reference(type, op, src, want.data(), n, std::size_t(k));
            std::vector<const void*> vsrc(src.begin(), src.end());
            reduce_with(isa, type, op, got.data(), vsrc.data(), k, n, std::size_t(k));
            BOOST_TEST_INFO("isa " << name(isa) << " " << name(type) << " " << name(op) << " k=" << k << " n=" << n);
            BOOST_TEST(std::memcmp(want.data(), got.data(), want.size()) == 0);
            BOOST_TEST(got[want.size()] == 'x');  // nothing written past n
            // A second destination gets the same bits in the same pass.
            std::vector<char> got1(want.size()), got2(want.size() + 8, 'y');
            reduce_with(isa, type, op, got1.data(), vsrc.data(), k, n, std::size_t(k), got2.data());
            BOOST_TEST(std::memcmp(want.data(), got1.data(), want.size()) == 0);
            BOOST_TEST(std::memcmp(want.data(), got2.data(), want.size()) == 0);
            BOOST_TEST(got2[want.size()] == 'y');
            // In place: out (or the second destination) is the first and then the last source.
            for (int alias : {0, k - 1}) {
              std::vector<char> inout = in[std::size_t(alias)];
              std::vector<char> other(want.size());
              vsrc[std::size_t(alias)] = inout.data();
              if (alias == 0) reduce_with(isa, type, op, inout.data(), vsrc.data(), k, n, std::size_t(k));
              else reduce_with(isa, type, op, other.data(), vsrc.data(), k, n, std::size_t(k), inout.data());
              vsrc[std::size_t(alias)] = in[std::size_t(alias)].data();
              BOOST_TEST(std::memcmp(want.data(), inout.data(), want.size()) == 0);
            }
          }
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(f16_and_bf16_conversions_round_to_nearest_even) {
  // Every 16-bit pattern survives widening and narrowing (NaNs stay NaNs).
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(std::uint16_t(h));
    if (std::isnan(f)) BOOST_TEST(std::isnan(f16_to_f32(f32_to_f16(f))));
    else BOOST_TEST(f32_to_f16(f) == h);
    const float b = bf16_to_f32(std::uint16_t(h));
    if (std::isnan(b)) BOOST_TEST(std::isnan(bf16_to_f32(f32_to_bf16(b))));
    else BOOST_TEST(f32_to_bf16(b) == h);
  }
  // Ties: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 in f16 -> 1 (even); 1 + 3*2^-11 -> up.
  BOOST_TEST(f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);
  BOOST_TEST(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
  BOOST_TEST(f32_to_f16(65520.0f) == 0x7c00);  // ties to even: infinity
  BOOST_TEST(f32_to_f16(65519.0f) == 0x7bff);
  BOOST_TEST(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);
  BOOST_TEST(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);
#if defined(__x86_64__)
  // Against the F16C instruction on random f32 bit patterns (normal, subnormal, huge).
  if (__builtin_cpu_supports("f16c")) {
    std::mt19937 rng(7);
    for (int i = 0; i < 200000; ++i) {
      std::uint32_t u = rng();
      float f;
      std::memcpy(&f, &u, 4);
      if (std::isnan(f)) continue;
      const std::uint16_t hw = hardware_f16(f);
      BOOST_TEST_INFO("f32 bits " << std::hex << u);
      BOOST_TEST(f32_to_f16(f) == hw);
      const float scaled = std::ldexp(f, -int((u >> 23) & 0xff) + 127 - 14 - int(rng() % 12));  // near the f16 range
      BOOST_TEST(f32_to_f16(scaled) == hardware_f16(scaled));
    }
  }
#endif
}

BOOST_AUTO_TEST_CASE(the_dispatch_picks_the_widest_supported_isa) {
  BOOST_TEST(isa_supported(Isa::generic));
  if (!std::getenv("SLUICE_COLL_ISA")) {
    const Isa want = isa_supported(Isa::avx512) ? Isa::avx512 : isa_supported(Isa::avx2) ? Isa::avx2 : Isa::generic;
    BOOST_TEST(int(active_isa()) == int(want));
  }
}
