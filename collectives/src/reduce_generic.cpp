// Reduction kernels, generic build (flags in collectives/CMakeLists.txt).
#define SLUICE_ISA_NS isa_generic
#include "reduce_kernels.inc"
