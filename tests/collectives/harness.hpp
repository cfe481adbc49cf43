// A few helpers for the multi-rank test programs (run under mpirun by ctest): inputs that
// reduce exactly, a reference, and failure reporting that makes the whole job fail.
#pragma once

#include <sluice/collectives/communicator.hpp>

#include <mpi.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace sluice::coll::test {

// Scalar conversions, independent of the library's (round to nearest-even).
inline std::uint16_t to_bf16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return std::uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float from_bf16(std::uint16_t h) {
  std::uint32_t u = std::uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Exact for the small integers and simple fractions the tests use (normal range).
inline std::uint16_t to_f16(float f) {
  if (f == 0) return std::signbit(f) ? 0x8000 : 0;
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  const std::uint32_t sign = (u >> 16) & 0x8000u;
  std::uint32_t v = (u & 0x7fffffffu) - ((127u - 15u) << 23);
  v = (v + 0xfffu + ((v >> 13) & 1u)) >> 13;
  return std::uint16_t(sign | v);
}
inline float from_f16(std::uint16_t h) {
  if ((h & 0x7fff) == 0) return (h & 0x8000) ? -0.0f : 0.0f;
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t u = sign | ((((h >> 10) & 0x1fu) + 127 - 15) << 23) | (std::uint32_t(h & 0x3ffu) << 13);
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// The value rank q contributes at element i: small integers (sums of up to 8 ranks stay exact in
// every type), or {1,-1,2} for prod.
inline double input_value(int q, std::size_t i, ReduceOp op) {
  if (op == ReduceOp::prod) {
    const int k = int((std::size_t(q) + i) % 3);
    return k == 0 ? 1.0 : k == 1 ? -1.0 : 2.0;
  }
  return double(int((std::size_t(q) * 7 + i * 13) % 17) - 8);
}

inline void store(DataType t, void* buf, std::size_t i, double v) {
  switch (t) {
    case DataType::f32: static_cast<float*>(buf)[i] = float(v); break;
    case DataType::f64: static_cast<double*>(buf)[i] = v; break;
    case DataType::i32: static_cast<std::int32_t*>(buf)[i] = std::int32_t(v); break;
    case DataType::i64: static_cast<std::int64_t*>(buf)[i] = std::int64_t(v); break;
    case DataType::f16: static_cast<std::uint16_t*>(buf)[i] = to_f16(float(v)); break;
    case DataType::bf16: static_cast<std::uint16_t*>(buf)[i] = to_bf16(float(v)); break;
  }
}

// The (type, op) pairs that also run the big counts (time budget): f32 sum and, with `half`,
// bf16 sum and f16 avg, the common training types.
inline bool training_pair(DataType t, ReduceOp op, bool half = true) {
  return (t == DataType::f32 && op == ReduceOp::sum) ||
         (half && ((t == DataType::bf16 && op == ReduceOp::sum) || (t == DataType::f16 && op == ReduceOp::avg)));
}

inline void fill_input(DataType t, ReduceOp op, int rank, void* buf, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) store(t, buf, i, input_value(rank, i, op));
}

// The expected element i over n ranks, written into `buf` as type t (bit pattern to compare).
inline void fill_expected(DataType t, ReduceOp op, int n, void* buf, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    double acc = input_value(0, i, op);
    for (int q = 1; q < n; ++q) {
      const double v = input_value(q, i, op);
      switch (op) {
        case ReduceOp::sum: case ReduceOp::avg: acc += v; break;
        case ReduceOp::prod: acc *= v; break;
        case ReduceOp::min: acc = v < acc ? v : acc; break;
        case ReduceOp::max: acc = acc < v ? v : acc; break;
      }
    }
    if (op != ReduceOp::avg) {
      store(t, buf, i, acc);
      continue;
    }
    switch (t) {  // avg: the exact sum divided in the accumulation type, rounded once more
      case DataType::f64: static_cast<double*>(buf)[i] = acc / n; break;
      case DataType::f32: static_cast<float*>(buf)[i] = float(acc) / float(n); break;
      case DataType::f16: static_cast<std::uint16_t*>(buf)[i] = 0; {
        const float q = float(acc) / float(n);
        // f32 -> f16 with round to nearest-even, general (the quotient is not a short number)
        std::uint32_t u;
        std::memcpy(&u, &q, 4);
        std::uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
        std::uint16_t h;
        if (a < 0x38800000u) {  // subnormal half
          const float scaled = std::fabs(q) * 16777216.0f;  // units of 2^-24, exact
          h = std::uint16_t(sign | std::uint32_t(std::nearbyint(scaled)));
        } else {
          std::uint32_t v = a - ((127u - 15u) << 23);
          v = (v + 0xfffu + ((v >> 13) & 1u)) >> 13;
          h = std::uint16_t(sign | v);
        }
        static_cast<std::uint16_t*>(buf)[i] = h;
        break;
      }
      case DataType::bf16: static_cast<std::uint16_t*>(buf)[i] = to_bf16(float(acc) / float(n)); break;
      case DataType::i32: static_cast<std::int32_t*>(buf)[i] = std::int32_t(std::int64_t(acc) / n); break;
      case DataType::i64: static_cast<std::int64_t*>(buf)[i] = std::int64_t(acc) / n; break;
    }
  }
}

inline std::uint64_t fnv(const void* p, std::size_t n) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ static_cast<const unsigned char*>(p)[i]) * 1099511628211ull;
  return h;
}

// Fails the whole job (every rank sees the same count) if any rank counted a failure.
inline int all_failures(int local, MPI_Comm comm) {
  int total = 0;
  MPI_Allreduce(&local, &total, 1, MPI_INT, MPI_SUM, comm);
  return total;
}

}  // namespace sluice::coll::test
