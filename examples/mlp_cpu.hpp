// The MLP's math on the CPU, shared by sluice-train-mlp (train_mlp.cpp) and the CUDA kernels'
// check (mlp_cuda_check.cpp): one hidden ReLU layer, softmax cross-entropy (mean over the
// batch), SGD with momentum. Header-only, no sluice: plain loops a reader can check by eye.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mlp {

// Parameters and their gradients in one flat buffer, layer 2 first: [W2 (C x H), b2, W1 (H x D),
// b1]. Layer 2's gradients are ready first in the backward pass, so they can be averaged while
// layer 1's are computed, and each layer is one contiguous tensor.
struct Mlp {
  std::size_t d, h, c;
  std::vector<float> params, grads, velocity;

  Mlp(std::size_t d_, std::size_t h_, std::size_t c_)
      : d(d_), h(h_), c(c_), params(size(), 0.0f), grads(size(), 0.0f), velocity(size(), 0.0f) {}
  std::size_t size() const { return layer2_size() + h * d + h; }
  std::size_t layer2_size() const { return c * h + c; }
  // Offsets of the four tensors in a flat buffer (parameters, gradients, velocity alike).
  std::size_t w2() const { return 0; }
  std::size_t b2() const { return c * h; }
  std::size_t w1() const { return layer2_size(); }
  std::size_t b1() const { return layer2_size() + h * d; }
};

// Workspace of one batch.
struct Activations {
  std::vector<float> hidden, probs, dhidden;
};

// Forward pass of B samples X (B x D): the mean cross-entropy; counts correct predictions
// (samples with SKIP[s] != 0 left out) into CORRECT; keeps the hidden layer and the softmax
// for backward.
inline double forward(const Mlp& m, const float* x, const std::int64_t* y, std::size_t b, Activations& a,
                      std::size_t* correct = nullptr, const std::uint8_t* skip = nullptr) {
  a.hidden.assign(b * m.h, 0.0f);
  a.probs.assign(b * m.c, 0.0f);
  const float* p = m.params.data();
  const float *w1 = p + m.w1(), *b1 = p + m.b1(), *w2 = p + m.w2(), *b2 = p + m.b2();
  double loss = 0;
  for (std::size_t s = 0; s < b; ++s) {
    const float* xs = x + s * m.d;
    float* hs = a.hidden.data() + s * m.h;
    for (std::size_t j = 0; j < m.h; ++j) {
      float acc = b1[j];
      const float* row = w1 + j * m.d;
      for (std::size_t k = 0; k < m.d; ++k) acc += row[k] * xs[k];
      hs[j] = acc > 0 ? acc : 0;  // ReLU
    }
    float* ps = a.probs.data() + s * m.c;
    float top = -INFINITY;
    std::size_t arg = 0;
    for (std::size_t k = 0; k < m.c; ++k) {
      float acc = b2[k];
      const float* row = w2 + k * m.h;
      for (std::size_t j = 0; j < m.h; ++j) acc += row[j] * hs[j];
      ps[k] = acc;
      if (acc > top) top = acc, arg = k;
    }
    float sum = 0;
    for (std::size_t k = 0; k < m.c; ++k) sum += ps[k] = std::exp(ps[k] - top);  // stable softmax
    for (std::size_t k = 0; k < m.c; ++k) ps[k] /= sum;
    loss -= std::log(std::max(ps[y[s]], 1e-30f));
    if (correct && !(skip && skip[s]) && arg == static_cast<std::size_t>(y[s])) ++*correct;
  }
  return loss / double(b);
}

// Backward pass of the mean loss into m.grads: layer 2's gradients, then LAYER2_READY(), then
// layer 1's.
template <typename Ready>
void backward(Mlp& m, const float* x, const std::int64_t* y, std::size_t b, Activations& a, Ready layer2_ready) {
  std::fill(m.grads.begin(), m.grads.end(), 0.0f);
  float* g = m.grads.data();
  float *gw2 = g + m.w2(), *gb2 = g + m.b2(), *gw1 = g + m.w1(), *gb1 = g + m.b1();
  const float* w2 = m.params.data() + m.w2();
  const float inv_b = 1.0f / float(b);
  // dz = (softmax - onehot) / B, in place in probs.
  for (std::size_t s = 0; s < b; ++s) {
    float* dz = a.probs.data() + s * m.c;
    dz[y[s]] -= 1.0f;
    for (std::size_t k = 0; k < m.c; ++k) dz[k] *= inv_b;
    const float* hs = a.hidden.data() + s * m.h;
    for (std::size_t k = 0; k < m.c; ++k) {
      float* row = gw2 + k * m.h;
      for (std::size_t j = 0; j < m.h; ++j) row[j] += dz[k] * hs[j];
      gb2[k] += dz[k];
    }
  }
  layer2_ready();
  a.dhidden.assign(b * m.h, 0.0f);
  for (std::size_t s = 0; s < b; ++s) {
    const float* dz = a.probs.data() + s * m.c;
    const float* hs = a.hidden.data() + s * m.h;
    float* dh = a.dhidden.data() + s * m.h;
    for (std::size_t k = 0; k < m.c; ++k)
      for (std::size_t j = 0; j < m.h; ++j) dh[j] += dz[k] * w2[k * m.h + j];
    for (std::size_t j = 0; j < m.h; ++j) {
      if (hs[j] <= 0) continue;  // ReLU'
      const float* xs = x + s * m.d;
      float* row = gw1 + j * m.d;
      for (std::size_t k = 0; k < m.d; ++k) row[k] += dh[j] * xs[k];
      gb1[j] += dh[j];
    }
  }
}

inline void backward(Mlp& m, const float* x, const std::int64_t* y, std::size_t b, Activations& a) {
  backward(m, x, y, b, a, [] {});
}

inline void sgd_step(Mlp& m, float lr, float momentum) {
  for (std::size_t i = 0; i < m.params.size(); ++i) {
    m.velocity[i] = momentum * m.velocity[i] + m.grads[i];
    m.params[i] -= lr * m.velocity[i];
  }
}

}  // namespace mlp
