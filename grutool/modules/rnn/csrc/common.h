// What grutool's compiled kernels share (gru.cpp, lstm.h): packed rows, the vectorised exp/sigmoid/tanh, the step
// GEMMs on oneDNN's brgemm micro-kernel, and both directions of a layer side by side. One translation unit
// (gru.cpp includes this and lstm.h), so everything here has internal linkage.
//
// Packed rows: rows in packed (time-major) order, step t owning rows offs[t] .. offs[t] + batch_sizes[t],
// batch sizes never growing with t. A state lives in one (B, H) buffer whose live rows are always its first
// batch_sizes[t] rows, so the forward direction reads what the step before wrote there, and the reverse
// direction finds the initial state in the rows that have not started yet. What is left in the buffer after
// the loop is the final state; in the backward pass the same holds for its gradient.

#pragma once

// ATen and torch's Python bindings only: <torch/extension.h> would also pull in the whole C++ frontend
// (nn, optim) and take half as long again to compile.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <ATen/native/CPUBlas.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

#include <cmath>
#include <cstdint>
#include <array>
#include <cstring>
#include <vector>

#include <torch/python.h>

namespace {

using Rows = std::vector<int64_t>;

Rows offsets(const Rows& batch_sizes) {
  Rows offs(batch_sizes.size());
  int64_t s = 0;
  for (size_t t = 0; t < batch_sizes.size(); ++t) {
    offs[t] = s;
    s += batch_sizes[t];
  }
  return offs;
}

// --- the gate arithmetic, vectorised ----------------------------------------------------------------
//
// libm's exp and tanh are calls the compiler cannot vectorise, and they were most of a step's time. Here
// exp is written out so that a loop over a row vectorises: exp(x) = 2^k exp(r), k = round(x / ln 2),
// |r| <= ln 2 / 2, with Cephes' polynomial (float, ~1 ulp) or Pade form (double, ~2e-16 relative);
// 2^k is built in the exponent bits. k is rounded with the "magic number" addition (no floor, which SSE2
// cannot vectorise), so the result does not depend on the rounding mode's support in the vector unit.
// Then sigmoid(a) = 1 / (1 + exp(-a)) and tanh(a) = 2 sigmoid(2a) - 1. NaN stays NaN (the clamps are
// comparisons a NaN fails, and NaN times anything is NaN), as a diverging run must still see it.

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
// One copy of each row function per instruction set, picked once when the library loads: no
// machine-specific flags at build time, so a cache built on one x86-64 CPU loads on any other.
#define GRUTOOL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define GRUTOOL_CLONES
#endif
#define GRUTOOL_INLINE inline __attribute__((always_inline))

GRUTOOL_INLINE float exp_v(float x) {
  x = x > 88.3762626647949f ? 88.3762626647949f : x;
  x = x < -87.3365447504019f ? -87.3365447504019f : x;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer, kept in the low bits
  const float t = x * 1.44269504088896341f + magic;
  const float k = t - magic;
  int32_t tb, mb;
  std::memcpy(&tb, &t, 4);
  std::memcpy(&mb, &magic, 4);
  const int32_t e = (tb - mb + 127) << 23;  // 2^k
  float scale;
  std::memcpy(&scale, &e, 4);
  const float r = x - k * 0.693359375f - k * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return (p * r * r + r + 1.0f) * scale;
}

GRUTOOL_INLINE double exp_v(double x) {
  x = x > 709.0 ? 709.0 : x;
  x = x < -708.0 ? -708.0 : x;
  const double magic = 6755399441055744.0;  // 1.5 * 2^52
  const double t = x * 1.4426950408889634073599 + magic;
  const double k = t - magic;
  int64_t tb, mb;
  std::memcpy(&tb, &t, 8);
  std::memcpy(&mb, &magic, 8);
  const int64_t e = (tb - mb + 1023) << 52;  // 2^k
  double scale;
  std::memcpy(&scale, &e, 8);
  const double r = x - k * 6.93145751953125e-1 - k * 1.42860682030941723212e-6;
  const double rr = r * r;
  const double px = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr +
                         9.99999999999999999910e-1);
  const double qx = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr +
                     2.27265548208155028766e-1) * rr + 2.00000000000000000009e0;
  return (1.0 + 2.0 * px / (qx - px)) * scale;
}

template <typename T>
GRUTOOL_INLINE T sigmoid(T a) {
  return T(1) / (T(1) + exp_v(-a));
}

template <typename T>
GRUTOOL_INLINE T tanh_v(T a) {
  return T(2) / (T(1) + exp_v(T(-2) * a)) - T(1);
}

// --- GEMMs ------------------------------------------------------------------------------------------
//
// Chosen in Python (compiled.step_backend, grutool/modules/rnn/gemm.py) and passed in: for the step GEMMs
// brgemm_f32 (below), oneDNN's linear on weights it pre-packed (the GRU's, gru.cpp), or ATen's BLAS GEMM; the
// GEMMs over all of a call's rows on BLAS, as in the fused kernel.

// Rows of a step per parallel task: the gate pass is split over rows only when a step is large enough
// to pay for waking threads (and is the same computation either way, so results do not depend on it).
inline int64_t grain(int64_t H) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(H, 1)); }

// Whether brgemm_f32 shares a GEMM's panels out over torch's threads (not inside a parallel region, e.g. one
// direction of a pair); pack_panels picks the panel width by the same test.
inline bool share_panels() { return at::get_num_threads() > 1 && !at::in_parallel_region(); }

// B for brgemm_f32: B (K, N), any strides -> (ceil(N / P), K, P) contiguous: each panel of P columns one
// contiguous K x P block, zeros past column N. P is the whole N (one panel: the plain (K, N) layout) while B
// is small enough to stay in L2 and one thread does the GEMM, else 32. With B larger than L2, panels of 32
// let the hardware prefetcher stream each panel whole: at H 512 a step's h W_hh^T took 283 us against 323 in
// the plain layout in blocks of 128 columns; small B gains nothing and pays more kernel calls (packed
// batches at H 64 were 7 % slower in panels of 32). Figures: docs/benchmarks.md, "Column panels".
torch::Tensor pack_panels(const torch::Tensor& b) {
  constexpr int64_t PANEL = 32;
  const int64_t K = b.size(0), N = b.size(1);
  const int64_t P = (!share_panels() && K * N <= (int64_t(1) << 16)) ? N : PANEL;
  if (P == N) return b.contiguous().view({1, K, N});
  const int64_t blocks = (N + P - 1) / P, full = N / P;
  auto out = at::empty({blocks, K, P}, b.options());
  if (full > 0)  // (K, full * P) -> (full, K, P)
    out.narrow(0, 0, full).copy_(b.narrow(1, 0, full * P).view({K, full, P}).permute({1, 0, 2}));
  if (full < blocks) {  // the last, partial panel
    auto last = out.select(0, full);
    last.zero_();
    last.narrow(1, 0, N - full * P).copy_(b.narrow(1, full * P, N - full * P));
  }
  return out;
}

// C (M, N) = A (M, K) @ B (K, N), or += with `add`: A and C row-major float32 with leading dimensions, B in
// column panels of width P (pack_panels), through oneDNN's batch-reduce GEMM micro-kernel
// (at::native::cpublas::brgemm: a JIT kernel per shape, kept by torch per thread, called on raw pointers with
// no tensor, dispatch or allocation per step). Rows go in chunks of at most MB, so a ragged batch or a char
// encoder's many word counts make at most MB kernel shapes per weight; the inner dimension whole up to 1024
// (measured best at K 512), above in chunks of 512, accumulated. With more than one torch thread the panels
// are shared out.
void brgemm_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t P,
                float* C, int64_t ldc, bool add) {
  constexpr int64_t MB = 64;
  const int64_t kb = K > 1024 ? 512 : K;
  const bool threads = share_panels();
  const int64_t blocks = (N + P - 1) / P;
  // At least ~1 MFLOP per task before a second thread joins.
  const int64_t grain =
      threads ? std::max<int64_t>(1, (int64_t(1) << 19) / std::max<int64_t>(1, M * K * P)) : blocks;
  at::parallel_for(0, blocks, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t k0 = 0; k0 < K; k0 += kb)
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t n0 = b * P, n = std::min(P, N - n0);
        for (int64_t m0 = 0; m0 < M; m0 += MB)
          at::native::cpublas::brgemm(std::min(MB, M - m0), n, std::min(kb, K - k0), lda, P, ldc,
                                      add || k0 > 0, A + m0 * lda + k0, B + (b * K + k0) * P,
                                      C + m0 * ldc + n0, false);
      }
  });
}

void check_rows(const torch::Tensor& x, const torch::Tensor& h0, const Rows& batch_sizes) {
  TORCH_CHECK(!batch_sizes.empty(), "compiled kernel: no steps");
  TORCH_CHECK(x.dim() == 2 && h0.dim() == 2, "compiled kernel: x must be (N, I) and h0 (B, H)");
  int64_t n = 0;
  for (size_t t = 0; t < batch_sizes.size(); ++t) {
    TORCH_CHECK(batch_sizes[t] > 0 && batch_sizes[t] <= h0.size(0), "compiled kernel: bad batch size");
    TORCH_CHECK(t == 0 || batch_sizes[t] <= batch_sizes[t - 1], "compiled kernel: batch sizes must not grow");
    n += batch_sizes[t];
  }
  TORCH_CHECK(n == x.size(0), "compiled kernel: batch sizes do not add up to the rows of x");
}

// --- what the cells' loops share -------------------------------------------------------------------

// b_ih + b_hh (n,), zeros where neither is given: the one bias of a cell whose two projections are summed before
// any gate (LSTM, RNN).
torch::Tensor bias_sum(const c10::optional<torch::Tensor>& b_ih, const c10::optional<torch::Tensor>& b_hh, int64_t n,
                       const torch::TensorOptions& options) {
  auto b = at::zeros({n}, options);
  if (b_ih.has_value() && b_ih->defined()) b.add_(*b_ih);
  if (b_hh.has_value() && b_hh->defined()) b.add_(*b_hh);
  return b;
}

// (B, H), live rows first: the gradient a backward carries from step to step, starting as the one that reached
// the final state (zeros where none did) and ending as the initial state's.
torch::Tensor carried_grad(const c10::optional<torch::Tensor>& g_final, int64_t B, int64_t H,
                           const torch::TensorOptions& options) {
  return g_final.has_value() && g_final->defined() ? g_final->contiguous().clone() : at::zeros({B, H}, options);
}

// After the loop of a cell with one pre-activation gradient da (N, G H) for both projections (LSTM, RNN):
// dx = da W_ih, dW_ih = da^T x, dW_hh = da^T hp (hp: each row's h_{t-1}), and both biases' gradient, one sum (a
// copy for the second where both are needed). need: (x, w_ih, w_hh, b_ih, b_hh). Returns the five in that
// order, undefined where not needed.
std::vector<torch::Tensor> summed_projection_grads(const torch::Tensor& da, const torch::Tensor& x,
                                                   const torch::Tensor& w_ih, const torch::Tensor& hp,
                                                   const std::array<bool, 5>& need) {
  torch::Tensor dx, dw_ih, dw_hh, db;
  if (need[0]) dx = at::mm(da, w_ih);                  // (N, I)
  if (need[1]) dw_ih = at::mm(da.t(), x.contiguous());  // (G H, I)
  if (need[2]) dw_hh = at::mm(da.t(), hp);              // (G H, H)
  if (need[3] || need[4]) db = da.sum(0);
  return {dx, dw_ih, dw_hh, need[3] ? db : torch::Tensor(), need[4] ? (need[3] ? db.clone() : db) : torch::Tensor()};
}

// --- both directions of a bidirectional layer, side by side ----------------------------------------
//
// The two directions share nothing but x, so with two torch threads each runs its whole loop on a thread of
// its own: no synchronisation per step, where splitting each step's GEMM and gate pass over the threads pays a
// parallel region per step. With one thread they run one after the other (`pair_together` for more).

using OptT = c10::optional<torch::Tensor>;

// Whether a layer's directions go side by side: always on two threads, where each direction then has one;
// with more, only while a step is small (under ~8 MFLOP: a GRU at B 32 up to H ~200), since side by side each direction
// keeps one thread, and one after the other each step's GEMMs share all of them. Measured on 2 cores only.
bool pair_together(int64_t B, int64_t H, int64_t gates) {
  return at::get_num_threads() <= 2 || 2 * B * H * gates * H * 2 < (int64_t(1) << 23);
}

// first() and second() on a torch thread each where there are two and `together` (else one after the other,
// each with every thread for its own steps), each with the caller's thread-local state (grad mode and the
// rest), which OpenMP's threads do not inherit.
template <typename F, typename G>
void side_by_side(bool together, F&& first, G&& second) {
  if (!together || at::get_num_threads() < 2 || at::in_parallel_region()) {
    first();
    second();
    return;
  }
  const at::ThreadLocalState caller;
  at::parallel_for(0, 2, 1, [&](int64_t begin, int64_t end) {
    at::ThreadLocalStateGuard same(caller);
    for (int64_t d = begin; d < end; ++d) d == 0 ? first() : second();
  });
}

// Both directions' results in one list, the forward direction's first: first() and second() through side_by_side.
template <typename F, typename G>
std::vector<torch::Tensor> both_directions(bool together, F&& first, G&& second) {
  std::vector<torch::Tensor> ra, rb;
  side_by_side(together, [&] { ra = first(); }, [&] { rb = second(); });
  ra.insert(ra.end(), rb.begin(), rb.end());
  return ra;
}

// --- what every backward reads ----------------------------------------------------------------------

// The forward's output and the gradient that reached it, each possibly a column slice of a layer's (N, 2H)
// tensor (rows ld apart, columns contiguous); rows with no output gradient read `zero`.
struct OutputRows {
  torch::Tensor out, go, zero;
  int64_t ld_out = 0, ld_go = 0;
  bool has_go = false;
  OutputRows(const torch::Tensor& out_, const c10::optional<torch::Tensor>& g_out, int64_t H)
      : out(out_.stride(1) == 1 ? out_ : out_.contiguous()), zero(at::zeros({H}, out_.options())) {
    has_go = g_out.has_value() && g_out->defined();
    go = has_go ? (g_out->stride(1) == 1 ? *g_out : g_out->contiguous()) : at::empty({0}, out_.options());
    ld_out = out.stride(0);
    ld_go = has_go ? go.stride(0) : 0;
  }
};

// Where the backward's step t finds each row's previous state: the step before it in processing order (rows
// off .. off + bs), or, for the rows past bs (sequences that start at step t), the initial state.
struct Before {
  int64_t off, bs;
};
inline Before step_before(const Rows& offs, const Rows& batch_sizes, int64_t t, bool reverse) {
  const int64_t b = reverse ? t + 1 : t - 1, T = static_cast<int64_t>(batch_sizes.size());
  return b >= 0 && b < T ? Before{offs[b], batch_sizes[b]} : Before{0, 0};
}

// Whether brgemm_f32 runs on this CPU and torch build and computes a small product right (torch's brgemm
// throws where oneDNN's micro-kernel is not available): the caller asks once before choosing it.
bool brgemm_ok() {
  try {
    // odd sizes: the kernel's edges; B large enough for panels of 32, the last one partial
    const int64_t M = 5, N = 3500, K = 19;
    std::vector<float> a(M * K), b(K * N), c(M * N, 1.0f);
    for (int64_t i = 0; i < M * K; ++i) a[i] = float((i * 7) % 11) / 11.0f - 0.5f;
    for (int64_t i = 0; i < K * N; ++i) b[i] = float((i * 5) % 13) / 13.0f - 0.5f;
    auto panels = pack_panels(at::from_blob(b.data(), {K, N}, at::kFloat));
    brgemm_f32(M, N, K, a.data(), K, panels.data_ptr<float>(), panels.size(2), c.data(), N, true);
    at::native::cpublas::brgemm_release(false);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double want = 1.0;
        for (int64_t k = 0; k < K; ++k) want += double(a[i * K + k]) * b[k * N + j];
        if (std::abs(want - c[i * N + j]) > 1e-4) return false;
      }
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace
