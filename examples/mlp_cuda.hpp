// mlp_cuda: the MLP of sluice-train-mlp (one hidden ReLU layer, softmax cross-entropy, SGD with
// momentum) on a CUDA device. Plain C++: no CUDA header is included here, so a translation unit
// built by the host compiler can use it; the kernels are in mlp_cuda.cu.
//
// Flat buffers (parameters, gradients, velocity) have train_mlp.cpp's layout, layer 2 first:
//   [W2 (C x H), b2 (C), W1 (H x D), b1 (H)]
// Same math as train_mlp.cpp's forward()/backward()/sgd_step(): ReLU, numerically stable softmax
// (the max subtracted), mean cross-entropy, gradients of the MEAN loss, v = momentum*v + g,
// p -= lr*v. Deterministic: no atomics; every gradient element and the loss are summed over the
// batch in sample order by one thread (the loss on the host), so a run repeats bit for bit on
// the same device type and the same batches.
//
// Errors: every CUDA call is checked; a failure throws std::runtime_error naming the call, what
// was being done and CUDA's error string ("cudaMalloc of 12345 bytes for the gradients: out of
// memory"). Bad arguments (label outside [0, C), batch above max_batch, ...) throw
// std::invalid_argument. After a CUDA error the object should be discarded.
//
// One object per host thread at a time (not thread-safe). The object belongs to the device that
// was current (cudaSetDevice) when it was constructed; every call makes that device current.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace mlp_cuda {

// A CUDA device is usable: cudaGetDeviceCount succeeds and counts at least one. Any error (no
// driver, no device, driver too old) is false.
bool device_present() noexcept;
// The number of CUDA devices this process sees (CUDA_VISIBLE_DEVICES applied); 0 on any error.
int device_count() noexcept;
// Makes DEVICE (0 <= device < device_count()) current for this host thread, so the CudaMlp
// constructed next lives there. Under a sluice placement CUDA_VISIBLE_DEVICES lists the task's
// GPUs, so device 0 (CUDA's default) is already the task's first GPU. Throws std::runtime_error.
void set_device(int device);

class CudaMlp {
 public:
  // A model with D inputs, H hidden units and C classes, for batches of at most MAX_BATCH
  // samples (all device and pinned memory is sized here, once). PARAMS and VELOCITY hold
  // n_params() floats in the layout above and are uploaded; VELOCITY may be null (zeros).
  CudaMlp(std::size_t d, std::size_t h, std::size_t c, std::size_t max_batch, const float* params,
          const float* velocity);
  ~CudaMlp();
  CudaMlp(CudaMlp&&) noexcept;
  CudaMlp& operator=(CudaMlp&&) noexcept;
  CudaMlp(const CudaMlp&) = delete;
  CudaMlp& operator=(const CudaMlp&) = delete;

  // One training batch: X_HOST (B x D floats, sample after sample) and Y_HOST (B labels in
  // [0, C), checked before anything is copied) go to the device through pinned staging buffers,
  // on the object's stream; forward and backward run; the gradients of the mean loss are written
  // to grads_device(). Returns the mean cross-entropy, summed on the host in sample order. On
  // return the stream is synchronized: the gradients are complete and may be handed to another
  // stream or library (sluice's allreduce) at once. 1 <= B <= max_batch.
  double forward_backward(const float* x_host, const std::int64_t* y_host, std::size_t b);

  // The gradients (n_params() floats on the device, layout above). Layer 2 is the first
  // layer2_size() floats, layer 1 the rest. Null only for a moved-from object.
  float* grads_device() noexcept;

  // Waits for all the work queued on the object's stream.
  void synchronize();

  // velocity = momentum * velocity + grads; params -= lr * velocity, on the device, queued on
  // the object's stream (returns before it ran). Uses the device gradients as they are then:
  // call it after an in-place allreduce of grads_device() has returned.
  void sgd(float lr, float momentum);

  // Copies the parameters and the velocity (n_params() floats each) to the host, after all the
  // queued work. Either pointer may be null (not copied).
  void download(float* params, float* velocity);
  // Copies the gradients (n_params() floats) to the host, after all the queued work.
  void download_grads(float* grads);

  // Forward pass only: how many of the B samples are predicted right (the first largest logit,
  // like train_mlp.cpp). SKIP may be null; skip[i] != 0: sample i is neither counted nor its
  // label checked (padding). Other labels must lie in [0, C). B == 0 counts 0;
  // B <= max_batch. Overwrites the activations (not the gradients or the parameters).
  std::size_t count_correct(const float* x_host, const std::int64_t* y_host, std::size_t b,
                            const std::uint8_t* skip);

  std::size_t n_params() const noexcept;     // C*H + C + H*D + H; 0 for a moved-from object
  std::size_t layer2_size() const noexcept;  // C*H + C
  std::size_t max_batch() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Impl& self() const;  // throws std::logic_error for a moved-from object
};

}  // namespace mlp_cuda
