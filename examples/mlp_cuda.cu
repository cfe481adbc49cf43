// mlp_cuda: the kernels and the host side of mlp_cuda.hpp (see there for the contract).
//
// One thread per output element everywhere, each summing over its inputs (or over the batch)
// in a fixed order: no atomics, no reduction whose shape depends on the launch, so the results
// are deterministic. Products and sums are rounded separately (mul_add below, no FMA
// contraction), the way train_mlp.cpp's "acc += a * b" is on a CPU without FMA; expf/logf
// are CUDA's, so the bits are close to, not equal to, the CPU reference's.
#include "mlp_cuda.hpp"

#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

namespace mlp_cuda {
namespace {

constexpr unsigned kThreads = 256;  // threads per block, every kernel

// acc + a * b with the product rounded before the sum (no fused multiply-add).
__device__ __forceinline__ float mul_add(float a, float b, float acc) { return __fadd_rn(acc, __fmul_rn(a, b)); }

__device__ __forceinline__ std::size_t thread_index() {
  return static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

// A dense layer of the forward pass: out[s][o] = bias[o] + sum_k W[o][k] in[s][k], with ReLU for
// the hidden layer; one thread per (s, o). Hidden: (W1, b1, x, D -> H, relu); logits: (W2, b2,
// hidden, H -> C, no relu).
__global__ void dense_kernel(const float* __restrict__ w, const float* __restrict__ bias, const float* __restrict__ in,
                             float* __restrict__ out, std::size_t b, std::size_t in_dim, std::size_t out_dim,
                             bool relu) {
  const std::size_t i = thread_index();
  if (i >= b * out_dim) return;
  const std::size_t s = i / out_dim, o = i % out_dim;
  const float* row = w + o * in_dim;
  const float* xs = in + s * in_dim;
  float acc = bias[o];
  for (std::size_t k = 0; k < in_dim; ++k) acc = mul_add(row[k], xs[k], acc);
  out[i] = relu ? (acc > 0 ? acc : 0.0f) : acc;
}

// Softmax and loss, one thread per sample s; in place in PROBS (the logits on entry):
//   pred[s]  = the first k with the largest logit;
//   logp[s]  = log(max(p[s][y[s]], 1e-30))  (the sample's loss is -logp[s]);
//   probs[s] = dz[s] = (softmax - onehot(y[s])) * inv_b, the gradient of the MEAN loss wrt the logits.
// y[s] is in [0, c) (checked on the host).
__global__ void softmax_kernel(float* __restrict__ probs, const std::int64_t* __restrict__ y,
                               float* __restrict__ logp, std::int64_t* __restrict__ pred, std::size_t b,
                               std::size_t c, float inv_b) {
  const std::size_t s = thread_index();
  if (s >= b) return;
  float* ps = probs + s * c;
  float top = -INFINITY;
  std::size_t arg = 0;
  for (std::size_t k = 0; k < c; ++k)
    if (ps[k] > top) top = ps[k], arg = k;
  float sum = 0.0f;
  for (std::size_t k = 0; k < c; ++k) {
    ps[k] = expf(ps[k] - top);  // stable softmax: the largest exponent is 0
    sum += ps[k];
  }
  for (std::size_t k = 0; k < c; ++k) ps[k] /= sum;
  const std::size_t label = static_cast<std::size_t>(y[s]);
  const float p = ps[label];
  logp[s] = logf(p < 1e-30f ? 1e-30f : p);  // std::max(p, 1e-30f), NaN included
  pred[s] = static_cast<std::int64_t>(arg);
  ps[label] -= 1.0f;
  for (std::size_t k = 0; k < c; ++k) ps[k] *= inv_b;
}

// Backward, layer 2, into g[0, c*h + c): one thread per element, summing over the batch in order.
//   dW2[k][j] = sum_s dz[s][k] * hidden[s][j]      (i < c*h: k = i / h, j = i % h)
//   db2[k]    = sum_s dz[s][k]                      (i = c*h + k)
__global__ void grad_layer2_kernel(const float* __restrict__ dz, const float* __restrict__ hidden,
                                   float* __restrict__ g, std::size_t b, std::size_t h, std::size_t c) {
  const std::size_t i = thread_index();
  if (i >= c * h + c) return;
  float acc = 0.0f;
  if (i < c * h) {
    const std::size_t k = i / h, j = i % h;
    for (std::size_t s = 0; s < b; ++s) acc = mul_add(dz[s * c + k], hidden[s * h + j], acc);
  } else {
    const std::size_t k = i - c * h;
    for (std::size_t s = 0; s < b; ++s) acc += dz[s * c + k];
  }
  g[i] = acc;
}

// Backward, hidden layer (before ReLU'): dhidden[s][j] = sum_k dz[s][k] * W2[k][j]; one thread per (s, j).
__global__ void dhidden_kernel(const float* __restrict__ dz, const float* __restrict__ w2,
                               float* __restrict__ dhidden, std::size_t b, std::size_t h, std::size_t c) {
  const std::size_t i = thread_index();
  if (i >= b * h) return;
  const std::size_t s = i / h, j = i % h;
  const float* dzs = dz + s * c;
  float acc = 0.0f;
  for (std::size_t k = 0; k < c; ++k) acc = mul_add(dzs[k], w2[k * h + j], acc);
  dhidden[i] = acc;
}

// Backward, layer 1, into g[0, h*d + h) (the caller passes grads + layer2_size): one thread per
// element, summing over the batch in order the samples whose hidden unit is active (ReLU' = h > 0).
//   dW1[j][k] = sum_{s: hidden[s][j] > 0} dhidden[s][j] * x[s][k]   (i < h*d: j = i / d, k = i % d)
//   db1[j]    = sum_{s: hidden[s][j] > 0} dhidden[s][j]             (i = h*d + j)
__global__ void grad_layer1_kernel(const float* __restrict__ dhidden, const float* __restrict__ hidden,
                                   const float* __restrict__ x, float* __restrict__ g, std::size_t b,
                                   std::size_t d, std::size_t h) {
  const std::size_t i = thread_index();
  if (i >= h * d + h) return;
  float acc = 0.0f;
  if (i < h * d) {
    const std::size_t j = i / d, k = i % d;
    for (std::size_t s = 0; s < b; ++s)
      if (hidden[s * h + j] > 0) acc = mul_add(dhidden[s * h + j], x[s * d + k], acc);
  } else {
    const std::size_t j = i - h * d;
    for (std::size_t s = 0; s < b; ++s)
      if (hidden[s * h + j] > 0) acc += dhidden[s * h + j];
  }
  g[i] = acc;
}

// SGD with momentum, one thread per parameter: v = momentum * v + g; p -= lr * v.
__global__ void sgd_kernel(float* __restrict__ params, float* __restrict__ velocity, const float* __restrict__ grads,
                           std::size_t n, float lr, float momentum) {
  const std::size_t i = thread_index();
  if (i >= n) return;
  const float v = __fadd_rn(__fmul_rn(momentum, velocity[i]), grads[i]);
  velocity[i] = v;
  params[i] = __fsub_rn(params[i], __fmul_rn(lr, v));
}

// --- host helpers ------------------------------------------------------------------------------

// Throws "CALL WHAT: CUDA's error string" unless E is cudaSuccess.
void check(cudaError_t e, const char* call, const std::string& what) {
  if (e == cudaSuccess) return;
  (void)cudaGetLastError();  // clear a non-sticky error so it is not reported again by a later call
  throw std::runtime_error(std::string(call) + " " + what + ": " + cudaGetErrorString(e));
}

// A * B, or std::invalid_argument naming WHAT when it overflows.
std::size_t mul(std::size_t a, std::size_t b, const char* what) {
  if (a != 0 && b > SIZE_MAX / a) throw std::invalid_argument(std::string("mlp_cuda: ") + what + " overflows size_t");
  return a * b;
}

// A + B, or std::invalid_argument naming WHAT when it overflows.
std::size_t add(std::size_t a, std::size_t b, const char* what) {
  if (b > SIZE_MAX - a) throw std::invalid_argument(std::string("mlp_cuda: ") + what + " overflows size_t");
  return a + b;
}

// Blocks of kThreads covering N threads (N > 0).
unsigned grid(std::size_t n, const char* kernel) {
  const std::size_t blocks = (n + kThreads - 1) / kThreads;
  if (blocks > static_cast<std::size_t>(INT_MAX))
    throw std::invalid_argument(std::string("mlp_cuda: ") + kernel + " needs " + std::to_string(blocks) +
                                " blocks, more than a grid holds");
  return static_cast<unsigned>(blocks);
}

// After a kernel launch: the launch error, if any, named.
void launched(const char* kernel, const char* what) {
  check(cudaGetLastError(), "kernel launch", std::string("of ") + kernel + " (" + what + ")");
}

template <typename T>
void device_alloc(T*& p, std::size_t count, const char* what) {
  const std::size_t bytes = mul(count, sizeof(T), what);
  void* raw = nullptr;
  check(cudaMalloc(&raw, bytes), "cudaMalloc", "of " + std::to_string(bytes) + " bytes for " + what);
  p = static_cast<T*>(raw);
}

template <typename T>
void pinned_alloc(T*& p, std::size_t count, const char* what) {
  const std::size_t bytes = mul(count, sizeof(T), what);
  void* raw = nullptr;
  check(cudaMallocHost(&raw, bytes), "cudaMallocHost", "of " + std::to_string(bytes) + " bytes for " + what);
  p = static_cast<T*>(raw);
}

}  // namespace

int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

bool device_present() noexcept { return device_count() > 0; }

void set_device(int device) {
  check(cudaSetDevice(device), "cudaSetDevice", "to device " + std::to_string(device) + " for the model");
}

struct CudaMlp::Impl {
  std::size_t d = 0, h = 0, c = 0, max_batch = 0, n = 0, l2 = 0;
  int device = -1;
  cudaStream_t stream = nullptr;
  // Device memory.
  float *params = nullptr, *velocity = nullptr, *grads = nullptr;
  float *x = nullptr, *hidden = nullptr, *probs = nullptr, *dhidden = nullptr, *logp = nullptr;
  std::int64_t *y = nullptr, *pred = nullptr;
  // Pinned host staging: the batch in, the per-sample log-probabilities and predictions out.
  float* x_pin = nullptr;
  std::int64_t* y_pin = nullptr;
  float* logp_pin = nullptr;
  std::int64_t* pred_pin = nullptr;

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // Frees whatever was allocated (also after a constructor that threw half way); errors ignored.
  ~Impl() {
    if (device >= 0) (void)cudaSetDevice(device);
    if (stream) (void)cudaStreamSynchronize(stream);
    for (void* p : {static_cast<void*>(params), static_cast<void*>(velocity), static_cast<void*>(grads),
                    static_cast<void*>(x), static_cast<void*>(hidden), static_cast<void*>(probs),
                    static_cast<void*>(dhidden), static_cast<void*>(logp), static_cast<void*>(y),
                    static_cast<void*>(pred)})
      if (p) (void)cudaFree(p);
    for (void* p : {static_cast<void*>(x_pin), static_cast<void*>(y_pin), static_cast<void*>(logp_pin),
                    static_cast<void*>(pred_pin)})
      if (p) (void)cudaFreeHost(p);
    if (stream) (void)cudaStreamDestroy(stream);
    (void)cudaGetLastError();
  }

  void make_current() const { check(cudaSetDevice(device), "cudaSetDevice", "to the model's device " + std::to_string(device)); }

  void sync(const std::string& what) const { check(cudaStreamSynchronize(stream), "cudaStreamSynchronize", what); }

  // Stages B samples (and their labels; skipped ones as label 0, so no kernel indexes out of
  // range) and queues their copies to the device. Labels are checked first.
  void stage(const float* x_host, const std::int64_t* y_host, std::size_t b, const std::uint8_t* skip,
             const char* what) {
    if (b > max_batch)
      throw std::invalid_argument(std::string("mlp_cuda: ") + what + ": batch of " + std::to_string(b) +
                                  " samples, more than max_batch " + std::to_string(max_batch));
    if (!x_host || !y_host) throw std::invalid_argument(std::string("mlp_cuda: ") + what + ": null x or y");
    for (std::size_t s = 0; s < b; ++s) {
      if (skip && skip[s]) continue;
      if (y_host[s] < 0 || static_cast<std::uint64_t>(y_host[s]) >= c)
        throw std::invalid_argument(std::string("mlp_cuda: ") + what + ": label " + std::to_string(y_host[s]) +
                                    " of sample " + std::to_string(s) + " is outside [0, " + std::to_string(c) + ")");
    }
    make_current();
    // The staging buffers are reused: wait for any copy still reading them (every call that
    // fills them also ends with a synchronize, so this normally returns at once).
    sync("before reusing the pinned staging buffers");
    std::memcpy(x_pin, x_host, b * d * sizeof(float));
    for (std::size_t s = 0; s < b; ++s) y_pin[s] = (skip && skip[s]) ? 0 : y_host[s];
    check(cudaMemcpyAsync(x, x_pin, b * d * sizeof(float), cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync",
          "of the batch's samples to the device (" + std::string(what) + ")");
    check(cudaMemcpyAsync(y, y_pin, b * sizeof(std::int64_t), cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync",
          "of the batch's labels to the device (" + std::string(what) + ")");
  }

  // Queues the forward pass of the B staged samples: hidden, then probs = dz, logp, pred.
  void forward(std::size_t b) {
    dense_kernel<<<grid(b * h, "dense_kernel"), kThreads, 0, stream>>>(params + l2, params + l2 + h * d, x, hidden, b,
                                                                         d, h, true);
    launched("dense_kernel", "forward: hidden layer");
    dense_kernel<<<grid(b * c, "dense_kernel"), kThreads, 0, stream>>>(params, params + c * h, hidden, probs, b, h, c,
                                                                         false);
    launched("dense_kernel", "forward: logits");
    softmax_kernel<<<grid(b, "softmax_kernel"), kThreads, 0, stream>>>(probs, y, logp, pred, b, c,
                                                                         1.0f / static_cast<float>(b));
    launched("softmax_kernel", "forward: softmax and loss");
  }

  // Queues the backward pass of the B samples forward() ran: grads[0, l2) then grads[l2, n).
  void backward(std::size_t b) {
    grad_layer2_kernel<<<grid(l2, "grad_layer2_kernel"), kThreads, 0, stream>>>(probs, hidden, grads, b, h, c);
    launched("grad_layer2_kernel", "backward: layer 2 gradients");
    dhidden_kernel<<<grid(b * h, "dhidden_kernel"), kThreads, 0, stream>>>(probs, params, dhidden, b, h, c);
    launched("dhidden_kernel", "backward: hidden layer");
    grad_layer1_kernel<<<grid(n - l2, "grad_layer1_kernel"), kThreads, 0, stream>>>(dhidden, hidden, x, grads + l2, b,
                                                                                     d, h);
    launched("grad_layer1_kernel", "backward: layer 1 gradients");
  }

  // Copies N device floats at SRC to the host at DST after all the queued work, and waits.
  void copy_out(float* dst, const float* src, const char* what) {
    make_current();
    check(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync",
          std::string("of the ") + what + " to the host");
    sync(std::string("after copying the ") + what + " to the host");
  }
};

CudaMlp::CudaMlp(std::size_t d, std::size_t h, std::size_t c, std::size_t max_batch, const float* params,
                 const float* velocity)
    : impl_(std::make_unique<Impl>()) {
  // impl_ is constructed before the body runs: if the body throws, its destructor frees
  // whatever was allocated so far.
  if (d == 0 || h == 0 || c == 0 || max_batch == 0)
    throw std::invalid_argument("mlp_cuda: d, h, c and max_batch must be positive (d " + std::to_string(d) + ", h " +
                                std::to_string(h) + ", c " + std::to_string(c) + ", max_batch " +
                                std::to_string(max_batch) + ")");
  if (!params) throw std::invalid_argument("mlp_cuda: null params");
  Impl& m = *impl_;
  m.d = d, m.h = h, m.c = c, m.max_batch = max_batch;
  const std::size_t ch = mul(c, h, "C x H"), hd = mul(h, d, "H x D");
  m.l2 = add(ch, c, "the layer 2 size");
  m.n = add(m.l2, add(hd, h, "the layer 1 size"), "the parameter count");
  const std::size_t bd = mul(max_batch, d, "max_batch x D"), bh = mul(max_batch, h, "max_batch x H"),
                    bc = mul(max_batch, c, "max_batch x C");

  check(cudaGetDevice(&m.device), "cudaGetDevice", "to choose the model's device");
  check(cudaStreamCreateWithFlags(&m.stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags",
        "for the model's stream");
  device_alloc(m.params, m.n, "the parameters");
  device_alloc(m.velocity, m.n, "the velocity");
  device_alloc(m.grads, m.n, "the gradients");
  device_alloc(m.x, bd, "the batch's samples");
  device_alloc(m.y, max_batch, "the batch's labels");
  device_alloc(m.hidden, bh, "the hidden layer");
  device_alloc(m.probs, bc, "the softmax");
  device_alloc(m.dhidden, bh, "the hidden layer's gradient");
  device_alloc(m.logp, max_batch, "the per-sample losses");
  device_alloc(m.pred, max_batch, "the predictions");
  pinned_alloc(m.x_pin, bd, "the staged samples");
  pinned_alloc(m.y_pin, max_batch, "the staged labels");
  pinned_alloc(m.logp_pin, max_batch, "the per-sample losses");
  pinned_alloc(m.pred_pin, max_batch, "the predictions");

  const std::size_t bytes = m.n * sizeof(float);  // no overflow: the allocations above succeeded
  check(cudaMemcpyAsync(m.params, params, bytes, cudaMemcpyHostToDevice, m.stream), "cudaMemcpyAsync",
        "of the parameters to the device");
  if (velocity)
    check(cudaMemcpyAsync(m.velocity, velocity, bytes, cudaMemcpyHostToDevice, m.stream), "cudaMemcpyAsync",
          "of the velocity to the device");
  else
    check(cudaMemsetAsync(m.velocity, 0, bytes, m.stream), "cudaMemsetAsync", "of the velocity to 0");
  check(cudaMemsetAsync(m.grads, 0, bytes, m.stream), "cudaMemsetAsync", "of the gradients to 0");
  m.sync("after uploading the model");
}

CudaMlp::~CudaMlp() = default;
CudaMlp::CudaMlp(CudaMlp&&) noexcept = default;
CudaMlp& CudaMlp::operator=(CudaMlp&&) noexcept = default;

CudaMlp::Impl& CudaMlp::self() const {
  if (!impl_) throw std::logic_error("mlp_cuda: use of a moved-from CudaMlp");
  return *impl_;
}

double CudaMlp::forward_backward(const float* x_host, const std::int64_t* y_host, std::size_t b) {
  Impl& m = self();
  if (b == 0) throw std::invalid_argument("mlp_cuda: forward_backward of an empty batch");
  m.stage(x_host, y_host, b, nullptr, "forward_backward");
  m.forward(b);
  m.backward(b);
  check(cudaMemcpyAsync(m.logp_pin, m.logp, b * sizeof(float), cudaMemcpyDeviceToHost, m.stream), "cudaMemcpyAsync",
        "of the per-sample losses to the host");
  m.sync("after the forward and backward passes");
  // The mean loss, summed in sample order (like train_mlp.cpp's forward()).
  double loss = 0;
  for (std::size_t s = 0; s < b; ++s) loss -= static_cast<double>(m.logp_pin[s]);
  return loss / static_cast<double>(b);
}

float* CudaMlp::grads_device() noexcept { return impl_ ? impl_->grads : nullptr; }

void CudaMlp::synchronize() {
  Impl& m = self();
  m.make_current();
  m.sync("in synchronize()");
}

void CudaMlp::sgd(float lr, float momentum) {
  Impl& m = self();
  m.make_current();
  sgd_kernel<<<grid(m.n, "sgd_kernel"), kThreads, 0, m.stream>>>(m.params, m.velocity, m.grads, m.n, lr, momentum);
  launched("sgd_kernel", "SGD step");
}

void CudaMlp::download(float* params, float* velocity) {
  Impl& m = self();
  if (params) m.copy_out(params, m.params, "parameters");
  if (velocity) m.copy_out(velocity, m.velocity, "velocity");
}

void CudaMlp::download_grads(float* grads) {
  Impl& m = self();
  if (!grads) throw std::invalid_argument("mlp_cuda: download_grads to null");
  m.copy_out(grads, m.grads, "gradients");
}

std::size_t CudaMlp::count_correct(const float* x_host, const std::int64_t* y_host, std::size_t b,
                                   const std::uint8_t* skip) {
  Impl& m = self();
  if (b == 0) return 0;
  m.stage(x_host, y_host, b, skip, "count_correct");
  m.forward(b);
  check(cudaMemcpyAsync(m.pred_pin, m.pred, b * sizeof(std::int64_t), cudaMemcpyDeviceToHost, m.stream),
        "cudaMemcpyAsync", "of the predictions to the host");
  m.sync("after the forward pass of count_correct");
  std::size_t correct = 0;
  for (std::size_t s = 0; s < b; ++s)
    if (!(skip && skip[s]) && m.pred_pin[s] == y_host[s]) ++correct;
  return correct;
}

std::size_t CudaMlp::n_params() const noexcept { return impl_ ? impl_->n : 0; }
std::size_t CudaMlp::layer2_size() const noexcept { return impl_ ? impl_->l2 : 0; }
std::size_t CudaMlp::max_batch() const noexcept { return impl_ ? impl_->max_batch : 0; }

}  // namespace mlp_cuda
