// Per-step loops of the CfC and LTC training passes, one call per sequence.
//
// The Python passes in cfc_bptt.py and ltc_solver.py define what is computed; these kernels
// compute the same numbers (checked by test/models/test_native.py) with the per-step
// elementwise work fused into single loops and without Python or per-op overhead. Samples of
// a batch are independent along the recurrence, so each thread runs the whole sequence for
// its share of the batch (single-threaded matrix products inside), instead of splitting every
// small per-step product across threads. Registered as torch.ops.liquid_control.*; only for
// training sequences (export traces the plain per-step code). Vector code uses ATen's
// Vectorized<float> at the ISA _build.py compiles for.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/native/CPUBlas.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

namespace {

using at::Tensor;
using Vec = at::vec::Vectorized<float>;
constexpr int64_t kLanes = Vec::size();
constexpr float kLecunScale = 1.7159f;
constexpr float kLecunSlope = 0.666f;

// exp_u20 is ATen's inline polynomial exp (about 2e-6 relative error): several times faster
// than a call into SLEEF, and well inside the 1e-5 the passes are checked to. It clamps its
// input, which would turn a NaN into a number: NaN is passed through, as torch.sigmoid does,
// so a diverged run shows NaN here too.
inline Vec sigmoid(const Vec& x) {
  const Vec one(1.f);
  return Vec::blendv(one / (one + x.neg().exp_u20()), x, x.isnan());
}

// tanh as 2 sigmoid(2x) - 1, as the Python path computes it.
inline Vec tanh2(const Vec& x) { return Vec(2.f) * sigmoid(x + x) - Vec(1.f); }

inline float hsum(const Vec& v) {
  return at::vec::vec_reduce_all<float>([](Vec& a, Vec& b) { return a + b; }, v);
}

// One chunk of at least min_rows rows per thread.
int64_t chunk_count(int64_t rows, int64_t min_rows) {
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), rows / min_rows));
}

// Runs f(chunk, first_row, end_row) for every chunk_count(rows, min_rows) chunk, in parallel.
template <typename F>
void over_row_chunks(int64_t rows, int64_t min_rows, const F& f) {
  const int64_t chunks = chunk_count(rows, min_rows);
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    at::NoGradGuard no_grad;
    for (int64_t c = c0; c < c1; ++c) f(c, rows * c / chunks, rows * (c + 1) / chunks);
  });
}

void check_cpu_float(const Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous(), name,
              ": expected a contiguous float32 CPU tensor");
}

// ---------------------------------------------------------------- CfC

// Columns [0, a) and [b, hidden) of a held layer keep their state (cfc_bptt._hold).
struct Hold {
  const int64_t* spans = nullptr;  // (T, 2) or null
  int64_t a(int64_t t) const { return spans ? spans[2 * t] : 0; }
  int64_t b(int64_t t, int64_t hidden) const { return spans ? spans[2 * t + 1] : hidden; }
};

// C (M x N, row stride ld_c) = A (M x K) B (K x N) [+ C], all row-major: ATen's batch-reduce
// GEMM, oneDNN's AVX-512 micro-kernels where the CPU has them (about 2.5x torch's MKL matmul
// at these sizes on AMD CPUs, where MKL does not use AVX-512), else torch's BLAS.
inline void gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t ld_a, const float* b,
                 int64_t ld_b, float* c, int64_t ld_c, bool add_c) {
  at::native::cpublas::brgemm(m, n, k, ld_a, ld_b, ld_c, add_c, a, b, c, /*is_vnni=*/false);
}

// States after every step (T+1, B, H, the first h0), backbone outputs (T, B, P) and head
// slopes (T, B, 4H) of a CfC layer over inputs x (T, B, I): the first affine map is
// x W_x^T + b + h W_h^T (P outputs), then the backbone and the heads (cfc_bptt.py).
std::tuple<Tensor, Tensor, Tensor> cfc_forward(const Tensor& x, const Tensor& w_x,
                                               const Tensor& b, const Tensor& ts,
                                               const Tensor& h0, const Tensor& w_h,
                                               const std::optional<Tensor>& w_g,
                                               const std::optional<Tensor>& b_g,
                                               const std::optional<Tensor>& hold, bool no_gate) {
  at::NoGradGuard no_grad;
  for (const auto& [t, n] : {std::pair{x, "x"}, {w_x, "w_x"}, {b, "b"}, {ts, "ts"}, {h0, "h0"},
                             {w_h, "w_h"}})
    check_cpu_float(t, n);
  const int64_t steps = x.size(0), batch = x.size(1), inputs = x.size(2), proj = w_x.size(0);
  const int64_t hid = h0.size(1);
  const bool backbone = w_g.has_value();
  if (backbone) {
    check_cpu_float(*w_g, "w_g");
    check_cpu_float(*b_g, "b_g");
  }
  const int64_t ts_cols = ts.size(2);
  TORCH_CHECK(ts_cols == 1 || ts_cols == hid, "ts: one time span per sample or per neuron");
  TORCH_CHECK(backbone || proj == 4 * hid, "without a backbone the projection is the 4 heads");
  Tensor h_all = at::empty({steps + 1, batch, hid}, h0.options());
  h_all.select(0, 0).copy_(h0);
  Tensor th = backbone ? at::empty({steps, batch, proj}, h0.options()) : at::empty({0});
  Tensor slopes = at::empty({steps, batch, 4 * hid}, h0.options());
  Hold held{hold ? hold->data_ptr<int64_t>() : nullptr};
  // The GEMM takes row-major right-hand sides: the weights transposed once per sequence.
  const Tensor w_x_t = w_x.t().contiguous();
  const Tensor w_h_t = w_h.t().contiguous();
  const Tensor w_g_t = backbone ? w_g->t().contiguous() : Tensor();
  const float *wxp = w_x_t.data_ptr<float>(), *bp = b.data_ptr<float>();
  const float* whp = w_h_t.data_ptr<float>();
  const float* wgp = backbone ? w_g_t.data_ptr<float>() : nullptr;
  const float* bgp = backbone ? b_g->data_ptr<float>() : nullptr;
  const float* xp = x.data_ptr<float>();
  float* h_ptr = h_all.data_ptr<float>();
  float* th_ptr = backbone ? th.data_ptr<float>() : nullptr;
  float* sl_ptr = slopes.data_ptr<float>();
  const float* ts_ptr = ts.data_ptr<float>();
  // The backbone's LeCun tanh is tanh(slope * z), its output scaled into the heads.
  const Vec slope(backbone ? kLecunSlope : 1.f), scale(backbone ? kLecunScale : 1.f);

  over_row_chunks(batch, 8, [&](int64_t, int64_t r0, int64_t r1) {
    const int64_t nb = r1 - r0;
    std::vector<float> z(nb * proj), g_buf(backbone ? nb * 4 * hid : 0);
    float* g = backbone ? g_buf.data() : z.data();
    for (int64_t t = 0; t < steps; ++t) {
      // z = b + x W_x^T + h W_h^T
      for (int64_t r = 0; r < nb; ++r) std::copy_n(bp, proj, z.data() + r * proj);
      gemm(nb, proj, inputs, xp + (t * batch + r0) * inputs, inputs, wxp, proj, z.data(), proj,
           true);
      gemm(nb, proj, hid, h_ptr + (t * batch + r0) * hid, hid, whp, proj, z.data(), proj, true);
      if (backbone) {
        float* thp = th_ptr + (t * batch + r0) * proj;
        const int64_t n = nb * proj;
        for (int64_t i = 0; i < n; i += kLanes) {
          const int64_t c = std::min(kLanes, n - i);
          tanh2(slope * Vec::loadu(z.data() + i, c)).store(thp + i, c);
        }
        gemm(nb, 4 * hid, proj, thp, proj, wgp, 4 * hid, g, 4 * hid, false);
      }
      const int64_t a = held.a(t), b = held.b(t, hid);
      for (int64_t r = 0; r < nb; ++r) {
        const int64_t row = t * batch + r0 + r;
        const float* gr = g + r * 4 * hid;
        const float* hp = h_ptr + row * hid;
        float* hn = h_ptr + (row + batch) * hid;
        float* sl = sl_ptr + row * 4 * hid;
        const float* tsr = ts_ptr + row * ts_cols;
        // Head pre-activation: b_g + scale * (th W_g^T), or z itself without a backbone.
        auto head = [&](int64_t k, int64_t i, int64_t c) {
          const Vec v = Vec::loadu(gr + k * hid + i, c);
          return backbone ? at::vec::fmadd(scale, v, Vec::loadu(bgp + k * hid + i, c)) : v;
        };
        for (int64_t i = 0; i < hid; i += kLanes) {
          const int64_t c = std::min(kLanes, hid - i);
          const Vec span = ts_cols == 1 ? Vec(tsr[0]) : Vec::loadu(tsr + i, c);
          const Vec u1 = tanh2(head(0, i, c));
          const Vec u2 = tanh2(head(1, i, c));
          const Vec s = sigmoid(at::vec::fmadd(head(2, i, c), span, head(3, i, c)));
          const Vec one(1.f);
          Vec d1 = one - u1 * u1;
          const Vec d2 = s * (one - u2 * u2);
          Vec dtb = s - s * s;
          if (no_gate) {
            (u1 + s * u2).store(hn + i, c);
            dtb = dtb * u2;
          } else {
            (u1 + s * (u2 - u1)).store(hn + i, c);
            d1 = d1 - d1 * s;
            dtb = dtb * (u2 - u1);
          }
          d1.store(sl + i, c);
          d2.store(sl + hid + i, c);
          (dtb * span).store(sl + 2 * hid + i, c);
          dtb.store(sl + 3 * hid + i, c);
        }
        // A held neuron keeps its state, and its heads get no gradient.
        for (int64_t i = 0; i < hid; ++i) {
          if (i >= a && i < b) continue;
          hn[i] = hp[i];
          for (int64_t k = 0; k < 4; ++k) sl[k * hid + i] = 0.f;
        }
      }
    }
    at::native::cpublas::brgemm_release(false);
  });
  return {h_all, th, slopes};
}

// dst (cols x rows) = src (rows x cols)^T, both row-major.
inline void transpose_block(const float* src, int64_t rows, int64_t cols, float* dst) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
}

// Gradients of cfc_forward's inputs: of x (T, B, I; empty unless input_grad), h0 (B, H), w_x
// (P, I), b (P), w_h (P, H) and, with a backbone, w_g (4H, P) and b_g (4H). Weight gradients
// are summed step by step while each step's blocks are in cache.
std::vector<Tensor> cfc_backward(const Tensor& d_out, const Tensor& d_final, const Tensor& x,
                                 const Tensor& w_x, const Tensor& h_all, const Tensor& slopes,
                                 const Tensor& w_h, const std::optional<Tensor>& th,
                                 const std::optional<Tensor>& w_g,
                                 const std::optional<Tensor>& hold, bool input_grad) {
  at::NoGradGuard no_grad;
  for (const auto& [t, n] : {std::pair{d_out, "d_out"}, {d_final, "d_final"}, {x, "x"},
                             {w_x, "w_x"}, {h_all, "h_all"}, {slopes, "slopes"}, {w_h, "w_h"}})
    check_cpu_float(t, n);
  const int64_t steps = slopes.size(0), batch = slopes.size(1), hid = slopes.size(2) / 4;
  const int64_t proj = w_h.size(0), inputs = x.size(2);
  const bool backbone = w_g.has_value();
  if (backbone) {
    check_cpu_float(*w_g, "w_g");
    check_cpu_float(*th, "th");
  }
  const auto opts = slopes.options();
  Tensor dx = input_grad ? at::empty({steps, batch, inputs}, opts) : at::empty({0}, opts);
  Tensor dh0 = at::empty({batch, hid}, opts);
  const int64_t chunks = chunk_count(batch, 8);
  // Per chunk, transposed: d_w_x^T (I, P), d_b (P), d_w_h^T (H, P), d_w_g^T (P, 4H), d_b_g.
  Tensor g_wx = at::zeros({chunks, inputs, proj}, opts), g_b = at::zeros({chunks, proj}, opts);
  Tensor g_wh = at::zeros({chunks, hid, proj}, opts);
  Tensor g_wg = at::zeros({backbone ? chunks : 0, proj, 4 * hid}, opts);
  Tensor g_bg = at::zeros({backbone ? chunks : 0, 4 * hid}, opts);
  Hold held{hold ? hold->data_ptr<int64_t>() : nullptr};
  const float *dop = d_out.data_ptr<float>(), *dfp = d_final.data_ptr<float>();
  const float *xp = x.data_ptr<float>(), *wxp = w_x.data_ptr<float>();
  const float *hp_all = h_all.data_ptr<float>(), *slp = slopes.data_ptr<float>();
  const float* whp = w_h.data_ptr<float>();
  const float* wgp = backbone ? w_g->data_ptr<float>() : nullptr;
  const float* th_ptr = backbone ? th->data_ptr<float>() : nullptr;
  float* dxp = input_grad ? dx.data_ptr<float>() : nullptr;
  float* dh0p = dh0.data_ptr<float>();
  const Vec c_backbone(kLecunScale * kLecunSlope);

  // Adds the column sums of the (rows, n) block m to acc (n).
  auto add_column_sums = [](const float* m, int64_t rows, int64_t n, float* acc) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < n; i += kLanes) {
        const int64_t c = std::min(kLanes, n - i);
        (Vec::loadu(acc + i, c) + Vec::loadu(m + r * n + i, c)).store(acc + i, c);
      }
  };

  over_row_chunks(batch, 8, [&](int64_t chunk, int64_t r0, int64_t r1) {
    const int64_t nb = r1 - r0;
    std::vector<float> dh_buf(nb * hid), dh_prev_buf(nb * hid), dz_buf(nb * proj);
    std::vector<float> dg_buf(backbone ? nb * 4 * hid : 0);
    std::vector<float> t_buf(nb * std::max({hid, proj, inputs}));
    float *dh = dh_buf.data(), *dh_prev = dh_prev_buf.data(), *dz = dz_buf.data();
    float* block_t = t_buf.data();
    float *gwx = g_wx[chunk].data_ptr<float>(), *gb = g_b[chunk].data_ptr<float>();
    float* gwh = g_wh[chunk].data_ptr<float>();
    float* gwg = backbone ? g_wg[chunk].data_ptr<float>() : nullptr;
    float* gbg = backbone ? g_bg[chunk].data_ptr<float>() : nullptr;
    const float* last = dop + ((steps - 1) * batch + r0) * hid;
    for (int64_t i = 0; i < nb * hid; ++i) dh[i] = dfp[r0 * hid + i] + last[i];
    for (int64_t t = steps - 1; t >= 0; --t) {
      const int64_t rows = t * batch + r0;
      float* dg = backbone ? dg_buf.data() : dz;
      const float* sl = slp + rows * 4 * hid;
      for (int64_t r = 0; r < nb; ++r)
        for (int64_t k = 0; k < 4; ++k)
          for (int64_t i = 0; i < hid; i += kLanes) {
            const int64_t c = std::min(kLanes, hid - i);
            const int64_t o = (r * 4 + k) * hid + i;
            (Vec::loadu(sl + o, c) * Vec::loadu(dh + r * hid + i, c)).store(dg + o, c);
          }
      if (backbone) {
        const float* thp = th_ptr + rows * proj;
        // d_w_g^T += th^T dg, d_b_g += column sums of dg
        transpose_block(thp, nb, proj, block_t);
        gemm(proj, 4 * hid, nb, block_t, nb, dg, 4 * hid, gwg, 4 * hid, true);
        add_column_sums(dg, nb, 4 * hid, gbg);
        gemm(nb, proj, 4 * hid, dg, 4 * hid, wgp, proj, dz, proj, false);
        const int64_t n = nb * proj;
        for (int64_t i = 0; i < n; i += kLanes) {
          const int64_t c = std::min(kLanes, n - i);
          const Vec v = Vec::loadu(thp + i, c);
          (Vec::loadu(dz + i, c) * (c_backbone - c_backbone * v * v)).store(dz + i, c);
        }
      }
      // d_w_h^T += h[t]^T dz, d_w_x^T += x[t]^T dz, d_b += column sums of dz
      transpose_block(hp_all + rows * hid, nb, hid, block_t);
      gemm(hid, proj, nb, block_t, nb, dz, proj, gwh, proj, true);
      transpose_block(xp + rows * inputs, nb, inputs, block_t);
      gemm(inputs, proj, nb, block_t, nb, dz, proj, gwx, proj, true);
      add_column_sums(dz, nb, proj, gb);
      if (input_grad) gemm(nb, inputs, proj, dz, proj, wxp, inputs, dxp + rows * inputs, inputs,
                           false);
      // dh_prev = d_out[t - 1] + dz W_h
      if (t > 0) std::copy_n(dop + ((t - 1) * batch + r0) * hid, nb * hid, dh_prev);
      gemm(nb, hid, proj, dz, proj, whp, hid, dh_prev, hid, t > 0);
      const int64_t a = held.a(t), b = held.b(t, hid);
      if (a > 0 || b < hid) {
        for (int64_t r = 0; r < nb; ++r)
          for (int64_t i = 0; i < hid; ++i)
            if (i < a || i >= b) dh_prev[r * hid + i] += dh[r * hid + i];
      }
      std::swap(dh, dh_prev);
    }
    std::copy_n(dh, nb * hid, dh0p + r0 * hid);
    at::native::cpublas::brgemm_release(false);
  });
  std::vector<Tensor> grads = {dx, dh0, g_wx.sum(0).t().contiguous(), g_b.sum(0),
                               g_wh.sum(0).t().contiguous()};
  if (backbone) {
    grads.push_back(g_wg.sum(0).t().mul_(kLecunScale).contiguous());
    grads.push_back(g_bg.sum(0));
  }
  return grads;
}

// ---------------------------------------------------------------- LTC synapses

// Synapse weights in ltc_solver.Synapses's layout: sigma, neg_sigma_mu (Nj, Ni), weights
// (Nj, 2, Ni) holding the reversal-weighted and the plain weights.
struct Synapses {
  const float* sigma;
  const float* neg_sigma_mu;
  const float* weights;
  int64_t ni, nj;
};

struct SynapseGrads {
  float* sigma;
  float* neg_sigma_mu;
  float* weights;
};

Synapses synapses(const Tensor& sigma, const Tensor& neg_sigma_mu, const Tensor& weights) {
  for (const auto& [t, n] : {std::pair{sigma, "sigma"}, {neg_sigma_mu, "neg_sigma_mu"},
                             {weights, "weights"}})
    check_cpu_float(t, n);
  return {sigma.data_ptr<float>(), neg_sigma_mu.data_ptr<float>(), weights.data_ptr<float>(),
          sigma.size(1), sigma.size(0)};
}

// Currents of R presynaptic potential rows: num[r][j], den[r][j] (ltc_solver.currents).
// R rows at once reuse every weight vector loaded.
template <int R>
void currents_rows(const float* const* v, const Synapses& s, float* const* num,
                   float* const* den) {
  for (int64_t j = 0; j < s.nj; ++j) {
    const float* sg = s.sigma + j * s.ni;
    const float* nm = s.neg_sigma_mu + j * s.ni;
    const float* we = s.weights + j * 2 * s.ni;
    const float* w = we + s.ni;
    Vec acc_num[R], acc_den[R];
    for (int r = 0; r < R; ++r) acc_num[r] = acc_den[r] = Vec(0.f);
    for (int64_t i = 0; i < s.ni; i += kLanes) {
      const int64_t c = std::min(kLanes, s.ni - i);
      const Vec vs = Vec::loadu(sg + i, c), vm = Vec::loadu(nm + i, c);
      const Vec vwe = Vec::loadu(we + i, c), vw = Vec::loadu(w + i, c);
      for (int r = 0; r < R; ++r) {
        const Vec act = sigmoid(at::vec::fmadd(vs, Vec::loadu(v[r] + i, c), vm));
        acc_num[r] = at::vec::fmadd(act, vwe, acc_num[r]);
        acc_den[r] = at::vec::fmadd(act, vw, acc_den[r]);
      }
    }
    for (int r = 0; r < R; ++r) {
      num[r][j] = hsum(acc_num[r]);
      den[r][j] = hsum(acc_den[r]);
    }
  }
}

// Adds d(v)[r] from the currents' gradients d_num[r], d_den[r], and the weight gradients to
// g (ltc_solver.synapse_backward); the activations are recomputed.
template <int R>
void synapse_backward_rows(const float* const* v, const float* const* d_num,
                           const float* const* d_den, const Synapses& s, const SynapseGrads& g,
                           float* const* d_v) {
  const Vec one(1.f);
  for (int64_t j = 0; j < s.nj; ++j) {
    const int64_t o = j * s.ni;
    const float* we = s.weights + 2 * o;
    const float* w = we + s.ni;
    float* g_we = g.weights + 2 * o;
    float* g_w = g_we + s.ni;
    Vec dp[R], dq[R];
    for (int r = 0; r < R; ++r) {
      dp[r] = Vec(d_num[r][j]);
      dq[r] = Vec(d_den[r][j]);
    }
    for (int64_t i = 0; i < s.ni; i += kLanes) {
      const int64_t c = std::min(kLanes, s.ni - i);
      const Vec vs = Vec::loadu(s.sigma + o + i, c), vm = Vec::loadu(s.neg_sigma_mu + o + i, c);
      const Vec vwe = Vec::loadu(we + i, c), vw = Vec::loadu(w + i, c);
      Vec a_we = Vec::loadu(g_we + i, c), a_w = Vec::loadu(g_w + i, c);
      Vec a_sg = Vec::loadu(g.sigma + o + i, c), a_nm = Vec::loadu(g.neg_sigma_mu + o + i, c);
      for (int r = 0; r < R; ++r) {
        const Vec vr = Vec::loadu(v[r] + i, c);
        const Vec act = sigmoid(at::vec::fmadd(vs, vr, vm));
        a_we = at::vec::fmadd(dp[r], act, a_we);
        a_w = at::vec::fmadd(dq[r], act, a_w);
        const Vec d_pre = (dp[r] * vwe + dq[r] * vw) * (act * (one - act));
        a_nm = a_nm + d_pre;
        a_sg = at::vec::fmadd(d_pre, vr, a_sg);
        at::vec::fmadd(d_pre, vs, Vec::loadu(d_v[r] + i, c)).store(d_v[r] + i, c);
      }
      a_we.store(g_we + i, c);
      a_w.store(g_w + i, c);
      a_sg.store(g.sigma + o + i, c);
      a_nm.store(g.neg_sigma_mu + o + i, c);
    }
  }
}

constexpr int kRows = 4;

// Calls f.template operator()<R>(first_row) over blocks of kRows rows, then single rows.
template <typename F>
void over_row_blocks(int64_t r0, int64_t r1, const F& f) {
  int64_t r = r0;
  for (; r + kRows <= r1; r += kRows) f.template operator()<kRows>(r);
  for (; r < r1; ++r) f.template operator()<1>(r);
}

// Per-chunk weight-gradient buffers, summed in chunk order (deterministic).
struct GradBuffers {
  Tensor sigma, neg_sigma_mu, weights;
  GradBuffers(int64_t chunks, const Synapses& s, const at::TensorOptions& o)
      : sigma(at::zeros({chunks, s.nj, s.ni}, o)),
        neg_sigma_mu(at::zeros({chunks, s.nj, s.ni}, o)),
        weights(at::zeros({chunks, s.nj, 2, s.ni}, o)) {}
  SynapseGrads chunk(int64_t c) {
    return {sigma[c].data_ptr<float>(), neg_sigma_mu[c].data_ptr<float>(),
            weights[c].data_ptr<float>()};
  }
  std::tuple<Tensor, Tensor, Tensor> summed() const {
    return {sigma.sum(0), neg_sigma_mu.sum(0), weights.sum(0)};
  }
};

std::tuple<Tensor, Tensor> ltc_currents(const Tensor& v, const Tensor& sigma,
                                        const Tensor& neg_sigma_mu, const Tensor& weights) {
  at::NoGradGuard no_grad;
  check_cpu_float(v, "v");
  const Synapses s = synapses(sigma, neg_sigma_mu, weights);
  const int64_t rows = v.size(0);
  Tensor num = at::empty({rows, s.nj}, v.options()), den = at::empty({rows, s.nj}, v.options());
  const float* vp = v.data_ptr<float>();
  float* np = num.data_ptr<float>();
  float* dp = den.data_ptr<float>();
  over_row_chunks(rows, kRows, [&](int64_t, int64_t r0, int64_t r1) {
    over_row_blocks(r0, r1, [&]<int R>(int64_t r) {
      const float* vr[R];
      float *nr[R], *dr[R];
      for (int i = 0; i < R; ++i) {
        vr[i] = vp + (r + i) * s.ni;
        nr[i] = np + (r + i) * s.nj;
        dr[i] = dp + (r + i) * s.nj;
      }
      currents_rows<R>(vr, s, nr, dr);
    });
  });
  return {num, den};
}

std::tuple<Tensor, Tensor, Tensor, Tensor> ltc_currents_backward(
    const Tensor& v, const Tensor& d_num, const Tensor& d_den, const Tensor& sigma,
    const Tensor& neg_sigma_mu, const Tensor& weights) {
  at::NoGradGuard no_grad;
  check_cpu_float(v, "v");
  check_cpu_float(d_num, "d_num");
  check_cpu_float(d_den, "d_den");
  const Synapses s = synapses(sigma, neg_sigma_mu, weights);
  const int64_t rows = v.size(0);
  Tensor d_v = at::zeros_like(v);
  GradBuffers grads(chunk_count(rows, kRows), s, v.options());
  const float *vp = v.data_ptr<float>(), *dnp = d_num.data_ptr<float>();
  const float* ddp = d_den.data_ptr<float>();
  float* dvp = d_v.data_ptr<float>();
  over_row_chunks(rows, kRows, [&](int64_t chunk, int64_t r0, int64_t r1) {
    const SynapseGrads g = grads.chunk(chunk);
    over_row_blocks(r0, r1, [&]<int R>(int64_t r) {
      const float *vr[R], *nr[R], *dr[R];
      float* gv[R];
      for (int i = 0; i < R; ++i) {
        vr[i] = vp + (r + i) * s.ni;
        gv[i] = dvp + (r + i) * s.ni;
        nr[i] = dnp + (r + i) * s.nj;
        dr[i] = ddp + (r + i) * s.nj;
      }
      synapse_backward_rows<R>(vr, nr, dr, s, g, gv);
    });
  });
  auto [g_sigma, g_nsm, g_weights] = grads.summed();
  return {d_v, g_sigma, g_nsm, g_weights};
}

// ---------------------------------------------------------------- LTC solver

// Semi-implicit Euler unfolds of a whole sequence (ltc_solver.LTCSolve.forward): returns the
// potential each unfold started from and its denominator (T, unfolds, B, N), and the states
// after every step (B, T, N).
std::tuple<Tensor, Tensor, Tensor> ltc_solve_forward(const Tensor& v0, const Tensor& cm,
                                                     const Tensor& a_num, const Tensor& a_den,
                                                     const Tensor& sigma,
                                                     const Tensor& neg_sigma_mu,
                                                     const Tensor& weights, int64_t unfolds) {
  at::NoGradGuard no_grad;
  for (const auto& [t, n] :
       {std::pair{v0, "v0"}, {cm, "cm"}, {a_num, "a_num"}, {a_den, "a_den"}})
    check_cpu_float(t, n);
  const Synapses s = synapses(sigma, neg_sigma_mu, weights);
  const int64_t batch = cm.size(0), steps = cm.size(1), n = cm.size(2);
  TORCH_CHECK(s.ni == n && s.nj == n, "recurrent synapses must be N x N");
  Tensor starts = at::empty({steps, unfolds, batch, n}, v0.options());
  Tensor denominators = at::empty_like(starts);
  Tensor states = at::empty({batch, steps, n}, v0.options());
  const float *cmp = cm.data_ptr<float>(), *anp = a_num.data_ptr<float>();
  const float *adp = a_den.data_ptr<float>(), *v0p = v0.data_ptr<float>();
  float *stp = starts.data_ptr<float>(), *dnp = denominators.data_ptr<float>();
  float* outp = states.data_ptr<float>();
  over_row_chunks(batch, kRows, [&](int64_t, int64_t r0, int64_t r1) {
    std::vector<float> buf(kRows * n * 4);
    over_row_blocks(r0, r1, [&]<int R>(int64_t r) {
      float *v[R], *num[R], *den[R], *next[R];
      for (int i = 0; i < R; ++i) {
        v[i] = buf.data() + (4 * i) * n;
        num[i] = v[i] + n;
        den[i] = v[i] + 2 * n;
        next[i] = v[i] + 3 * n;
        std::copy_n(v0p + (r + i) * n, n, v[i]);
      }
      for (int64_t t = 0; t < steps; ++t) {
        for (int64_t u = 0; u < unfolds; ++u) {
          currents_rows<R>(v, s, num, den);
          for (int i = 0; i < R; ++i) {
            const int64_t row = r + i, bt = (row * steps + t) * n;
            const int64_t tu = ((t * unfolds + u) * batch + row) * n;
            std::copy_n(v[i], n, stp + tu);
            for (int64_t j = 0; j < n; ++j) {
              const float q = (cmp[bt + j] + adp[bt + j]) + den[i][j];
              dnp[tu + j] = q;
              next[i][j] = ((anp[bt + j] + cmp[bt + j] * v[i][j]) + num[i][j]) / q;
            }
            std::swap(v[i], next[i]);
          }
        }
        for (int i = 0; i < R; ++i) std::copy_n(v[i], n, outp + ((r + i) * steps + t) * n);
      }
    });
  });
  return {starts, denominators, states};
}

// Gradients of ltc_solve_forward's inputs (ltc_solver.LTCSolve.backward): d_v0 (B, N);
// d_cm, d_a_num, d_a_den (B, T, N); and the synapse weights' in their layout.
std::vector<Tensor> ltc_solve_backward(const Tensor& d_states, const Tensor& starts,
                                       const Tensor& denominators, const Tensor& states,
                                       const Tensor& cm, const Tensor& sigma,
                                       const Tensor& neg_sigma_mu, const Tensor& weights) {
  at::NoGradGuard no_grad;
  for (const auto& [t, n] : {std::pair{d_states, "d_states"}, {starts, "starts"},
                             {denominators, "denominators"}, {states, "states"}, {cm, "cm"}})
    check_cpu_float(t, n);
  const Synapses s = synapses(sigma, neg_sigma_mu, weights);
  const int64_t steps = starts.size(0), unfolds = starts.size(1), batch = starts.size(2);
  const int64_t n = starts.size(3);
  Tensor d_v0 = at::empty({batch, n}, cm.options());
  Tensor d_cm = at::empty_like(cm), d_a_num = at::empty_like(cm), d_a_den = at::empty_like(cm);
  GradBuffers grads(chunk_count(batch, kRows), s, cm.options());
  const float *dsp = d_states.data_ptr<float>(), *stp = starts.data_ptr<float>();
  const float *dnp = denominators.data_ptr<float>(), *outp = states.data_ptr<float>();
  const float* cmp = cm.data_ptr<float>();
  float *dcm = d_cm.data_ptr<float>(), *dan = d_a_num.data_ptr<float>();
  float *dad = d_a_den.data_ptr<float>(), *dv0 = d_v0.data_ptr<float>();
  over_row_chunks(batch, kRows, [&](int64_t chunk, int64_t r0, int64_t r1) {
    const SynapseGrads g = grads.chunk(chunk);
    std::vector<float> buf(kRows * n * 7);
    over_row_blocks(r0, r1, [&]<int R>(int64_t r) {
      float *d_v[R], *d_syn[R], *d_p[R], *d_q[R], *d_num_t[R], *d_den_t[R], *d_cm_t[R];
      const float* v[R];
      for (int i = 0; i < R; ++i) {
        float* base = buf.data() + 7 * i * n;
        d_v[i] = base;
        d_syn[i] = base + n;
        d_p[i] = base + 2 * n;
        d_q[i] = base + 3 * n;
        d_num_t[i] = base + 4 * n;
        d_den_t[i] = base + 5 * n;
        d_cm_t[i] = base + 6 * n;
        std::fill_n(d_v[i], n, 0.f);
      }
      for (int64_t t = steps - 1; t >= 0; --t) {
        for (int i = 0; i < R; ++i) {
          const float* ds = dsp + ((r + i) * steps + t) * n;
          for (int64_t j = 0; j < n; ++j) d_v[i][j] += ds[j];
          std::fill_n(d_num_t[i], 3 * n, 0.f);
        }
        for (int64_t u = unfolds - 1; u >= 0; --u) {
          for (int i = 0; i < R; ++i) {
            const int64_t row = r + i, tu = ((t * unfolds + u) * batch + row) * n;
            const float* v_next = u + 1 < unfolds ? stp + tu + batch * n
                                                  : outp + (row * steps + t) * n;
            v[i] = stp + tu;
            for (int64_t j = 0; j < n; ++j) {
              // v_next = P / Q: dP = dv / Q and dQ = -dP * v_next
              const float dp = d_v[i][j] / dnp[tu + j];
              d_p[i][j] = dp;
              d_q[i][j] = -dp * v_next[j];
              d_num_t[i][j] += dp;
              d_den_t[i][j] += d_q[i][j];
              d_cm_t[i][j] += dp * v[i][j];
            }
            std::fill_n(d_syn[i], n, 0.f);
          }
          synapse_backward_rows<R>(v, d_p, d_q, s, g, d_syn);
          for (int i = 0; i < R; ++i) {
            const float* cm_t = cmp + ((r + i) * steps + t) * n;
            for (int64_t j = 0; j < n; ++j) d_v[i][j] = d_syn[i][j] + d_p[i][j] * cm_t[j];
          }
        }
        for (int i = 0; i < R; ++i) {
          const int64_t bt = ((r + i) * steps + t) * n;
          for (int64_t j = 0; j < n; ++j) {
            dan[bt + j] = d_num_t[i][j];
            dad[bt + j] = d_den_t[i][j];
            dcm[bt + j] = d_cm_t[i][j] + d_den_t[i][j];
          }
        }
      }
      for (int i = 0; i < R; ++i) std::copy_n(d_v[i], n, dv0 + (r + i) * n);
    });
  });
  auto [g_sigma, g_nsm, g_weights] = grads.summed();
  return {d_v0, d_cm, d_a_num, d_a_den, g_sigma, g_nsm, g_weights};
}

}  // namespace

TORCH_LIBRARY(liquid_control, m) {
  m.def(
      "cfc_forward(Tensor x, Tensor w_x, Tensor b, Tensor ts, Tensor h0, Tensor w_h, Tensor? w_g, "
      "Tensor? b_g, Tensor? hold, bool no_gate) -> (Tensor, Tensor, Tensor)");
  m.def(
      "cfc_backward(Tensor d_out, Tensor d_final, Tensor x, Tensor w_x, Tensor h_all, "
      "Tensor slopes, Tensor w_h, Tensor? th, Tensor? w_g, Tensor? hold, bool input_grad) "
      "-> Tensor[]");
  m.def(
      "ltc_currents(Tensor v, Tensor sigma, Tensor neg_sigma_mu, Tensor weights) "
      "-> (Tensor, Tensor)");
  m.def(
      "ltc_currents_backward(Tensor v, Tensor d_num, Tensor d_den, Tensor sigma, "
      "Tensor neg_sigma_mu, Tensor weights) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "ltc_solve_forward(Tensor v0, Tensor cm, Tensor a_num, Tensor a_den, Tensor sigma, "
      "Tensor neg_sigma_mu, Tensor weights, int unfolds) -> (Tensor, Tensor, Tensor)");
  m.def(
      "ltc_solve_backward(Tensor d_states, Tensor starts, Tensor denominators, Tensor states, "
      "Tensor cm, Tensor sigma, Tensor neg_sigma_mu, Tensor weights) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(liquid_control, CPU, m) {
  m.impl("cfc_forward", &cfc_forward);
  m.impl("cfc_backward", &cfc_backward);
  m.impl("ltc_currents", &ltc_currents);
  m.impl("ltc_currents_backward", &ltc_currents_backward);
  m.impl("ltc_solve_forward", &ltc_solve_forward);
  m.impl("ltc_solve_backward", &ltc_solve_backward);
}
