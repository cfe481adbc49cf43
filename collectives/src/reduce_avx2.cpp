// Reduction kernels, avx2 build (flags in collectives/CMakeLists.txt).
#define SLUICE_ISA_NS isa_avx2
#include "reduce_kernels.inc"
