// grutool's compiled Elman RNN direction (nn.RNN, tanh or relu): the time loop of one layer and direction over
// packed rows, in C++ (included by gru.cpp, the extension's one translation unit; the shared parts in common.h).
//
//   h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh),  act = tanh or relu
// Per step: x_t W_ih^T and then h W_hh^T accumulated into one (B, H) buffer on brgemm (float32; else every step's
// input projection in one GEMM before the loop and h W_hh^T added per step by BLAS), then one pass over the live
// rows: bias and activation. Nothing is saved beyond the output: the activation's derivative is a function of it
// (1 - h^2, or h > 0).

#pragma once

#include "common.h"

namespace {

// One live row of a forward step: a (H) the pre-activation without the biases, b (H) b_ih + b_hh; h (H) the state,
// overwritten with h'; out (H) h' again.
template <typename T, bool Relu>
GRUTOOL_INLINE void rnn_forward_row_impl(int64_t H, const T* __restrict a, const T* __restrict b, T* __restrict h,
                                         T* __restrict out) {
  for (int64_t j = 0; j < H; ++j) {
    const T v = a[j] + b[j];
    const T hv = Relu ? (v < T(0) ? T(0) : v) : tanh_v(v);  // relu keeps a NaN, as torch's does
    h[j] = hv;
    out[j] = hv;
  }
}

// One live row of a backward step: go (H) dL/dh_t from the output, dh (H) the gradient carried from the step
// after, ht (H) h_t, hprev (H) h_{t-1}. Writes da (H) dL/d(pre-activation) and hp = h_{t-1} (for dW_hh); dh is then
// overwritten by the step's GEMM, da W_hh.
template <typename T, bool Relu>
GRUTOOL_INLINE void rnn_backward_row_impl(int64_t H, const T* __restrict ht, const T* __restrict go,
                                          const T* __restrict hprev, const T* __restrict dh, T* __restrict da,
                                          T* __restrict hp) {
  for (int64_t j = 0; j < H; ++j) {
    const T d = dh[j] + go[j];
    da[j] = Relu ? (ht[j] > T(0) ? d : T(0)) : d * (T(1) - ht[j] * ht[j]);
    hp[j] = hprev[j];
  }
}

#define GRUTOOL_RNN_ROWS(T)                                                                                    \
  GRUTOOL_CLONES void rnn_forward_row(int64_t H, bool relu, const T* a, const T* b, T* h, T* out) {            \
    if (relu)                                                                                                  \
      rnn_forward_row_impl<T, true>(H, a, b, h, out);                                                          \
    else                                                                                                       \
      rnn_forward_row_impl<T, false>(H, a, b, h, out);                                                         \
  }                                                                                                            \
  GRUTOOL_CLONES void rnn_backward_row(int64_t H, bool relu, const T* ht, const T* go, const T* hprev,         \
                                       const T* dh, T* da, T* hp) {                                            \
    if (relu)                                                                                                  \
      rnn_backward_row_impl<T, true>(H, ht, go, hprev, dh, da, hp);                                            \
    else                                                                                                       \
      rnn_backward_row_impl<T, false>(H, ht, go, hprev, dh, da, hp);                                           \
  }

GRUTOOL_RNN_ROWS(float)
GRUTOOL_RNN_ROWS(double)

// x (N, I), h0 (B, H), w_ih (H, I), w_hh (H, H), b_ih / b_hh (H,) or None; relu: the activation (else tanh);
// brgemm (float32, checked by the caller that it runs here): the step GEMMs through brgemm_f32, else BLAS.
// out_into: where to write out (a column slice of both directions' (N, 2H) output), or None.
// Returns out (N, H) and h_n (B, H).
std::vector<torch::Tensor> rnn_forward(const torch::Tensor& x, const torch::Tensor& h0, const torch::Tensor& w_ih,
                                       const torch::Tensor& w_hh, const c10::optional<torch::Tensor>& b_ih,
                                       const c10::optional<torch::Tensor>& b_hh, const Rows& batch_sizes,
                                       bool reverse, bool relu, bool brgemm,
                                       const c10::optional<torch::Tensor>& out_into = c10::nullopt) {
  check_rows(x, h0, batch_sizes);
  const int64_t N = x.size(0), B = h0.size(0), H = h0.size(1);
  const int64_t T = static_cast<int64_t>(batch_sizes.size());
  TORCH_CHECK(!brgemm || x.scalar_type() == at::kFloat, "compiled RNN: brgemm is float32 only");
  const Rows offs = offsets(batch_sizes);
  auto xc = x.contiguous();
  const int64_t I = xc.size(1);
  auto bias = bias_sum(b_ih, b_hh, H, x.options());
  auto w_ih_t = brgemm ? pack_panels(w_ih.t()) : torch::Tensor();  // W_ih^T (I, H) in column panels
  auto w_hh_t = brgemm ? pack_panels(w_hh.t()) : w_hh.t();         // W_hh^T (H, H): in panels, else a view
  auto pre = brgemm ? at::empty({B, H}, x.options()) : at::mm(xc, w_ih.t());  // (B, H) per step, or (N, H)
  auto h = h0.contiguous().clone();  // (B, H): the state, live rows first
  const bool into = out_into.has_value() && out_into->defined();
  TORCH_CHECK(!into || (out_into->size(0) == N && out_into->size(1) == H && out_into->stride(1) == 1 &&
                        out_into->scalar_type() == x.scalar_type()), "compiled RNN: bad out_into");
  auto out = into ? *out_into : at::empty({N, H}, x.options());
  const int64_t ld_out = out.stride(0);

  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "grutool_rnn_forward", [&] {
    scalar_t* pre_p = pre.data_ptr<scalar_t>();
    const scalar_t* b_p = bias.data_ptr<scalar_t>();
    scalar_t* h_p = h.data_ptr<scalar_t>();
    scalar_t* out_p = out.data_ptr<scalar_t>();
    for (int64_t k = 0; k < T; ++k) {
      const int64_t t = reverse ? T - 1 - k : k;
      const int64_t bs = batch_sizes[t], off = offs[t];
      scalar_t* a_t = brgemm ? pre_p : pre_p + off * H;  // (bs, H)
      if (brgemm) {
        float* a_f = reinterpret_cast<float*>(a_t);
        brgemm_f32(bs, H, I, reinterpret_cast<const float*>(xc.data_ptr<scalar_t>() + off * I), I,
                   w_ih_t.data_ptr<float>(), w_ih_t.size(2), a_f, H, false);
        brgemm_f32(bs, H, H, reinterpret_cast<const float*>(h_p), H, w_hh_t.data_ptr<float>(), w_hh_t.size(2), a_f,
                   H, true);
      } else {
        pre.narrow(0, off, bs).addmm_(h.narrow(0, 0, bs), w_hh_t);
      }
      at::parallel_for(0, bs, grain(H), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i)
          rnn_forward_row(H, relu, a_t + i * H, b_p, h_p + i * H, out_p + (off + i) * ld_out);
      });
    }
  });
  return {out, h};
}

// The backward of rnn_forward. out (N, H) and g_out may be column slices (rows ld apart); g_out and g_hn may be
// undefined (no gradient reached them). needs: (x, h0, w_ih, w_hh, b_ih, b_hh).
// Returns dx, dh0, dw_ih, dw_hh, db_ih, db_hh (undefined where not needed).
std::vector<torch::Tensor> rnn_backward(const torch::Tensor& x, const torch::Tensor& h0, const torch::Tensor& w_ih,
                                        const torch::Tensor& w_hh, const torch::Tensor& out,
                                        const c10::optional<torch::Tensor>& g_out,
                                        const c10::optional<torch::Tensor>& g_hn, const Rows& batch_sizes,
                                        bool reverse, bool relu, std::vector<bool> needs, bool brgemm) {
  check_rows(x, h0, batch_sizes);
  TORCH_CHECK(needs.size() == 6, "compiled RNN: needs has 6 entries");
  TORCH_CHECK(!brgemm || x.scalar_type() == at::kFloat, "compiled RNN: brgemm is float32 only");
  const int64_t N = x.size(0), B = h0.size(0), H = h0.size(1);
  const int64_t T = static_cast<int64_t>(batch_sizes.size());
  const Rows offs = offsets(batch_sizes);
  const OutputRows rows(out, g_out, H);  // out and the output gradient, maybe column slices
  const bool has_g_out = rows.has_go;
  const int64_t ld_go = rows.ld_go, ld_out = rows.ld_out;
  auto h0c = h0.contiguous();
  auto dh = carried_grad(g_hn, B, H, x.options());
  auto da = at::empty({N, H}, x.options());  // dL/d(pre-activation)
  auto hp = at::empty({N, H}, x.options());  // each row's h_{t-1}, for dW_hh
  auto w_hh_c = w_hh.contiguous();
  auto w_hh_p = brgemm ? pack_panels(w_hh_c) : torch::Tensor();  // W_hh (H, H) in column panels

  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "grutool_rnn_backward", [&] {
    const scalar_t* go_p = has_g_out ? rows.go.data_ptr<scalar_t>() : nullptr;
    const scalar_t* zero_p = rows.zero.data_ptr<scalar_t>();
    const scalar_t* h0_p = h0c.data_ptr<scalar_t>();
    const scalar_t* out_p = rows.out.data_ptr<scalar_t>();
    scalar_t* dh_p = dh.data_ptr<scalar_t>();
    scalar_t* da_p = da.data_ptr<scalar_t>();
    scalar_t* hp_p = hp.data_ptr<scalar_t>();
    for (int64_t k = 0; k < T; ++k) {
      const int64_t t = reverse ? k : T - 1 - k;  // the forward's steps in the opposite order
      const int64_t bs = batch_sizes[t], off = offs[t];
      const Before prev = step_before(offs, batch_sizes, t, reverse);
      const int64_t prev_off = prev.off, prev_bs = prev.bs;
      at::parallel_for(0, bs, grain(H), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const int64_t row = off + i;
          rnn_backward_row(H, relu, out_p + row * ld_out, has_g_out ? go_p + row * ld_go : zero_p,
                           i < prev_bs ? out_p + (prev_off + i) * ld_out : h0_p + i * H, dh_p + i * H,
                           da_p + row * H, hp_p + row * H);
        }
      });
      if (brgemm)  // dh = da @ W_hh: (bs, H) x (H, H)
        brgemm_f32(bs, H, H, reinterpret_cast<const float*>(da_p + off * H), H, w_hh_p.data_ptr<float>(),
                   w_hh_p.size(2), reinterpret_cast<float*>(dh_p), H, false);
      else {
        auto dh_rows = dh.narrow(0, 0, bs);
        at::mm_out(dh_rows, da.narrow(0, off, bs), w_hh_c);
      }
    }
  });
  auto g = summed_projection_grads(da, x, w_ih, hp, {needs[0], needs[2], needs[3], needs[4], needs[5]});
  return {g[0], needs[1] ? dh : torch::Tensor(), g[1], g[2], g[3], g[4]};
}

// Both directions of a bidirectional layer (common.h, side_by_side): the forward and the reverse one.
std::vector<torch::Tensor> rnn_forward_pair(const torch::Tensor& x, const Rows& batch_sizes, bool relu, bool brgemm,
                                            const torch::Tensor& h0a, const torch::Tensor& w_iha,
                                            const torch::Tensor& w_hha, const OptT& b_iha, const OptT& b_hha,
                                            const torch::Tensor& h0b, const torch::Tensor& w_ihb,
                                            const torch::Tensor& w_hhb, const OptT& b_ihb, const OptT& b_hhb) {
  const int64_t H = h0a.size(1);
  auto y = at::empty({x.size(0), 2 * H}, x.options());  // (N, 2H): each direction writes its half, no cat
  auto r = both_directions(
      pair_together(h0a.size(0), H, 1),
      [&] { return rnn_forward(x, h0a, w_iha, w_hha, b_iha, b_hha, batch_sizes, false, relu, brgemm, y.narrow(1, 0, H)); },
      [&] { return rnn_forward(x, h0b, w_ihb, w_hhb, b_ihb, b_hhb, batch_sizes, true, relu, brgemm, y.narrow(1, H, H)); });
  r.push_back(y);
  return r;  // out, h_n of the forward direction, then of the reverse one (outs: halves of y), y
}

std::vector<torch::Tensor> rnn_backward_pair(const torch::Tensor& x, const Rows& batch_sizes, bool relu, bool brgemm,
                                             const std::vector<bool>& needs_a, const torch::Tensor& h0a,
                                             const torch::Tensor& w_iha, const torch::Tensor& w_hha,
                                             const torch::Tensor& out_a, const OptT& g_out_a, const OptT& g_hn_a,
                                             const std::vector<bool>& needs_b, const torch::Tensor& h0b,
                                             const torch::Tensor& w_ihb, const torch::Tensor& w_hhb,
                                             const torch::Tensor& out_b, const OptT& g_out_b, const OptT& g_hn_b) {
  // dx, dh0, dw_ih, dw_hh, db_ih, db_hh of each direction
  return both_directions(
      pair_together(h0a.size(0), h0a.size(1), 1),
      [&] { return rnn_backward(x, h0a, w_iha, w_hha, out_a, g_out_a, g_hn_a, batch_sizes, false, relu, needs_a, brgemm); },
      [&] { return rnn_backward(x, h0b, w_ihb, w_hhb, out_b, g_out_b, g_hn_b, batch_sizes, true, relu, needs_b, brgemm); });
}

}  // namespace
