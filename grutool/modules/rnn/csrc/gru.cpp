// grutool's compiled GRU direction: the time loop of one layer and direction over packed rows, in C++.
//
// Same layout and results as the Python kernel (grutool/modules/rnn/gru.py) and nn.GRU: rows in packed
// (time-major) order, step t owning rows offs[t] .. offs[t] + batch_sizes[t], batch sizes never growing
// with t; gate order r | z | n, with r applied after W_hn h + b_hn:
//   r = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)
//   z = sigmoid(x W_iz^T + b_iz + h W_hz^T + b_hz)
//   n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))
//   h' = (1 - z) * n + z * h
// Per step: the GEMMs (where the caller chose brgemm, x_t W_ih^T and h W_hh^T on oneDNN's batch-reduce
// micro-kernel on raw pointers; else h W_hh^T as an ATen or oneDNN GEMM, the input projections all done in
// one GEMM before the loop), then one pass over the live rows for all the gate arithmetic (instead of the
// 3-5 separate ops, each with its own dispatch, of the Python loop).
//
// The state lives in one (B, H) buffer, live rows first (common.h): after the loop it holds h_n; in the
// backward pass the same holds for dL/dh and dL/dh0.
//
// This file is the extension's one translation unit: it also takes in the LSTM (lstm.h) and the RNN (rnn.h)
// and defines the Python module. Built by grutool/modules/rnn/compiled.py with torch.utils.cpp_extension on first use.


#include "common.h"
#include "lstm.h"
#include "rnn.h"

namespace {

// x @ w^T through mkldnn::_linear_pointwise; w may be a strided view or a pre-packed weight.
torch::Tensor onednn_linear(const torch::Tensor& x, const torch::Tensor& w) {
  static const auto op = c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_linear_pointwise", "");
  torch::jit::Stack stack;
  stack.emplace_back(x);
  stack.emplace_back(w);
  stack.emplace_back(c10::IValue());  // no bias
  stack.emplace_back(std::string("none"));
  stack.emplace_back(c10::List<c10::optional<at::Scalar>>());
  stack.emplace_back(std::string(""));
  op.callBoxed(&stack);
  return stack.back().toTensor();
}

// One live row of a forward step: gi, gh (3H) the two projections without their biases bih, bhh (3H),
// h (H) the state, read and overwritten with h'; out (H) h' again; s (3H) r | z | n and hn (H)
// h W_hn^T + b_hn when saved.
template <typename T, bool Save>
GRUTOOL_INLINE void forward_row_impl(int64_t H, const T* __restrict gi, const T* __restrict gh,
                                     const T* __restrict bih, const T* __restrict bhh, T* __restrict h,
                                     T* __restrict out, T* __restrict s, T* __restrict hn_out) {
  for (int64_t j = 0; j < H; ++j) {
    const T r = sigmoid(gi[j] + bih[j] + gh[j] + bhh[j]);
    const T z = sigmoid(gi[H + j] + bih[H + j] + gh[H + j] + bhh[H + j]);
    const T hn = gh[2 * H + j] + bhh[2 * H + j];
    const T n = tanh_v(gi[2 * H + j] + bih[2 * H + j] + r * hn);
    const T hv = n + z * (h[j] - n);  // (1 - z) n + z h
    h[j] = hv;
    out[j] = hv;
    if (Save) {
      s[j] = r;
      s[H + j] = z;
      s[2 * H + j] = n;
      hn_out[j] = hn;
    }
  }
}

// One live row of a backward step: d = dh + go is dL/dh_t; writes the gate gradients of both
// projections: dgh (3H), dL/d(h W_hh^T + b_hh), and dgin (H), dL/d(x W_in^T + b_in) (the r and z columns of
// the input projection's gradient are dgh's own, so they are not written twice); dh = d z (the direct path)
// and hp = h_{t-1} (for dW_hh).
template <typename T>
GRUTOOL_INLINE void backward_row_impl(int64_t H, const T* __restrict s, const T* __restrict hn,
                                      const T* __restrict go, const T* __restrict hprev, T* __restrict dh,
                                      T* __restrict dgin, T* __restrict dgh, T* __restrict hp) {
  for (int64_t j = 0; j < H; ++j) {
    const T r = s[j], z = s[H + j], n = s[2 * H + j];
    const T d = dh[j] + go[j];
    const T a_n = d * (T(1) - z) * (T(1) - n * n);  // dL/d(pre-tanh)
    const T a_r = a_n * hn[j] * r * (T(1) - r);
    const T a_z = d * (hprev[j] - n) * z * (T(1) - z);
    dgin[j] = a_n;
    dgh[j] = a_r;
    dgh[H + j] = a_z;
    dgh[2 * H + j] = a_n * r;
    dh[j] = d * z;  // the path through the gates is added by the step's GEMM
    hp[j] = hprev[j];
  }
}

#define GRUTOOL_ROWS(T)                                                                                   \
  GRUTOOL_CLONES void forward_row(int64_t H, const T* gi, const T* gh, const T* bih, const T* bhh, T* h,   \
                                  T* out, T* s, T* hn) {                                                \
    if (s != nullptr)                                                                                   \
      forward_row_impl<T, true>(H, gi, gh, bih, bhh, h, out, s, hn);                                    \
    else                                                                                                \
      forward_row_impl<T, false>(H, gi, gh, bih, bhh, h, out, s, hn);                                   \
  }                                                                                                     \
  GRUTOOL_CLONES void backward_row(int64_t H, const T* s, const T* hn, const T* go, const T* hprev, T* dh, \
                                   T* dgin, T* dgh, T* hp) {                                            \
    backward_row_impl<T>(H, s, hn, go, hprev, dh, dgin, dgh, hp);                                       \
  }

GRUTOOL_ROWS(float)
GRUTOOL_ROWS(double)

}  // namespace

// x (N, I), h0 (B, H), w_ih (3H, I), w_hh (3H, H), b_ih / b_hh (3H,) or None. step_w: W_hh for oneDNN's
// step GEMM (pre-packed or plain), None for BLAS or brgemm; brgemm (float32 only, and the caller has checked
// that it runs here): the step GEMMs through brgemm_f32.
// Returns out (N, H), h_n (B, H), and when `save`: gates (N, 3H) holding r | z | n, and hn (N, H) holding
// h W_hn^T + b_hn (what the backward needs); empty tensors otherwise.
std::vector<torch::Tensor> gru_forward(const torch::Tensor& x, const torch::Tensor& h0, const torch::Tensor& w_ih,
                                       const torch::Tensor& w_hh, const c10::optional<torch::Tensor>& b_ih,
                                       const c10::optional<torch::Tensor>& b_hh, const Rows& batch_sizes,
                                       bool reverse, bool save, const c10::optional<torch::Tensor>& step_w,
                                       bool brgemm,
                                       const c10::optional<torch::Tensor>& out_into = c10::nullopt) {
  check_rows(x, h0, batch_sizes);
  const int64_t N = x.size(0), B = h0.size(0), H = h0.size(1);
  const int64_t T = static_cast<int64_t>(batch_sizes.size());
  const Rows offs = offsets(batch_sizes);
  auto xc = x.contiguous();
  const int64_t I = xc.size(1);
  TORCH_CHECK(!brgemm || x.scalar_type() == at::kFloat, "compiled GRU: brgemm is float32 only");
  // The input projection x W_ih^T, without b_ih (added in the gate pass: addmm would first copy it into
  // every row of the result, 2 ms a direction at H 256, T 100, B 32). With brgemm, each step's rows are
  // projected at that step into a (B, 3H) buffer that stays in cache (at H 512 as fast as one GEMM before
  // the loop, and no (N, 3H) buffer); otherwise every step's in one GEMM before the loop, (N, 3H).
  auto w_ih_t = brgemm ? pack_panels(w_ih.t()) : torch::Tensor();  // W_ih^T (I, 3H) in column panels
  auto gi = brgemm ? at::empty({B, 3 * H}, x.options())
                   : at::mm(xc, w_ih.t());
  auto bih = b_ih.has_value() && b_ih->defined() ? b_ih->contiguous() : at::zeros({3 * H}, x.options());
  const bool step_onednn = step_w.has_value() && step_w->defined();
  auto w_hh_t = brgemm ? pack_panels(w_hh.t()) : w_hh.t();  // W_hh^T (H, 3H): in panels for brgemm, else a view
  auto bhh = b_hh.has_value() && b_hh->defined() ? b_hh->contiguous() : at::zeros({3 * H}, x.options());
  auto h = h0.contiguous().clone();           // (B, H): the state, live rows first
  // (N, H): out_into where given (a column slice of both directions' (N, 2H) output, rows ld_out apart)
  const bool into = out_into.has_value() && out_into->defined();
  TORCH_CHECK(!into || (out_into->size(0) == N && out_into->size(1) == H && out_into->stride(1) == 1 &&
                        out_into->scalar_type() == x.scalar_type()), "compiled GRU: bad out_into");
  auto out = into ? *out_into : at::empty({N, H}, x.options());
  const int64_t ld_out = out.stride(0);
  auto gh = at::empty({B, 3 * H}, x.options());  // (B, 3H): one step's h W_hh^T
  auto gates = save ? at::empty({N, 3 * H}, x.options()) : at::empty({0}, x.options());
  auto hn_all = save ? at::empty({N, H}, x.options()) : at::empty({0}, x.options());

  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "grutool_gru_forward", [&] {
    const scalar_t* gi_p = gi.data_ptr<scalar_t>();
    const scalar_t* bih_p = bih.data_ptr<scalar_t>();
    const scalar_t* bhh_p = bhh.data_ptr<scalar_t>();
    scalar_t* gh_buf = gh.data_ptr<scalar_t>();
    scalar_t* h_p = h.data_ptr<scalar_t>();
    scalar_t* out_p = out.data_ptr<scalar_t>();
    scalar_t* gates_p = save ? gates.data_ptr<scalar_t>() : nullptr;
    scalar_t* hn_p = save ? hn_all.data_ptr<scalar_t>() : nullptr;
    for (int64_t k = 0; k < T; ++k) {
      const int64_t t = reverse ? T - 1 - k : k;
      const int64_t bs = batch_sizes[t], off = offs[t];
      const scalar_t* gi_t = brgemm ? gi_p : gi_p + off * 3 * H;  // (bs, 3H): x_t W_ih^T
      const scalar_t* gh_p = gh_buf;                               // (bs, 3H): h W_hh^T
      torch::Tensor gh_t;
      if (brgemm) {  // raw pointers: no tensor is made per step
        brgemm_f32(bs, 3 * H, I, reinterpret_cast<const float*>(xc.data_ptr<scalar_t>() + off * I), I,
                   w_ih_t.data_ptr<float>(), w_ih_t.size(2), reinterpret_cast<float*>(gi.data_ptr<scalar_t>()),
                   3 * H, false);
        brgemm_f32(bs, 3 * H, H, reinterpret_cast<const float*>(h_p), H, w_hh_t.data_ptr<float>(),
                   w_hh_t.size(2), reinterpret_cast<float*>(gh_buf), 3 * H, false);
      } else if (step_onednn) {
        gh_t = onednn_linear(h.narrow(0, 0, bs), *step_w).contiguous();
        gh_p = gh_t.data_ptr<scalar_t>();
      } else {
        auto gh_rows = gh.narrow(0, 0, bs);
        at::mm_out(gh_rows, h.narrow(0, 0, bs), w_hh_t);
      }
      at::parallel_for(0, bs, grain(H), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          forward_row(H, gi_t + i * 3 * H, gh_p + i * 3 * H, bih_p, bhh_p, h_p + i * H, out_p + (off + i) * ld_out,
                      save ? gates_p + (off + i) * 3 * H : nullptr, save ? hn_p + (off + i) * H : nullptr);
        }
      });
    }
  });
  return {out, h, gates, hn_all};
}

// The backward of gru_forward. g_out (N, H) and g_hn (B, H) may be undefined (no gradient reached them).
// needs: (x, h0, w_ih, w_hh, b_ih, b_hh). onednn_step: the step GEMM through oneDNN; brgemm: through
// brgemm_f32 (float32).
// Returns dx, dh0, dw_ih, dw_hh, db_ih, db_hh (undefined where not needed).
std::vector<torch::Tensor> gru_backward(const torch::Tensor& x, const torch::Tensor& h0, const torch::Tensor& w_ih,
                                        const torch::Tensor& w_hh, const torch::Tensor& out,
                                        const torch::Tensor& gates, const torch::Tensor& hn_all,
                                        const c10::optional<torch::Tensor>& g_out,
                                        const c10::optional<torch::Tensor>& g_hn, const Rows& batch_sizes,
                                        bool reverse, std::vector<bool> needs, bool onednn_step, bool brgemm) {
  check_rows(x, h0, batch_sizes);
  TORCH_CHECK(needs.size() == 6, "compiled GRU: needs has 6 entries");
  const int64_t N = x.size(0), B = h0.size(0), H = h0.size(1);
  const int64_t T = static_cast<int64_t>(batch_sizes.size());
  const Rows offs = offsets(batch_sizes);
  const OutputRows rows(out, g_out, H);  // out and the output gradient, maybe column slices
  const bool has_g_out = rows.has_go;
  const int64_t ld_go = rows.ld_go, ld_out = rows.ld_out;
  auto h0c = h0.contiguous();
  // dL/dh for every sequence's current step, live rows first; starts as dL/dh_n, ends as dL/dh0.
  auto dh = carried_grad(g_hn, B, H, x.options());
  auto dgh = at::empty({N, 3 * H}, x.options());  // dL/d(h W_hh^T + b_hh); its r | z columns are x W_ih^T's too
  auto dgin = at::empty({N, H}, x.options());     // dL/d(x W_in^T + b_in)
  auto hp = at::empty({N, H}, x.options());       // each row's h_{t-1}, for dW_hh
  TORCH_CHECK(!brgemm || x.scalar_type() == at::kFloat, "compiled GRU: brgemm is float32 only");
  auto w_hh_c = w_hh.contiguous();
  auto w_hh_p = brgemm ? pack_panels(w_hh_c) : torch::Tensor();  // W_hh (3H, H) in column panels
  auto w_hh_tc = onednn_step ? w_hh.t().contiguous() : torch::Tensor();  // (H, 3H): dgh @ W_hh as a linear

  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "grutool_gru_backward", [&] {
    const scalar_t* go_p = has_g_out ? rows.go.data_ptr<scalar_t>() : nullptr;
    const scalar_t* zero_p = rows.zero.data_ptr<scalar_t>();
    const scalar_t* h0_p = h0c.data_ptr<scalar_t>();
    const scalar_t* out_p = rows.out.data_ptr<scalar_t>();
    const scalar_t* s_p = gates.data_ptr<scalar_t>();
    const scalar_t* hn_p = hn_all.data_ptr<scalar_t>();
    scalar_t* dh_p = dh.data_ptr<scalar_t>();
    scalar_t* dgin_p = dgin.data_ptr<scalar_t>();
    scalar_t* dgh_p = dgh.data_ptr<scalar_t>();
    scalar_t* hp_p = hp.data_ptr<scalar_t>();
    for (int64_t k = 0; k < T; ++k) {
      // The forward's steps in the opposite order.
      const int64_t t = reverse ? k : T - 1 - k;
      const int64_t bs = batch_sizes[t], off = offs[t];
      // Where a row's h_{t-1} is: the output of the step before in processing order, or h0 for the
      // sequences that start at this step.
      const Before prev = step_before(offs, batch_sizes, t, reverse);
      const int64_t prev_off = prev.off, prev_bs = prev.bs;
      at::parallel_for(0, bs, grain(H), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const int64_t row = off + i;
          backward_row(H, s_p + row * 3 * H, hn_p + row * H, has_g_out ? go_p + row * ld_go : zero_p,
                       i < prev_bs ? out_p + (prev_off + i) * ld_out : h0_p + i * H, dh_p + i * H, dgin_p + row * H,
                       dgh_p + row * 3 * H, hp_p + row * H);
        }
      });
      if (brgemm)  // dh += dgh @ W_hh: (bs, 3H) x (3H, H)
        brgemm_f32(bs, H, 3 * H, reinterpret_cast<const float*>(dgh_p + off * 3 * H), 3 * H,
                   w_hh_p.data_ptr<float>(), w_hh_p.size(2), reinterpret_cast<float*>(dh_p), H, true);
      else if (onednn_step)
        dh.narrow(0, 0, bs).add_(onednn_linear(dgh.narrow(0, off, bs), w_hh_tc));  // + dgh @ W_hh, (bs, H)
      else
        dh.narrow(0, 0, bs).addmm_(dgh.narrow(0, off, bs), w_hh_c);
    }
  });
  torch::Tensor dx, dw_ih, dw_hh, db_ih, db_hh;
  // One GEMM each over all steps (BLAS: a new row count nearly every call, see gemm.py).
  auto xc = x.contiguous();
  // dL/d(x W_ih^T + b_ih) is [dgh's r | z columns, dgin]: each product in two parts.
  auto dg_rz = dgh.narrow(1, 0, 2 * H);                                   // (N, 2H)
  if (needs[0]) dx = at::mm(dg_rz, w_ih.narrow(0, 0, 2 * H)).addmm_(dgin, w_ih.narrow(0, 2 * H, H));  // (N, I)
  if (needs[2]) {                                                         // (3H, I)
    dw_ih = at::empty({3 * H, xc.size(1)}, x.options());
    auto rz = dw_ih.narrow(0, 0, 2 * H), n = dw_ih.narrow(0, 2 * H, H);
    at::mm_out(rz, dg_rz.t(), xc);
    at::mm_out(n, dgin.t(), xc);
  }
  if (needs[3]) dw_hh = at::mm(dgh.t(), hp);  // (3H, H)
  if (needs[4] || needs[5]) db_hh = dgh.sum(0);
  if (needs[4]) db_ih = at::cat({db_hh.narrow(0, 0, 2 * H), dgin.sum(0)});
  if (!needs[5]) db_hh = torch::Tensor();
  return {dx, needs[1] ? dh : torch::Tensor(), dw_ih, dw_hh, db_ih, db_hh};
}

std::vector<torch::Tensor> gru_forward_pair(const torch::Tensor& x, const Rows& batch_sizes, bool save, bool brgemm,
                                            const torch::Tensor& h0a, const torch::Tensor& w_iha,
                                            const torch::Tensor& w_hha, const OptT& b_iha, const OptT& b_hha,
                                            const OptT& step_wa, const torch::Tensor& h0b, const torch::Tensor& w_ihb,
                                            const torch::Tensor& w_hhb, const OptT& b_ihb, const OptT& b_hhb,
                                            const OptT& step_wb) {
  const int64_t H = h0a.size(1);
  auto y = at::empty({x.size(0), 2 * H}, x.options());  // (N, 2H): each direction writes its half, no cat
  auto r = both_directions(
      pair_together(h0a.size(0), H, 3),
      [&] { return gru_forward(x, h0a, w_iha, w_hha, b_iha, b_hha, batch_sizes, false, save, step_wa, brgemm,
                         y.narrow(1, 0, H)); },
      [&] { return gru_forward(x, h0b, w_ihb, w_hhb, b_ihb, b_hhb, batch_sizes, true, save, step_wb, brgemm,
                         y.narrow(1, H, H)); });
  r.push_back(y);
  return r;  // out, h_n, gates, hn of the forward direction, then of the reverse one (outs: halves of y), y
}

std::vector<torch::Tensor> gru_backward_pair(
    const torch::Tensor& x, const Rows& batch_sizes, bool brgemm,
    const std::vector<bool>& needs_a, bool onednn_step_a, const torch::Tensor& h0a, const torch::Tensor& w_iha,
    const torch::Tensor& w_hha, const torch::Tensor& out_a, const torch::Tensor& gates_a, const torch::Tensor& hn_a,
    const OptT& g_out_a, const OptT& g_hn_a, const std::vector<bool>& needs_b, bool onednn_step_b,
    const torch::Tensor& h0b, const torch::Tensor& w_ihb, const torch::Tensor& w_hhb, const torch::Tensor& out_b,
    const torch::Tensor& gates_b, const torch::Tensor& hn_b, const OptT& g_out_b, const OptT& g_hn_b) {
  // dx, dh0, dw_ih, dw_hh, db_ih, db_hh of each direction
  return both_directions(
      pair_together(h0a.size(0), h0a.size(1), 3),
      [&] { return gru_backward(x, h0a, w_iha, w_hha, out_a, gates_a, hn_a, g_out_a, g_hn_a, batch_sizes, false, needs_a,
                          onednn_step_a, brgemm); },
      [&] { return gru_backward(x, h0b, w_ihb, w_hhb, out_b, gates_b, hn_b, g_out_b, g_hn_b, batch_sizes, true, needs_b,
                          onednn_step_b, brgemm); });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "grutool's compiled GRU, LSTM and RNN directions (grutool/modules/rnn/compiled.py)";
  m.def("gru_forward", &gru_forward, "one GRU direction over packed rows");
  m.def("gru_backward", &gru_backward, "its backward");
  m.def("gru_forward_pair", &gru_forward_pair, "both directions of a layer, side by side");
  m.def("gru_backward_pair", &gru_backward_pair, "their backward");
  m.def("lstm_forward", &lstm_forward, "one LSTM direction over packed rows");
  m.def("lstm_backward", &lstm_backward, "its backward");
  m.def("lstm_forward_pair", &lstm_forward_pair, "both directions of an LSTM layer, side by side");
  m.def("lstm_backward_pair", &lstm_backward_pair, "their backward");
  m.def("rnn_forward", &rnn_forward, "one RNN direction over packed rows");
  m.def("rnn_backward", &rnn_backward, "its backward");
  m.def("rnn_forward_pair", &rnn_forward_pair, "both directions of an RNN layer, side by side");
  m.def("rnn_backward_pair", &rnn_backward_pair, "their backward");
  m.def("brgemm_ok", &brgemm_ok, "whether the brgemm step GEMM runs here");
}
