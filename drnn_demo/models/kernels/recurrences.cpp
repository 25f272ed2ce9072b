// Element-wise recurrences of LRN and SRU for the CPU, forward and backward, as torch operators
// (namespace drnn_demo_kernels). Built on first use by drnn_demo/models/kernels/__init__.py.
//
// Every operator works on time-first, contiguous tensors and writes into buffers allocated by the
// caller. The work is split into independent "columns" (one batch row b times a block of at most
// BLOCK hidden units) that run in parallel on torch's own thread pool (at::parallel_for, so
// torch.set_num_threads applies); each column runs the whole loop over time by itself, so there is
// no barrier per step and every step is a single pass over that column's memory. The inner loop
// over the units of a block is vectorised (#pragma omp simd).
//
// The equations are documented in drnn_demo/models/lrn.py (LRNRecurrence) and
// drnn_demo/models/sru.py (SRURecurrence); the torch-op implementations there are the reference.

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

namespace {

constexpr int64_t BLOCK = 64;            // hidden units per column
constexpr int64_t GRAIN_ELEMENTS = 1 << 15;  // element-steps below which one thread does everything

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// Splits the columns (b, block of units) into one contiguous range per thread and calls
// fn(begin, end) for each range, in parallel. The callee loops over time outside and over its
// columns inside: consecutive columns are consecutive in memory, so every step of a thread reads
// and writes a few long contiguous runs (streams the prefetcher follows), and a thread owns its
// columns for all steps (no barrier per step).
template <typename F>
void for_column_ranges(int64_t length, int64_t batch, int64_t hidden, const F& fn) {
  const int64_t columns = batch * ((hidden + BLOCK - 1) / BLOCK);
  const int64_t per_column = std::max<int64_t>(1, length * std::min(hidden, BLOCK));
  const int64_t grain = std::max<int64_t>(1, GRAIN_ELEMENTS / per_column);
  at::parallel_for(0, columns, grain, fn);
}

struct Column {
  int64_t b, j0, n;  // batch row, first unit, units
};

inline Column column(int64_t col, int64_t hidden) {
  const int64_t blocks = (hidden + BLOCK - 1) / BLOCK;
  const int64_t b = col / blocks, j0 = (col % blocks) * BLOCK;
  return {b, j0, std::min(hidden, j0 + BLOCK) - j0};
}

void check(const at::Tensor& t, const at::Tensor& like, const char* name, at::IntArrayRef shape) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), name, " must have dtype ", like.scalar_type());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
  TORCH_CHECK(t.sizes() == shape, name, " must have shape ", shape, ", got ", t.sizes());
}

// ------------------------------------------------------------------------------------------- LRN
// proj (L, B, 3H) = [p, q, r]; states (L+1, B, H): h0 at index 0 (L if reverse), h_t at t+1 (t);
// gates (L, 2, B, H): i_t, f_t.

template <typename T, bool Tanh>
void lrn_forward_impl(const T* __restrict proj, const T* __restrict h0, T* __restrict states,
                      T* __restrict gates, int64_t L, int64_t B, int64_t H, bool reverse) {
  for_column_ranges(L, B, H, [&](int64_t begin, int64_t end) {
    for (int64_t col = begin; col < end; ++col) {
      const Column c = column(col, H);
      T* first = states + ((reverse ? L : 0) * B + c.b) * H + c.j0;
      for (int64_t j = 0; j < c.n; ++j) first[j] = h0[c.b * H + c.j0 + j];
    }
    for (int64_t s = 0; s < L; ++s) {
      const int64_t t = reverse ? L - 1 - s : s;
      for (int64_t col = begin; col < end; ++col) {
        const Column c = column(col, H);
        const T* p = proj + (t * B + c.b) * 3 * H + c.j0;
        const T* q = p + H;
        const T* r = p + 2 * H;
        const T* hp = states + ((reverse ? t + 1 : t) * B + c.b) * H + c.j0;
        T* h = states + ((reverse ? t : t + 1) * B + c.b) * H + c.j0;
        T* gi = gates + (2 * t * B + c.b) * H + c.j0;
        T* gf = gates + ((2 * t + 1) * B + c.b) * H + c.j0;
#pragma omp simd
        for (int64_t j = 0; j < c.n; ++j) {
          const T prev = hp[j];
          const T i = sigmoid(p[j] + prev);
          const T f = sigmoid(q[j] - prev);
          const T a = i * r[j] + f * prev;
          gi[j] = i;
          gf[j] = f;
          h[j] = Tanh ? T(2) * sigmoid(T(2) * a) - T(1) : a;  // tanh(a) = 2 sigma(2a) - 1
        }
      }
    }
  });
}

// dL/dh_t = grad_output_t + carry; carry = dL/dh_{t-1} through step t
//   = g'(a_t) dL/dh_t (f_t + r_t i_t (1 - i_t) - h_{t-1} f_t (1 - f_t)).
template <typename T, bool Tanh>
void lrn_backward_impl(const T* __restrict grad_output, const T* __restrict proj, const T* __restrict states,
                       const T* __restrict gates, T* __restrict grad_proj, T* __restrict grad_h0, int64_t L,
                       int64_t B, int64_t H, bool reverse) {
  for_column_ranges(L, B, H, [&](int64_t begin, int64_t end) {
    std::vector<T> carries((end - begin) * BLOCK, T(0));
    for (int64_t s = L - 1; s >= 0; --s) {
      const int64_t t = reverse ? L - 1 - s : s;
      for (int64_t col = begin; col < end; ++col) {
        const Column c = column(col, H);
        T* carry = carries.data() + (col - begin) * BLOCK;
        const int64_t off = (t * B + c.b) * H + c.j0;
        const T* go = grad_output + off;
        const T* r = proj + (t * B + c.b) * 3 * H + 2 * H + c.j0;
        const T* hp = states + ((reverse ? t + 1 : t) * B + c.b) * H + c.j0;
        const T* h = states + ((reverse ? t : t + 1) * B + c.b) * H + c.j0;
        const T* gi = gates + (2 * t * B + c.b) * H + c.j0;
        const T* gf = gates + ((2 * t + 1) * B + c.b) * H + c.j0;
        T* gp = grad_proj + (t * B + c.b) * 3 * H + c.j0;
        T* gq = gp + H;
        T* gr = gp + 2 * H;
#pragma omp simd
        for (int64_t j = 0; j < c.n; ++j) {
          const T i = gi[j], f = gf[j], prev = hp[j];
          const T gh = go[j] + carry[j];
          const T ga = Tanh ? gh * (T(1) - h[j] * h[j]) : gh;
          const T di = i * (T(1) - i), df = f * (T(1) - f);
          gp[j] = ga * r[j] * di;
          gq[j] = ga * prev * df;
          gr[j] = ga * i;
          carry[j] = ga * (f + r[j] * di - prev * df);
        }
      }
    }
    for (int64_t col = begin; col < end; ++col) {
      const Column c = column(col, H);
      for (int64_t j = 0; j < c.n; ++j) grad_h0[c.b * H + c.j0 + j] = carries[(col - begin) * BLOCK + j];
    }
  });
}

void lrn_forward(const at::Tensor& proj, const at::Tensor& h0, at::Tensor& states, at::Tensor& gates, bool tanh,
                 bool reverse) {
  TORCH_CHECK(proj.dim() == 3 && proj.size(2) % 3 == 0, "proj must be (L, B, 3H)");
  const int64_t L = proj.size(0), B = proj.size(1), H = proj.size(2) / 3;
  check(proj, proj, "proj", proj.sizes());
  check(h0, proj, "h0", {B, H});
  check(states, proj, "states", {L + 1, B, H});
  check(gates, proj, "gates", {L, 2, B, H});
  AT_DISPATCH_FLOATING_TYPES(proj.scalar_type(), "lrn_forward", [&] {
    auto fn = tanh ? lrn_forward_impl<scalar_t, true> : lrn_forward_impl<scalar_t, false>;
    fn(proj.const_data_ptr<scalar_t>(), h0.const_data_ptr<scalar_t>(), states.mutable_data_ptr<scalar_t>(),
       gates.mutable_data_ptr<scalar_t>(), L, B, H, reverse);
  });
}

void lrn_backward(const at::Tensor& grad_output, const at::Tensor& proj, const at::Tensor& states,
                  const at::Tensor& gates, at::Tensor& grad_proj, at::Tensor& grad_h0, bool tanh, bool reverse) {
  TORCH_CHECK(proj.dim() == 3 && proj.size(2) % 3 == 0, "proj must be (L, B, 3H)");
  const int64_t L = proj.size(0), B = proj.size(1), H = proj.size(2) / 3;
  check(proj, proj, "proj", proj.sizes());
  check(grad_output, proj, "grad_output", {L, B, H});
  check(states, proj, "states", {L + 1, B, H});
  check(gates, proj, "gates", {L, 2, B, H});
  check(grad_proj, proj, "grad_proj", proj.sizes());
  check(grad_h0, proj, "grad_h0", {B, H});
  AT_DISPATCH_FLOATING_TYPES(proj.scalar_type(), "lrn_backward", [&] {
    auto fn = tanh ? lrn_backward_impl<scalar_t, true> : lrn_backward_impl<scalar_t, false>;
    fn(grad_output.const_data_ptr<scalar_t>(), proj.const_data_ptr<scalar_t>(), states.const_data_ptr<scalar_t>(),
       gates.const_data_ptr<scalar_t>(), grad_proj.mutable_data_ptr<scalar_t>(),
       grad_h0.mutable_data_ptr<scalar_t>(), L, B, H, reverse);
  });
}

// ------------------------------------------------------------------------------------------- SRU
// u (L, B, k, N); the skip x'_t is none (Skip = 0), skip_scale * skip_t (1) or U_3 (2, k = 4).
// forget, reset, states (L, B, N): f_t, r_t, c_t; h (L, B, N).

template <typename T, int Skip, bool Mask>
void sru_forward_impl(const T* __restrict u, const T* __restrict skip, const T* __restrict weight_c,
                      const T* __restrict bias, const T* __restrict c0, const T* __restrict mask, T skip_scale,
                      T* __restrict h, T* __restrict forget, T* __restrict reset, T* __restrict states, int64_t L,
                      int64_t B, int64_t k, int64_t N) {
  const T *v_f = weight_c, *v_r = weight_c + N, *b_f = bias, *b_r = bias + N;
  for_column_ranges(L, B, N, [&](int64_t begin, int64_t end) {
    for (int64_t t = 0; t < L; ++t) {
      for (int64_t col = begin; col < end; ++col) {
        const Column cl = column(col, N);
        const int64_t j0 = cl.j0, off = (t * B + cl.b) * N + j0;
        const T* cp = t > 0 ? states + off - B * N : c0 + cl.b * N + j0;
        const T* m = Mask ? mask + cl.b * N + j0 : nullptr;
        const T* u0 = u + (t * B + cl.b) * k * N + j0;
        const T *u1 = u0 + N, *u2 = u0 + 2 * N, *u3 = u0 + 3 * N;
        const T* x = Skip == 1 ? skip + off : nullptr;
#pragma omp simd
        for (int64_t j = 0; j < cl.n; ++j) {
          const T prev = cp[j];
          const T f = sigmoid(u1[j] + v_f[j0 + j] * prev + b_f[j0 + j]);
          const T r = sigmoid(u2[j] + v_r[j0 + j] * prev + b_r[j0 + j]);
          const T cur = u0[j] + f * (prev - u0[j]);
          const T shown = Mask ? cur * m[j] : cur;
          T out;
          if constexpr (Skip == 0) {
            out = r * shown;
          } else {
            const T xs = Skip == 1 ? skip_scale * x[j] : u3[j];
            out = xs + r * (shown - xs);
          }
          forget[off + j] = f;
          reset[off + j] = r;
          states[off + j] = cur;
          h[off + j] = out;
        }
      }
    }
  });
}

// G_t = D_t + carry, carry <- E_t + A_t G_t (= dL/dc_{t-1}); see SRURecurrence in sru.py.
// partial (B, 4, N): per batch row, the sums over time of dL/dv_f, dL/dv_r, dL/db_f, dL/db_r.
template <typename T, int Skip, bool Mask>
void sru_backward_impl(const T* __restrict grad_h, const T* __restrict grad_c_n, const T* __restrict u,
                       const T* __restrict skip, const T* __restrict weight_c, const T* __restrict c0,
                       const T* __restrict mask, T skip_scale, const T* __restrict forget,
                       const T* __restrict reset, const T* __restrict states, T* __restrict grad_u,
                       T* __restrict grad_skip, T* __restrict grad_c0, T* __restrict partial, int64_t L, int64_t B,
                       int64_t k, int64_t N) {
  const T *v_f = weight_c, *v_r = weight_c + N;
  for_column_ranges(L, B, N, [&](int64_t begin, int64_t end) {
    const int64_t size = (end - begin) * BLOCK;
    std::vector<T> carries(size);
    std::vector<double> sums(4 * size, 0.0);  // per column: dL/dv_f, dL/dv_r, dL/db_f, dL/db_r
    for (int64_t col = begin; col < end; ++col) {
      const Column cl = column(col, N);
      for (int64_t j = 0; j < cl.n; ++j) carries[(col - begin) * BLOCK + j] = grad_c_n[cl.b * N + cl.j0 + j];
    }
    for (int64_t t = L - 1; t >= 0; --t) {
      for (int64_t col = begin; col < end; ++col) {
        const Column cl = column(col, N);
        T* carry = carries.data() + (col - begin) * BLOCK;
        double* acc = sums.data() + (col - begin) * 4 * BLOCK;
        const int64_t j0 = cl.j0, off = (t * B + cl.b) * N + j0;
        const T* cp = t > 0 ? states + off - B * N : c0 + cl.b * N + j0;
        const T* m = Mask ? mask + cl.b * N + j0 : nullptr;
        const T* u0 = u + (t * B + cl.b) * k * N + j0;
        const T* u3 = u0 + 3 * N;
        T* gu0 = grad_u + (t * B + cl.b) * k * N + j0;
        T *gu1 = gu0 + N, *gu2 = gu0 + 2 * N, *gu3 = gu0 + 3 * N;
        const T* x = Skip == 1 ? skip + off : nullptr;
        T* gx = Skip == 1 ? grad_skip + off : nullptr;
#pragma omp simd
        for (int64_t j = 0; j < cl.n; ++j) {
          const T g = grad_h[off + j], f = forget[off + j], r = reset[off + j], cur = states[off + j];
          const T prev = cp[j];
          const T shown = Mask ? cur * m[j] : cur;
          T diff;
          if constexpr (Skip == 0) {
            diff = shown;
          } else if constexpr (Skip == 1) {
            diff = shown - skip_scale * x[j];
            gx[j] = g * (T(1) - r) * skip_scale;
          } else {
            diff = shown - u3[j];
            gu3[j] = g * (T(1) - r);
          }
          const T grad_r = g * diff * (r * (T(1) - r));
          const T direct = Mask ? g * r * m[j] : g * r;
          const T slope = f * (T(1) - f) * (prev - u0[j]);
          const T total = direct + carry[j];
          const T grad_f = total * slope;
          carry[j] = grad_r * v_r[j0 + j] + total * (f + slope * v_f[j0 + j]);
          gu0[j] = total * (T(1) - f);
          gu1[j] = grad_f;
          gu2[j] = grad_r;
          acc[j] += double(grad_f * prev);
          acc[BLOCK + j] += double(grad_r * prev);
          acc[2 * BLOCK + j] += double(grad_f);
          acc[3 * BLOCK + j] += double(grad_r);
        }
      }
    }
    for (int64_t col = begin; col < end; ++col) {
      const Column cl = column(col, N);
      const T* carry = carries.data() + (col - begin) * BLOCK;
      const double* acc = sums.data() + (col - begin) * 4 * BLOCK;
      T* row = partial + cl.b * 4 * N + cl.j0;
      for (int64_t j = 0; j < cl.n; ++j) {
        grad_c0[cl.b * N + cl.j0 + j] = carry[j];
        for (int q = 0; q < 4; ++q) row[q * N + j] = T(acc[q * BLOCK + j]);
      }
    }
  });
}

// Picks the template for (skip kind, mask) at run time.
template <typename F>
void with_variant(int skip_kind, bool has_mask, const F& fn) {
  auto pick = [&](auto skip) {
    if (has_mask) {
      fn(skip, std::true_type{});
    } else {
      fn(skip, std::false_type{});
    }
  };
  if (skip_kind == 0) {
    pick(std::integral_constant<int, 0>{});
  } else if (skip_kind == 1) {
    pick(std::integral_constant<int, 1>{});
  } else {
    pick(std::integral_constant<int, 2>{});
  }
}

template <typename T>
const T* optional_ptr(const std::optional<at::Tensor>& t) {
  return t.has_value() ? t->const_data_ptr<T>() : nullptr;
}

int check_sru(const at::Tensor& u, const std::optional<at::Tensor>& skip, const at::Tensor& weight_c,
              const at::Tensor& bias, const at::Tensor& c0, const std::optional<at::Tensor>& mask) {
  TORCH_CHECK(u.dim() == 4 && (u.size(2) == 3 || u.size(2) == 4), "u must be (L, B, k, N) with k = 3 or 4");
  const int64_t L = u.size(0), B = u.size(1), N = u.size(3);
  check(u, u, "u", u.sizes());
  check(weight_c, u, "weight_c", {2 * N});
  check(bias, u, "bias", {2 * N});
  check(c0, u, "c0", {B, N});
  if (mask.has_value()) check(*mask, u, "mask", {B, N});
  if (u.size(2) == 4) return 2;
  if (skip.has_value()) {
    check(*skip, u, "skip", {L, B, N});
    return 1;
  }
  return 0;
}

void sru_forward(const at::Tensor& u, const std::optional<at::Tensor>& skip, const at::Tensor& weight_c,
                 const at::Tensor& bias, const at::Tensor& c0, const std::optional<at::Tensor>& mask,
                 double skip_scale, at::Tensor& h, at::Tensor& forget, at::Tensor& reset, at::Tensor& states) {
  const int skip_kind = check_sru(u, skip, weight_c, bias, c0, mask);
  const int64_t L = u.size(0), B = u.size(1), k = u.size(2), N = u.size(3);
  for (const at::Tensor* t : {&h, &forget, &reset, &states}) check(*t, u, "outputs", {L, B, N});
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "sru_forward", [&] {
    with_variant(skip_kind, mask.has_value(), [&](auto skip_c, auto mask_c) {
      sru_forward_impl<scalar_t, decltype(skip_c)::value, decltype(mask_c)::value>(
          u.const_data_ptr<scalar_t>(), optional_ptr<scalar_t>(skip), weight_c.const_data_ptr<scalar_t>(),
          bias.const_data_ptr<scalar_t>(), c0.const_data_ptr<scalar_t>(), optional_ptr<scalar_t>(mask),
          scalar_t(skip_scale), h.mutable_data_ptr<scalar_t>(), forget.mutable_data_ptr<scalar_t>(),
          reset.mutable_data_ptr<scalar_t>(), states.mutable_data_ptr<scalar_t>(), L, B, k, N);
    });
  });
}

void sru_backward(const at::Tensor& grad_h, const at::Tensor& grad_c_n, const at::Tensor& u,
                  const std::optional<at::Tensor>& skip, const at::Tensor& weight_c, const at::Tensor& c0,
                  const std::optional<at::Tensor>& mask, double skip_scale, const at::Tensor& forget,
                  const at::Tensor& reset, const at::Tensor& states, at::Tensor& grad_u,
                  const std::optional<at::Tensor>& grad_skip, at::Tensor& grad_c0, at::Tensor& partial) {
  const int skip_kind = check_sru(u, skip, weight_c, weight_c, c0, mask);
  const int64_t L = u.size(0), B = u.size(1), k = u.size(2), N = u.size(3);
  for (const at::Tensor* t : {&grad_h, &forget, &reset, &states}) check(*t, u, "inputs", {L, B, N});
  check(grad_c_n, u, "grad_c_n", {B, N});
  check(grad_u, u, "grad_u", u.sizes());
  check(grad_c0, u, "grad_c0", {B, N});
  check(partial, u, "partial", {B, 4, N});
  TORCH_CHECK(skip_kind != 1 || grad_skip.has_value(), "grad_skip is needed with a skip");
  if (skip_kind == 1) check(*grad_skip, u, "grad_skip", {L, B, N});
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "sru_backward", [&] {
    scalar_t* gx = skip_kind == 1 ? grad_skip->mutable_data_ptr<scalar_t>() : nullptr;
    with_variant(skip_kind, mask.has_value(), [&](auto skip_c, auto mask_c) {
      sru_backward_impl<scalar_t, decltype(skip_c)::value, decltype(mask_c)::value>(
          grad_h.const_data_ptr<scalar_t>(), grad_c_n.const_data_ptr<scalar_t>(), u.const_data_ptr<scalar_t>(),
          optional_ptr<scalar_t>(skip), weight_c.const_data_ptr<scalar_t>(), c0.const_data_ptr<scalar_t>(),
          optional_ptr<scalar_t>(mask), scalar_t(skip_scale), forget.const_data_ptr<scalar_t>(),
          reset.const_data_ptr<scalar_t>(), states.const_data_ptr<scalar_t>(), grad_u.mutable_data_ptr<scalar_t>(),
          gx, grad_c0.mutable_data_ptr<scalar_t>(), partial.mutable_data_ptr<scalar_t>(), L, B, k, N);
    });
  });
}

}  // namespace

TORCH_LIBRARY(drnn_demo_kernels, m) {
  m.def("lrn_forward(Tensor proj, Tensor h0, Tensor(a!) states, Tensor(b!) gates, bool tanh, bool reverse) -> ()");
  m.def(
      "lrn_backward(Tensor grad_output, Tensor proj, Tensor states, Tensor gates, Tensor(a!) grad_proj, "
      "Tensor(b!) grad_h0, bool tanh, bool reverse) -> ()");
  m.def(
      "sru_forward(Tensor u, Tensor? skip, Tensor weight_c, Tensor bias, Tensor c0, Tensor? mask, float skip_scale, "
      "Tensor(a!) h, Tensor(b!) forget, Tensor(c!) reset, Tensor(d!) states) -> ()");
  m.def(
      "sru_backward(Tensor grad_h, Tensor grad_c_n, Tensor u, Tensor? skip, Tensor weight_c, Tensor c0, "
      "Tensor? mask, float skip_scale, Tensor forget, Tensor reset, Tensor states, Tensor(a!) grad_u, "
      "Tensor(b!)? grad_skip, Tensor(c!) grad_c0, Tensor(d!) partial) -> ()");
}

TORCH_LIBRARY_IMPL(drnn_demo_kernels, CPU, m) {
  m.impl("lrn_forward", &lrn_forward);
  m.impl("lrn_backward", &lrn_backward);
  m.impl("sru_forward", &sru_forward);
  m.impl("sru_backward", &sru_backward);
}
