// Device buffers: an allreduce whose send or receive buffer is CUDA device memory runs the
// host algorithms on pinned host copies, chunk by chunk, with the copies of neighbouring
// chunks in flight while a chunk is reduced (collectives/README.md, "CUDA device buffers").
// The CUDA driver is loaded with dlopen (sluice/common/cuda_driver.hpp); without it nothing
// here is ever used.
#pragma once

#include <sluice/common/cuda_driver.hpp>

#include <array>
#include <cstddef>
#include <functional>

namespace sluice::coll {

// True when this process can see CUDA device memory (a driver and a GPU). Never throws.
bool cuda_present() noexcept;

class CudaStager {
 public:
  // The host allreduce of one chunk (a collective call; send == recv: in place).
  using Reduce = std::function<void(const void* send, void* recv, std::size_t count)>;

  CudaStager() = default;
  ~CudaStager();  // frees in its context (made current for the purpose)
  CudaStager(const CudaStager&) = delete;
  CudaStager& operator=(const CudaStager&) = delete;

  // Runs `reduce` over chunks of `chunk` elements of `esz` bytes; `send_device` and
  // `recv_device` say which side is device memory (at least one). Three pinned buffers:
  // the copy-in of chunk k+1 and the copy-out of chunk k-1 overlap the reduction of chunk k.
  // Returns once every copy to the device finished, also when `reduce` throws.
  void run(const void* send, void* recv, std::size_t count, std::size_t esz, std::size_t chunk, bool send_device,
           bool recv_device, const Reduce& reduce);

 private:
  void prepare(cuda::Context ctx, std::size_t bytes);

  const cuda::Driver* driver_ = cuda::Driver::process();
  cuda::Context ctx_ = nullptr;  // the context the streams and events belong to
  std::size_t bytes_ = 0;        // of each buffer
  cuda::UniqueStream in_stream_, out_stream_;
  std::array<cuda::PinnedBuffer, 3> buf_;
  std::array<cuda::UniqueEvent, 3> copied_in_, copied_out_;
};

// memcpy where either side may be device memory (the fusion buffer of allreduce_async):
// synchronous, through a stream of its own.
void copy_any(void* dst, const void* src, std::size_t bytes);

}  // namespace sluice::coll
