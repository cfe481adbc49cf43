// Reduction kernels: out = op(srcs[0], srcs[1], ..., srcs[k-1]) element-wise, folded in
// source order. f16/bf16 are accumulated in f32 across all k sources and rounded back to
// nearest-even once; `divisor` > 0 divides the accumulated value (op avg) before rounding.
// `out` may be the very same pointer as any source (blockwise: a block is read from every
// source before it is written); partial overlap is not allowed.
//
// Three builds of the same kernel source (reduce_kernels.inc): generic x86-64, AVX2+F16C+FMA,
// AVX-512 (F, BW, VL) + F16C, chosen at run time from cpuid; SLUICE_COLL_ISA=generic|avx2|avx512
// forces one (tests use it to check that every build gives bit-identical results).
#pragma once

#include <sluice/collectives/types.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sluice::coll {

enum class Isa : int { generic = 0, avx2 = 1, avx512 = 2 };

// `out2` (may be null): a second destination written with the same values in the same pass
// (the shm path's own share goes to the user's buffer and the shared result area at once).
using ReduceFn = void (*)(void* out, const void* const* srcs, int k, std::size_t n, std::size_t divisor, void* out2);

// The kernel for (type, op) on the selected ISA. For op avg pass the rank count as divisor
// (ints: truncating division of the sum; floats: the f32/f64 quotient, one rounding).
void reduce(DataType t, ReduceOp op, void* out, const void* const* srcs, int k, std::size_t n,
            std::size_t divisor = 0, void* out2 = nullptr);
void reduce_with(Isa isa, DataType t, ReduceOp op, void* out, const void* const* srcs, int k,
                 std::size_t n, std::size_t divisor = 0, void* out2 = nullptr);
// out[i] = out[i] / divisor for op avg where a path reduces with sum first.
void divide(DataType t, void* out, std::size_t n, std::size_t divisor);

Isa active_isa() noexcept;           // after cpuid and SLUICE_COLL_ISA
bool isa_supported(Isa isa) noexcept;
std::string_view name(Isa isa) noexcept;

// Scalar conversions (round to nearest-even; NaN stays NaN, quiet).
float f16_to_f32(std::uint16_t h) noexcept;
std::uint16_t f32_to_f16(float f) noexcept;
float bf16_to_f32(std::uint16_t h) noexcept;
std::uint16_t f32_to_bf16(float f) noexcept;

namespace isa_generic { ReduceFn kernel(DataType t, ReduceOp op) noexcept; }
namespace isa_avx2 { ReduceFn kernel(DataType t, ReduceOp op) noexcept; }
namespace isa_avx512 { ReduceFn kernel(DataType t, ReduceOp op) noexcept; }

}  // namespace sluice::coll
