// Reduction kernels, avx512 build (flags in collectives/CMakeLists.txt).
#define SLUICE_ISA_NS isa_avx512
#include "reduce_kernels.inc"
