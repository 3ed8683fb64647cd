// grutool's compiled LSTM direction: the time loop of one layer and direction over packed rows, in C++ (included
// by gru.cpp, the extension's one translation unit; the shared parts are in common.h).
//
// Same layout and results as nn.LSTM (no projections) and the Python kernel (grutool/modules/rnn/lstm.py);
// gate order i | f | g | o:
//   i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g), o = sigmoid(a_o),  a = x W_ih^T + b_ih + h W_hh^T + b_hh
//   c' = f * c + i * g,  h' = o * tanh(c')
// Per step: the GEMMs (where the caller chose brgemm, x_t W_ih^T and then h W_hh^T accumulated into the same
// (B, 4H) buffer on oneDNN's micro-kernel; else every step's input projection in one GEMM before the loop and
// h W_hh^T added per step by BLAS), then one pass over the live rows for all the gate and state arithmetic.
// h and c each live in a (B, H) buffer, live rows first (common.h). The backward recomputes tanh(c') from the
// saved c' (the same function of the same value, so the same bits) instead of keeping another (N, H).

#pragma once

#include "common.h"

namespace {

// One live row of a forward step: a (4H) the pre-activations without the biases, b (4H) b_ih + b_hh; h and c
// (H) the state, read and overwritten with h' and c'; out (H) h' again; when saved, s (4H) i | f | g | o and
// cs (H) c'.
template <typename T, bool Save>
GRUTOOL_INLINE void lstm_forward_row_impl(int64_t H, const T* __restrict a, const T* __restrict b, T* __restrict h,
                                          T* __restrict c, T* __restrict out, T* __restrict s, T* __restrict cs) {
  for (int64_t j = 0; j < H; ++j) {
    const T i = sigmoid(a[j] + b[j]);
    const T f = sigmoid(a[H + j] + b[H + j]);
    const T g = tanh_v(a[2 * H + j] + b[2 * H + j]);
    const T o = sigmoid(a[3 * H + j] + b[3 * H + j]);
    const T cv = f * c[j] + i * g;
    const T hv = o * tanh_v(cv);
    c[j] = cv;
    h[j] = hv;
    out[j] = hv;
    if (Save) {
      s[j] = i;
      s[H + j] = f;
      s[2 * H + j] = g;
      s[3 * H + j] = o;
      cs[j] = cv;
    }
  }
}

// One live row of a backward step: go (H) dL/dh_t from the output, dh and dc (H) the gradients carried from
// the step after; s and cs the forward's saved gates and c_t, cp (H) c_{t-1}, hprev (H) h_{t-1}. Writes da
// (4H) dL/d(pre-activations), dc = dL/dc_{t-1} (dh is then overwritten by the step's GEMM, da W_hh), and
// hp = h_{t-1} (for dW_hh).
template <typename T>
GRUTOOL_INLINE void lstm_backward_row_impl(int64_t H, const T* __restrict s, const T* __restrict cs,
                                           const T* __restrict cp, const T* __restrict go,
                                           const T* __restrict hprev, const T* __restrict dh, T* __restrict dc,
                                           T* __restrict da, T* __restrict hp) {
  for (int64_t j = 0; j < H; ++j) {
    const T i = s[j], f = s[H + j], g = s[2 * H + j], o = s[3 * H + j];
    const T tc = tanh_v(cs[j]);
    const T d = dh[j] + go[j];                             // dL/dh_t
    const T dct = dc[j] + d * o * (T(1) - tc * tc);       // dL/dc_t
    da[j] = dct * g * i * (T(1) - i);
    da[H + j] = dct * cp[j] * f * (T(1) - f);
    da[2 * H + j] = dct * i * (T(1) - g * g);
    da[3 * H + j] = d * tc * o * (T(1) - o);
    dc[j] = dct * f;
    hp[j] = hprev[j];
  }
}

#define GRUTOOL_LSTM_ROWS(T)                                                                                  \
  GRUTOOL_CLONES void lstm_forward_row(int64_t H, const T* a, const T* b, T* h, T* c, T* out, T* s, T* cs) { \
    if (s != nullptr)                                                                                       \
      lstm_forward_row_impl<T, true>(H, a, b, h, c, out, s, cs);                                            \
    else                                                                                                    \
      lstm_forward_row_impl<T, false>(H, a, b, h, c, out, s, cs);                                           \
  }                                                                                                         \
  GRUTOOL_CLONES void lstm_backward_row(int64_t H, const T* s, const T* cs, const T* cp, const T* go,         \
                                        const T* hprev, const T* dh, T* dc, T* da, T* hp) {                 \
    lstm_backward_row_impl<T>(H, s, cs, cp, go, hprev, dh, dc, da, hp);                                     \
  }

GRUTOOL_LSTM_ROWS(float)
GRUTOOL_LSTM_ROWS(double)

// x (N, I), h0 and c0 (B, H), w_ih (4H, I), w_hh (4H, H), b_ih / b_hh (4H,) or None; brgemm (float32, checked
// by the caller that it runs here): the step GEMMs through brgemm_f32, else BLAS. out_into: where to write
// out (a column slice of both directions' (N, 2H) output), or None.
// Returns out (N, H), h_n, c_n (B, H), and when `save`: gates (N, 4H) holding i | f | g | o, and cs (N, H)
// holding each row's c_t (what the backward needs); empty tensors otherwise.
std::vector<torch::Tensor> lstm_forward(const torch::Tensor& x, const torch::Tensor& h0, const torch::Tensor& c0,
                                        const torch::Tensor& w_ih, const torch::Tensor& w_hh,
                                        const c10::optional<torch::Tensor>& b_ih,
                                        const c10::optional<torch::Tensor>& b_hh, const Rows& batch_sizes,
                                        bool reverse, bool save, bool brgemm,
                                        const c10::optional<torch::Tensor>& out_into = c10::nullopt) {
  check_rows(x, h0, batch_sizes);
  const int64_t N = x.size(0), B = h0.size(0), H = h0.size(1);
  const int64_t T = static_cast<int64_t>(batch_sizes.size());
  TORCH_CHECK(c0.sizes() == h0.sizes(), "compiled LSTM: c0 must have h0's shape");
  TORCH_CHECK(!brgemm || x.scalar_type() == at::kFloat, "compiled LSTM: brgemm is float32 only");
  const Rows offs = offsets(batch_sizes);
  auto xc = x.contiguous();
  const int64_t I = xc.size(1);
  auto bias = bias_sum(b_ih, b_hh, 4 * H, x.options());
  // brgemm: each step's pre-activations in a (B, 4H) buffer that stays in cache, x_t W_ih^T then += h W_hh^T;
  // BLAS: every step's x W_ih^T in one GEMM before the loop, (N, 4H), each step's rows += h W_hh^T in place.
  auto w_ih_t = brgemm ? pack_panels(w_ih.t()) : torch::Tensor();  // W_ih^T (I, 4H) in column panels
  auto w_hh_t = brgemm ? pack_panels(w_hh.t()) : w_hh.t();         // W_hh^T (H, 4H): in panels, else a view
  auto pre = brgemm ? at::empty({B, 4 * H}, x.options()) : at::mm(xc, w_ih.t());
  auto h = h0.contiguous().clone();  // (B, H) each: the state, live rows first
  auto c = c0.contiguous().clone();
  const bool into = out_into.has_value() && out_into->defined();
  TORCH_CHECK(!into || (out_into->size(0) == N && out_into->size(1) == H && out_into->stride(1) == 1 &&
                        out_into->scalar_type() == x.scalar_type()), "compiled LSTM: bad out_into");
  auto out = into ? *out_into : at::empty({N, H}, x.options());
  const int64_t ld_out = out.stride(0);
  auto gates = save ? at::empty({N, 4 * H}, x.options()) : at::empty({0}, x.options());
  auto cs_all = save ? at::empty({N, H}, x.options()) : at::empty({0}, x.options());

  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "grutool_lstm_forward", [&] {
    scalar_t* pre_p = pre.data_ptr<scalar_t>();
    const scalar_t* b_p = bias.data_ptr<scalar_t>();
    scalar_t* h_p = h.data_ptr<scalar_t>();
    scalar_t* c_p = c.data_ptr<scalar_t>();
    scalar_t* out_p = out.data_ptr<scalar_t>();
    scalar_t* gates_p = save ? gates.data_ptr<scalar_t>() : nullptr;
    scalar_t* cs_p = save ? cs_all.data_ptr<scalar_t>() : nullptr;
    for (int64_t k = 0; k < T; ++k) {
      const int64_t t = reverse ? T - 1 - k : k;
      const int64_t bs = batch_sizes[t], off = offs[t];
      scalar_t* a_t = brgemm ? pre_p : pre_p + off * 4 * H;  // (bs, 4H)
      if (brgemm) {  // raw pointers: no tensor is made per step
        float* a_f = reinterpret_cast<float*>(a_t);
        brgemm_f32(bs, 4 * H, I, reinterpret_cast<const float*>(xc.data_ptr<scalar_t>() + off * I), I,
                   w_ih_t.data_ptr<float>(), w_ih_t.size(2), a_f, 4 * H, false);
        brgemm_f32(bs, 4 * H, H, reinterpret_cast<const float*>(h_p), H, w_hh_t.data_ptr<float>(), w_hh_t.size(2),
                   a_f, 4 * H, true);
      } else {
        pre.narrow(0, off, bs).addmm_(h.narrow(0, 0, bs), w_hh_t);
      }
      at::parallel_for(0, bs, grain(H), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          lstm_forward_row(H, a_t + i * 4 * H, b_p, h_p + i * H, c_p + i * H, out_p + (off + i) * ld_out,
                           save ? gates_p + (off + i) * 4 * H : nullptr, save ? cs_p + (off + i) * H : nullptr);
        }
      });
    }
  });
  return {out, h, c, gates, cs_all};
}

// The backward of lstm_forward. out (N, H) and g_out may be column slices (rows ld apart); g_out, g_hn, g_cn
// may be undefined (no gradient reached them). needs: (x, h0, c0, w_ih, w_hh, b_ih, b_hh).
// Returns dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh (undefined where not needed).
std::vector<torch::Tensor> lstm_backward(const torch::Tensor& x, const torch::Tensor& h0, const torch::Tensor& c0,
                                         const torch::Tensor& w_ih, const torch::Tensor& w_hh,
                                         const torch::Tensor& out, const torch::Tensor& gates,
                                         const torch::Tensor& cs_all, const c10::optional<torch::Tensor>& g_out,
                                         const c10::optional<torch::Tensor>& g_hn,
                                         const c10::optional<torch::Tensor>& g_cn, const Rows& batch_sizes,
                                         bool reverse, std::vector<bool> needs, bool brgemm) {
  check_rows(x, h0, batch_sizes);
  TORCH_CHECK(needs.size() == 7, "compiled LSTM: needs has 7 entries");
  TORCH_CHECK(!brgemm || x.scalar_type() == at::kFloat, "compiled LSTM: brgemm is float32 only");
  const int64_t N = x.size(0), B = h0.size(0), H = h0.size(1);
  const int64_t T = static_cast<int64_t>(batch_sizes.size());
  const Rows offs = offsets(batch_sizes);
  const OutputRows rows(out, g_out, H);  // out and the output gradient, maybe column slices
  const bool has_g_out = rows.has_go;
  const int64_t ld_go = rows.ld_go, ld_out = rows.ld_out;
  auto h0c = h0.contiguous();
  auto c0c = c0.contiguous();
  // dL/dh and dL/dc for every sequence's current step, live rows first; they end as dL/dh0 and dL/dc0.
  auto dh = carried_grad(g_hn, B, H, x.options());
  auto dc = carried_grad(g_cn, B, H, x.options());
  auto da = at::empty({N, 4 * H}, x.options());  // dL/d(pre-activations)
  auto hp = at::empty({N, H}, x.options());      // each row's h_{t-1}, for dW_hh
  auto w_hh_c = w_hh.contiguous();
  auto w_hh_p = brgemm ? pack_panels(w_hh_c) : torch::Tensor();  // W_hh (4H, H) in column panels

  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "grutool_lstm_backward", [&] {
    const scalar_t* go_p = has_g_out ? rows.go.data_ptr<scalar_t>() : nullptr;
    const scalar_t* zero_p = rows.zero.data_ptr<scalar_t>();
    const scalar_t* h0_p = h0c.data_ptr<scalar_t>();
    const scalar_t* c0_p = c0c.data_ptr<scalar_t>();
    const scalar_t* out_p = rows.out.data_ptr<scalar_t>();
    const scalar_t* s_p = gates.data_ptr<scalar_t>();
    const scalar_t* cs_p = cs_all.data_ptr<scalar_t>();
    scalar_t* dh_p = dh.data_ptr<scalar_t>();
    scalar_t* dc_p = dc.data_ptr<scalar_t>();
    scalar_t* da_p = da.data_ptr<scalar_t>();
    scalar_t* hp_p = hp.data_ptr<scalar_t>();
    for (int64_t k = 0; k < T; ++k) {
      const int64_t t = reverse ? k : T - 1 - k;  // the forward's steps in the opposite order
      const int64_t bs = batch_sizes[t], off = offs[t];
      // Where a row's h_{t-1} and c_{t-1} are: the step before in processing order, or h0 / c0 for the
      // sequences that start at this step.
      const Before prev = step_before(offs, batch_sizes, t, reverse);
      const int64_t prev_off = prev.off, prev_bs = prev.bs;
      at::parallel_for(0, bs, grain(H), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const int64_t row = off + i;
          const bool from_before = i < prev_bs;
          lstm_backward_row(H, s_p + row * 4 * H, cs_p + row * H, from_before ? cs_p + (prev_off + i) * H : c0_p + i * H,
                            has_g_out ? go_p + row * ld_go : zero_p,
                            from_before ? out_p + (prev_off + i) * ld_out : h0_p + i * H, dh_p + i * H, dc_p + i * H,
                            da_p + row * 4 * H, hp_p + row * H);
        }
      });
      if (brgemm)  // dh = da @ W_hh: (bs, 4H) x (4H, H)
        brgemm_f32(bs, H, 4 * H, reinterpret_cast<const float*>(da_p + off * 4 * H), 4 * H,
                   w_hh_p.data_ptr<float>(), w_hh_p.size(2), reinterpret_cast<float*>(dh_p), H, false);
      else {
        auto dh_rows = dh.narrow(0, 0, bs);
        at::mm_out(dh_rows, da.narrow(0, off, bs), w_hh_c);
      }
    }
  });
  auto g = summed_projection_grads(da, x, w_ih, hp, {needs[0], needs[3], needs[4], needs[5], needs[6]});
  return {g[0], needs[1] ? dh : torch::Tensor(), needs[2] ? dc : torch::Tensor(), g[1], g[2], g[3], g[4]};
}

// Both directions of a bidirectional layer (common.h, side_by_side): the forward and the reverse one.
std::vector<torch::Tensor> lstm_forward_pair(const torch::Tensor& x, const Rows& batch_sizes, bool save, bool brgemm,
                                             const torch::Tensor& h0a, const torch::Tensor& c0a,
                                             const torch::Tensor& w_iha, const torch::Tensor& w_hha,
                                             const OptT& b_iha, const OptT& b_hha, const torch::Tensor& h0b,
                                             const torch::Tensor& c0b, const torch::Tensor& w_ihb,
                                             const torch::Tensor& w_hhb, const OptT& b_ihb, const OptT& b_hhb) {
  const int64_t H = h0a.size(1);
  auto y = at::empty({x.size(0), 2 * H}, x.options());  // (N, 2H): each direction writes its half, no cat
  auto r = both_directions(
      pair_together(h0a.size(0), H, 4),
      [&] { return lstm_forward(x, h0a, c0a, w_iha, w_hha, b_iha, b_hha, batch_sizes, false, save, brgemm,
                          y.narrow(1, 0, H)); },
      [&] { return lstm_forward(x, h0b, c0b, w_ihb, w_hhb, b_ihb, b_hhb, batch_sizes, true, save, brgemm,
                          y.narrow(1, H, H)); });
  r.push_back(y);
  return r;  // out, h_n, c_n, gates, cs of the forward direction, then of the reverse one (outs: halves of y), y
}

std::vector<torch::Tensor> lstm_backward_pair(
    const torch::Tensor& x, const Rows& batch_sizes, bool brgemm, const std::vector<bool>& needs_a,
    const torch::Tensor& h0a, const torch::Tensor& c0a, const torch::Tensor& w_iha, const torch::Tensor& w_hha,
    const torch::Tensor& out_a, const torch::Tensor& gates_a, const torch::Tensor& cs_a, const OptT& g_out_a,
    const OptT& g_hn_a, const OptT& g_cn_a, const std::vector<bool>& needs_b, const torch::Tensor& h0b,
    const torch::Tensor& c0b, const torch::Tensor& w_ihb, const torch::Tensor& w_hhb, const torch::Tensor& out_b,
    const torch::Tensor& gates_b, const torch::Tensor& cs_b, const OptT& g_out_b, const OptT& g_hn_b,
    const OptT& g_cn_b) {
  // dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh of each direction
  return both_directions(
      pair_together(h0a.size(0), h0a.size(1), 4),
      [&] { return lstm_backward(x, h0a, c0a, w_iha, w_hha, out_a, gates_a, cs_a, g_out_a, g_hn_a, g_cn_a, batch_sizes,
                           false, needs_a, brgemm); },
      [&] { return lstm_backward(x, h0b, c0b, w_ihb, w_hhb, out_b, gates_b, cs_b, g_out_b, g_hn_b, g_cn_b, batch_sizes,
                           true, needs_b, brgemm); });
}

}  // namespace
