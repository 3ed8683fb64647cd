// grutool's compiled GRU direction: the time loop of one layer and direction over packed rows, in C++.
//
// Same layout and results as the Python kernel (grutool/modules/rnn/gru.py) and nn.GRU: rows in packed
// (time-major) order, step t owning rows offs[t] .. offs[t] + batch_sizes[t], batch sizes never growing
// with t; gate order r | z | n, with r applied after W_hn h + b_hn:
//   r = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)
//   z = sigmoid(x W_iz^T + b_iz + h W_hz^T + b_hz)
//   n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))
//   h' = (1 - z) * n + z * h
// Per step: one ATen GEMM for h W_hh^T, then one pass over the live rows for all the gate arithmetic
// (instead of the 3-5 separate ops, each with its own dispatch, of the Python loop).
//
// The state lives in one (B, H) buffer: live rows are always its first batch_sizes[t] rows, so the
// forward direction reads what the step before wrote there, and the reverse direction finds the initial
// state in the rows that have not started yet. What is left in the buffer after the loop is h_n; in the
// backward pass the same holds for dL/dh and dL/dh0.
//
// Built by grutool/modules/rnn/compiled.py with torch.utils.cpp_extension on first use.

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

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

template <typename T>
inline T sigmoid(T a) {
  return T(1) / (T(1) + std::exp(-a));
}

// Rows of a step per parallel task: the gate pass is split over rows only when a step is large enough
// to pay for waking threads (and is the same computation either way, so results do not depend on it).
inline int64_t grain(int64_t H) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(H, 1)); }

void check_rows(const torch::Tensor& x, const torch::Tensor& h0, const Rows& batch_sizes) {
  TORCH_CHECK(!batch_sizes.empty(), "compiled GRU: no steps");
  TORCH_CHECK(x.dim() == 2 && h0.dim() == 2, "compiled GRU: x must be (N, I) and h0 (B, H)");
  int64_t n = 0;
  for (size_t t = 0; t < batch_sizes.size(); ++t) {
    TORCH_CHECK(batch_sizes[t] > 0 && batch_sizes[t] <= h0.size(0), "compiled GRU: bad batch size");
    TORCH_CHECK(t == 0 || batch_sizes[t] <= batch_sizes[t - 1], "compiled GRU: batch sizes must not grow");
    n += batch_sizes[t];
  }
  TORCH_CHECK(n == x.size(0), "compiled GRU: batch sizes do not add up to the rows of x");
}

}  // namespace

// x (N, I), h0 (B, H), w_ih (3H, I), w_hh (3H, H), b_ih / b_hh (3H,) or None.
// Returns out (N, H), h_n (B, H), and when `save`: gates (N, 3H) holding r | z | n, and hn (N, H) holding
// h W_hn^T + b_hn (what the backward needs); empty tensors otherwise.
std::vector<torch::Tensor> gru_forward(const torch::Tensor& x, const torch::Tensor& h0, const torch::Tensor& w_ih,
                                       const torch::Tensor& w_hh, const c10::optional<torch::Tensor>& b_ih,
                                       const c10::optional<torch::Tensor>& b_hh, const Rows& batch_sizes,
                                       bool reverse, bool save) {
  check_rows(x, h0, batch_sizes);
  const int64_t N = x.size(0), B = h0.size(0), H = h0.size(1);
  const int64_t T = static_cast<int64_t>(batch_sizes.size());
  const Rows offs = offsets(batch_sizes);
  auto xc = x.contiguous();
  // Every step's input projection in one GEMM, with b_ih folded in: (N, 3H).
  auto gi = b_ih.has_value() && b_ih->defined() ? at::addmm(*b_ih, xc, w_ih.t()) : at::mm(xc, w_ih.t());
  gi = gi.contiguous();
  auto w_hh_t = w_hh.t();  // (H, 3H) view: the GEMM reads it transposed, no copy
  auto bhh = b_hh.has_value() && b_hh->defined() ? b_hh->contiguous() : at::zeros({3 * H}, x.options());
  auto h = h0.contiguous().clone();           // (B, H): the state, live rows first
  auto out = at::empty({N, H}, x.options());  // (N, H)
  auto gh = at::empty({B, 3 * H}, x.options());  // (B, 3H): one step's h W_hh^T
  auto gates = save ? at::empty({N, 3 * H}, x.options()) : at::empty({0}, x.options());
  auto hn_all = save ? at::empty({N, H}, x.options()) : at::empty({0}, x.options());

  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "grutool_gru_forward", [&] {
    const scalar_t* gi_p = gi.data_ptr<scalar_t>();
    const scalar_t* bhh_p = bhh.data_ptr<scalar_t>();
    const scalar_t* gh_p = gh.data_ptr<scalar_t>();
    scalar_t* h_p = h.data_ptr<scalar_t>();
    scalar_t* out_p = out.data_ptr<scalar_t>();
    scalar_t* gates_p = save ? gates.data_ptr<scalar_t>() : nullptr;
    scalar_t* hn_p = save ? hn_all.data_ptr<scalar_t>() : nullptr;
    for (int64_t k = 0; k < T; ++k) {
      const int64_t t = reverse ? T - 1 - k : k;
      const int64_t bs = batch_sizes[t], off = offs[t];
      auto gh_t = gh.narrow(0, 0, bs);
      at::mm_out(gh_t, h.narrow(0, 0, bs), w_hh_t);  // (bs, 3H)
      at::parallel_for(0, bs, grain(H), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const scalar_t* gi_r = gi_p + (off + i) * 3 * H;
          const scalar_t* gh_r = gh_p + i * 3 * H;
          scalar_t* h_r = h_p + i * H;
          scalar_t* o_r = out_p + (off + i) * H;
          scalar_t* s_r = save ? gates_p + (off + i) * 3 * H : nullptr;
          scalar_t* hn_r = save ? hn_p + (off + i) * H : nullptr;
          for (int64_t j = 0; j < H; ++j) {
            const scalar_t r = sigmoid(gi_r[j] + gh_r[j] + bhh_p[j]);
            const scalar_t z = sigmoid(gi_r[H + j] + gh_r[H + j] + bhh_p[H + j]);
            const scalar_t hn = gh_r[2 * H + j] + bhh_p[2 * H + j];
            const scalar_t n = std::tanh(gi_r[2 * H + j] + r * hn);
            const scalar_t hv = n + z * (h_r[j] - n);  // (1 - z) n + z h
            h_r[j] = hv;
            o_r[j] = hv;
            if (save) {
              s_r[j] = r;
              s_r[H + j] = z;
              s_r[2 * H + j] = n;
              hn_r[j] = hn;
            }
          }
        }
      });
    }
  });
  return {out, h, gates, hn_all};
}

// The backward of gru_forward. g_out (N, H) and g_hn (B, H) may be undefined (no gradient reached them).
// needs: (x, h0, w_ih, w_hh, b_ih, b_hh). Returns dx, dh0, dw_ih, dw_hh, db_ih, db_hh (undefined where
// not needed).
std::vector<torch::Tensor> gru_backward(const torch::Tensor& x, const torch::Tensor& h0, const torch::Tensor& w_ih,
                                        const torch::Tensor& w_hh, const torch::Tensor& out,
                                        const torch::Tensor& gates, const torch::Tensor& hn_all,
                                        const c10::optional<torch::Tensor>& g_out,
                                        const c10::optional<torch::Tensor>& g_hn, const Rows& batch_sizes,
                                        bool reverse, std::vector<bool> needs) {
  check_rows(x, h0, batch_sizes);
  TORCH_CHECK(needs.size() == 6, "compiled GRU: needs has 6 entries");
  const int64_t N = x.size(0), B = h0.size(0), H = h0.size(1);
  const int64_t T = static_cast<int64_t>(batch_sizes.size());
  const Rows offs = offsets(batch_sizes);
  const bool has_g_out = g_out.has_value() && g_out->defined();
  auto go = has_g_out ? g_out->contiguous() : at::empty({0}, x.options());
  auto h0c = h0.contiguous();
  // dL/dh for every sequence's current step, live rows first; starts as dL/dh_n, ends as dL/dh0.
  auto dh = g_hn.has_value() && g_hn->defined() ? g_hn->contiguous().clone() : at::zeros({B, H}, x.options());
  auto dgi = at::empty({N, 3 * H}, x.options());  // dL/d(x W_ih^T + b_ih)
  auto dgh = at::empty({N, 3 * H}, x.options());  // dL/d(h W_hh^T + b_hh)
  auto hp = at::empty({N, H}, x.options());       // each row's h_{t-1}, for dW_hh
  auto w_hh_c = w_hh.contiguous();

  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "grutool_gru_backward", [&] {
    const scalar_t* go_p = has_g_out ? go.data_ptr<scalar_t>() : nullptr;
    const scalar_t* h0_p = h0c.data_ptr<scalar_t>();
    const scalar_t* out_p = out.data_ptr<scalar_t>();
    const scalar_t* s_p = gates.data_ptr<scalar_t>();
    const scalar_t* hn_p = hn_all.data_ptr<scalar_t>();
    scalar_t* dh_p = dh.data_ptr<scalar_t>();
    scalar_t* dgi_p = dgi.data_ptr<scalar_t>();
    scalar_t* dgh_p = dgh.data_ptr<scalar_t>();
    scalar_t* hp_p = hp.data_ptr<scalar_t>();
    for (int64_t k = 0; k < T; ++k) {
      // The forward's steps in the opposite order.
      const int64_t t = reverse ? k : T - 1 - k;
      const int64_t bs = batch_sizes[t], off = offs[t];
      // Where a row's h_{t-1} is: the output of the step before in processing order, or h0 for the
      // sequences that start at this step.
      const int64_t before = reverse ? t + 1 : t - 1;
      const bool has_before = before >= 0 && before < T;
      const int64_t prev_off = has_before ? offs[before] : 0;
      const int64_t prev_bs = has_before ? batch_sizes[before] : 0;
      at::parallel_for(0, bs, grain(H), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const int64_t row = off + i;
          const scalar_t* s_r = s_p + row * 3 * H;
          const scalar_t* hn_r = hn_p + row * H;
          const scalar_t* go_r = has_g_out ? go_p + row * H : nullptr;
          const scalar_t* hprev = i < prev_bs ? out_p + (prev_off + i) * H : h0_p + i * H;
          scalar_t* dh_r = dh_p + i * H;
          scalar_t* dgi_r = dgi_p + row * 3 * H;
          scalar_t* dgh_r = dgh_p + row * 3 * H;
          scalar_t* hp_r = hp_p + row * H;
          for (int64_t j = 0; j < H; ++j) {
            const scalar_t r = s_r[j], z = s_r[H + j], n = s_r[2 * H + j];
            const scalar_t d = dh_r[j] + (has_g_out ? go_r[j] : scalar_t(0));  // dL/dh_t
            const scalar_t a_n = d * (scalar_t(1) - z) * (scalar_t(1) - n * n);  // dL/d(pre-tanh)
            const scalar_t a_r = a_n * hn_r[j] * r * (scalar_t(1) - r);
            const scalar_t a_z = d * (hprev[j] - n) * z * (scalar_t(1) - z);
            dgi_r[j] = a_r;
            dgi_r[H + j] = a_z;
            dgi_r[2 * H + j] = a_n;
            dgh_r[j] = a_r;
            dgh_r[H + j] = a_z;
            dgh_r[2 * H + j] = a_n * r;
            dh_r[j] = d * z;  // the direct path; the GEMM below adds the one through the gates
            hp_r[j] = hprev[j];
          }
        }
      });
      dh.narrow(0, 0, bs).addmm_(dgh.narrow(0, off, bs), w_hh_c);  // + dgh @ W_hh, (bs, H)
    }
  });
  torch::Tensor dx, dw_ih, dw_hh, db_ih, db_hh;
  if (needs[0]) dx = at::mm(dgi, w_ih);  // (N, I)
  if (needs[2]) dw_ih = at::mm(dgi.t(), x.contiguous());  // (3H, I): one GEMM over all steps
  if (needs[3]) dw_hh = at::mm(dgh.t(), hp);  // (3H, H)
  if (needs[4]) db_ih = dgi.sum(0);
  if (needs[5]) db_hh = dgh.sum(0);
  return {dx, needs[1] ? dh : torch::Tensor(), dw_ih, dw_hh, db_ih, db_hh};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "grutool's compiled GRU direction (grutool/modules/rnn/compiled.py)";
  m.def("gru_forward", &gru_forward, "one GRU direction over packed rows");
  m.def("gru_backward", &gru_backward, "its backward");
}
