// sluice-mlp-cuda-check: the CUDA MLP of mlp_cuda.hpp against a CPU reference (train_mlp.cpp's
// forward/backward/SGD math, mlp_cpu.hpp). Random model (fixed seed), D=32, H=16, C=10, B=8:
// loss and gradients must agree within 1e-5, repeat bit for bit, SGD must agree, a second,
// smaller batch too, count_correct must count what the reference counts (skipped samples
// left out), and bad labels or oversized batches must throw.
//
// Exit status: 0 PASS, 1 FAIL, 77 no CUDA device (skipped).
#include "mlp_cpu.hpp"
#include "mlp_cuda.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

constexpr std::size_t kD = 32, kH = 16, kC = 10, kB = 8, kMaxBatch = 16;
constexpr double kTolerance = 1e-5;

// --- CPU reference: train_mlp.cpp's math (mlp_cpu.hpp) -------------------------------------
using Ref = mlp::Mlp;
using Acts = mlp::Activations;
using mlp::backward;
inline double ref_forward(const Ref& m, const float* x, const std::int64_t* y, std::size_t b, Acts& a,
                          std::size_t* correct = nullptr, const std::uint8_t* skip = nullptr) {
  return mlp::forward(m, x, y, b, a, correct, skip);
}

// --- helpers -----------------------------------------------------------------------------
struct Rng {
  std::uint64_t state;
  std::uint64_t next() {  // splitmix64
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform(float a) {  // in [-a, a)
    return (static_cast<float>(next() >> 40) / static_cast<float>(1u << 24) * 2.0f - 1.0f) * a;
  }
};

int failures = 0;

void expect(bool ok, const std::string& what) {
  std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}

template <typename F>
bool throws_invalid_argument(F f, std::string& message) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    message = e.what();
    return true;
  }
  return false;
}

int check() {
  Rng rng{42};
  Ref ref(kD, kH, kC);
  for (float& p : ref.params) p = rng.uniform(0.5f);  // biases too: nonzero, some hidden units dead
  for (float& v : ref.velocity) v = rng.uniform(0.01f);
  std::vector<float> x(kMaxBatch * kD);
  for (float& v : x) v = rng.uniform(1.0f);
  std::vector<std::int64_t> y(kMaxBatch);
  for (std::size_t s = 0; s < kMaxBatch; ++s) y[s] = static_cast<std::int64_t>(rng.next() % kC);

  mlp_cuda::CudaMlp gpu(kD, kH, kC, kMaxBatch, ref.params.data(), ref.velocity.data());
  expect(gpu.n_params() == ref.size() && gpu.layer2_size() == ref.layer2_size() && gpu.max_batch() == kMaxBatch,
         "n_params " + std::to_string(gpu.n_params()) + ", layer2_size " + std::to_string(gpu.layer2_size()));

  // 1. One batch of B: loss and gradients.
  Acts acts;
  const double ref_loss = ref_forward(ref, x.data(), y.data(), kB, acts);
  backward(ref, x.data(), y.data(), kB, acts);
  std::size_t dead = 0;
  for (float v : acts.hidden) dead += v <= 0;
  const double loss = gpu.forward_backward(x.data(), y.data(), kB);
  std::vector<float> grads(gpu.n_params());
  gpu.download_grads(grads.data());
  expect(std::fabs(loss - ref_loss) < kTolerance, "loss " + num(loss) + ", reference " + num(ref_loss));
  const double dg = max_abs_diff(grads, ref.grads);
  expect(dg < kTolerance, "gradients: max |diff| " + num(dg) + " (" + std::to_string(dead) + " of " +
                              std::to_string(kB * kH) + " hidden units inactive)");
  expect(gpu.grads_device() != nullptr, "grads_device() is a pointer");

  // 2. Deterministic: the same batch again gives the same bits.
  const double loss2 = gpu.forward_backward(x.data(), y.data(), kB);
  std::vector<float> grads2(gpu.n_params());
  gpu.download_grads(grads2.data());
  expect(loss2 == loss && grads2 == grads, "a second run gives the same bits");

  // 3. SGD with momentum.
  const float lr = 0.05f, momentum = 0.9f;
  mlp::sgd_step(ref, lr, momentum);
  gpu.sgd(lr, momentum);
  gpu.synchronize();
  std::vector<float> params(gpu.n_params()), velocity(gpu.n_params());
  gpu.download(params.data(), velocity.data());
  const double dp = max_abs_diff(params, ref.params), dv = max_abs_diff(velocity, ref.velocity);
  expect(dp < kTolerance && dv < kTolerance, "SGD: parameters max |diff| " + num(dp) + ", velocity " + num(dv));

  // 4. A smaller batch (other samples) with the updated model.
  constexpr std::size_t kB2 = 5;
  const float* x2 = x.data() + kB * kD;
  const std::int64_t* y2 = y.data() + kB;
  const double ref_loss2 = ref_forward(ref, x2, y2, kB2, acts);
  backward(ref, x2, y2, kB2, acts);
  const double loss3 = gpu.forward_backward(x2, y2, kB2);
  gpu.download_grads(grads.data());
  const double dg2 = max_abs_diff(grads, ref.grads);
  expect(std::fabs(loss3 - ref_loss2) < kTolerance && dg2 < kTolerance,
         "batch of " + std::to_string(kB2) + ": loss " + num(loss3) + " (reference " + num(ref_loss2) +
             "), gradients max |diff| " + num(dg2));

  // 5. count_correct, padding skipped (its label is out of range and must not be checked).
  std::vector<std::int64_t> y3(y.begin(), y.end());
  std::vector<std::uint8_t> skip(kMaxBatch, 0);
  skip[3] = skip[11] = 1;
  y3[11] = 1000;
  std::size_t ref_correct = 0;
  ref_forward(ref, x.data(), y.data(), kMaxBatch, acts, &ref_correct, skip.data());  // the reference needs valid labels
  const std::size_t correct = gpu.count_correct(x.data(), y3.data(), kMaxBatch, skip.data());
  expect(correct == ref_correct, "count_correct " + std::to_string(correct) + " of " + std::to_string(kMaxBatch - 2) +
                                     ", reference " + std::to_string(ref_correct));
  // Something right to count: every label set to the reference's prediction.
  std::size_t all_right = 0;
  for (std::size_t s = 0; s < kMaxBatch; ++s) {
    const float* ps = acts.probs.data() + s * kC;
    y3[s] = std::max_element(ps, ps + kC) - ps;  // first largest probability = first largest logit
    all_right += !skip[s];
  }
  const std::size_t correct2 = gpu.count_correct(x.data(), y3.data(), kMaxBatch, skip.data());
  expect(correct2 == all_right, "count_correct with the predicted labels: " + std::to_string(correct2) + " of " +
                                    std::to_string(all_right));
  expect(gpu.count_correct(x.data(), y3.data(), 0, nullptr) == 0, "count_correct of 0 samples is 0");

  // 6. Bad arguments (each check evaluated before its message is built).
  std::string msg;
  bool ok = false;
  y3 = y;
  y3[2] = static_cast<std::int64_t>(kC);
  ok = throws_invalid_argument([&] { gpu.forward_backward(x.data(), y3.data(), kB); }, msg) &&
       msg.find("label 10") != std::string::npos;
  expect(ok, "label 10 throws: " + msg);
  y3[2] = -1;
  msg.clear();
  ok = throws_invalid_argument([&] { gpu.count_correct(x.data(), y3.data(), kB, nullptr); }, msg) &&
       msg.find("label -1") != std::string::npos;
  expect(ok, "label -1 throws: " + msg);
  msg.clear();
  std::vector<float> big_x((kMaxBatch + 1) * kD, 0.0f);
  std::vector<std::int64_t> big_y(kMaxBatch + 1, 0);
  ok = throws_invalid_argument([&] { gpu.forward_backward(big_x.data(), big_y.data(), kMaxBatch + 1); }, msg);
  expect(ok, "a batch above max_batch throws: " + msg);
  msg.clear();
  ok = throws_invalid_argument([&] { gpu.forward_backward(x.data(), y.data(), 0); }, msg);
  expect(ok, "an empty batch throws: " + msg);

  // 7. Still usable after those, and movable.
  mlp_cuda::CudaMlp moved(std::move(gpu));
  const double loss4 = moved.forward_backward(x2, y2, kB2);
  moved.download_grads(grads2.data());
  expect(gpu.n_params() == 0 && gpu.grads_device() == nullptr && loss4 == loss3 && grads2 == grads,
         "moved: the same results, the moved-from object is empty");
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main() {
  if (!mlp_cuda::device_present()) {
    std::printf("no CUDA device: skipped\n");
    return 77;
  }
  int rc = 1;
  try {
    rc = check();
  } catch (const std::exception& e) {
    std::printf("FAIL: exception: %s\n", e.what());
    rc = 1;
  }
  std::printf("%s\n", rc == 0 ? "PASS" : "FAIL");
  return rc;
}
