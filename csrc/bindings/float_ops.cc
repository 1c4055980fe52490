// Bindings of the runtime's float32 kernels: fconv2d_direct, fdwconv2d (NHWC convolutions with
// a fused bias + clamp epilogue) and channel_affine. Checks shapes, releases the GIL, threads
// over output rows. Optional per-channel arrays are passed as empty arrays (size 0 = absent).
#include <cmath>
#include <string>

#include "common.h"
#include "onebit/dispatch.h"
#include "onebit/kernels.h"
#include "onebit/parallel.h"

namespace onebit::bindings {
namespace {

constexpr int64_t kMinElementsPerThread = 32 * 1024;  // channel_affine: ~4 us of streaming per thread

using F32In = CArray<const float>;
using F32Out = nb::ndarray<float, nb::c_contig, nb::device::cpu>;

const float* optional_vector(const F32In& v, int64_t n, const char* what) {
  if (v.size() == 0) return nullptr;
  if (v.ndim() != 1 || static_cast<int64_t>(v.shape(0)) != n) {
    throw std::invalid_argument(std::string(what) + " must have shape (" + std::to_string(n) + ",) or be empty");
  }
  return v.data();
}

FConv2dShape conv_shape(const F32In& x, int64_t out_channels, int kernel_h, int kernel_w, int stride_h,
                        int stride_w, int dilation_h, int dilation_w, int pad_top, int pad_bottom, int pad_left,
                        int pad_right, const F32Out& out, const char* op) {
  if (x.ndim() != 4) throw std::invalid_argument(std::string(op) + ": expected input (N, H, W, C)");
  if (kernel_h < 1 || kernel_w < 1 || stride_h < 1 || stride_w < 1 || dilation_h < 1 || dilation_w < 1 ||
      pad_top < 0 || pad_bottom < 0 || pad_left < 0 || pad_right < 0) {
    throw std::invalid_argument(std::string(op) + ": kernel, stride, dilation must be >= 1 and pads >= 0");
  }
  FConv2dShape s{};
  s.batch = x.shape(0);
  s.in_h = x.shape(1);
  s.in_w = x.shape(2);
  s.channels = x.shape(3);
  s.out_channels = out_channels;
  s.kernel_h = kernel_h;
  s.kernel_w = kernel_w;
  s.stride_h = stride_h;
  s.stride_w = stride_w;
  s.dilation_h = dilation_h;
  s.dilation_w = dilation_w;
  s.pad_top = pad_top;
  s.pad_left = pad_left;
  const int64_t span_h = int64_t{dilation_h} * (kernel_h - 1) + 1, span_w = int64_t{dilation_w} * (kernel_w - 1) + 1;
  const int64_t ph = s.in_h + pad_top + pad_bottom, pw = s.in_w + pad_left + pad_right;
  if (ph < span_h || pw < span_w) throw std::invalid_argument(std::string(op) + ": window larger than padded input");
  s.out_h = (ph - span_h) / stride_h + 1;
  s.out_w = (pw - span_w) / stride_w + 1;
  auto dim = [&](size_t d) { return static_cast<int64_t>(out.shape(d)); };
  if (out.ndim() != 4 || dim(0) != s.batch || dim(1) != s.out_h || dim(2) != s.out_w || dim(3) != out_channels) {
    throw std::invalid_argument(std::string(op) + ": output must have shape (" + std::to_string(s.batch) + ", " +
                                std::to_string(s.out_h) + ", " + std::to_string(s.out_w) + ", " +
                                std::to_string(out_channels) + ")");
  }
  return s;
}

void fconv2d_direct(const F32In& x, const F32In& w_hwio, const F32In& bias, float clamp_min, float clamp_max,
                    int stride_h, int stride_w, int dilation_h, int dilation_w, int pad_top, int pad_bottom,
                    int pad_left, int pad_right, F32Out out, int num_threads) {
  check_threads(num_threads);
  if (w_hwio.ndim() != 4 || x.ndim() != 4 || w_hwio.shape(2) != x.shape(3)) {
    throw std::invalid_argument("fconv2d_direct: weights must be HWIO (kh, kw, C, O) with C of the input");
  }
  const int64_t o = w_hwio.shape(3);
  FConv2dShape s = conv_shape(x, o, static_cast<int>(w_hwio.shape(0)), static_cast<int>(w_hwio.shape(1)), stride_h,
                              stride_w, dilation_h, dilation_w, pad_top, pad_bottom, pad_left, pad_right, out,
                              "fconv2d_direct");
  const float* b = optional_vector(bias, o, "bias");
  static Kernel<fconv2d_direct_fn> kernel("fconv2d_direct");
  const float *src = x.data(), *w = w_hwio.data();
  float* dst = out.data();
  nb::gil_scoped_release release;
  fconv2d_direct_fn fn = kernel();
  parallel_for(s.batch * s.out_h, num_threads,
               [&](int64_t rb, int64_t re) { fn(src, w, b, clamp_min, clamp_max, s, rb, re, dst); });
}

void fdwconv2d(const F32In& x, const F32In& w_hwc, const F32In& bias, float clamp_min, float clamp_max,
               int stride_h, int stride_w, int dilation_h, int dilation_w, int pad_top, int pad_bottom, int pad_left,
               int pad_right, F32Out out, int num_threads) {
  check_threads(num_threads);
  if (w_hwc.ndim() != 3 || x.ndim() != 4 || w_hwc.shape(2) != x.shape(3)) {
    throw std::invalid_argument("fdwconv2d: weights must be HWC (kh, kw, C) with C of the input");
  }
  const int64_t c = x.shape(3);
  FConv2dShape s = conv_shape(x, c, static_cast<int>(w_hwc.shape(0)), static_cast<int>(w_hwc.shape(1)), stride_h,
                              stride_w, dilation_h, dilation_w, pad_top, pad_bottom, pad_left, pad_right, out,
                              "fdwconv2d");
  const float* b = optional_vector(bias, c, "bias");
  static Kernel<fdwconv2d_fn> kernel("fdwconv2d");
  const float *src = x.data(), *w = w_hwc.data();
  float* dst = out.data();
  nb::gil_scoped_release release;
  fdwconv2d_fn fn = kernel();
  parallel_for(s.batch * s.out_h, num_threads,
               [&](int64_t rb, int64_t re) { fn(src, w, b, clamp_min, clamp_max, s, rb, re, dst); });
}

void channel_affine(const F32In& x, const F32In& scale, const F32In& bias, const F32In& alpha, float clamp_min,
                    float clamp_max, F32Out out, int num_threads) {
  check_threads(num_threads);
  if (x.ndim() < 1) throw std::invalid_argument("channel_affine: expected x of shape (..., C)");
  if (out.size() != x.size() || out.ndim() != x.ndim()) {
    throw std::invalid_argument("channel_affine: out must have the shape of x");
  }
  for (size_t d = 0; d < x.ndim(); ++d) {
    if (out.shape(d) != x.shape(d)) throw std::invalid_argument("channel_affine: out must have the shape of x");
  }
  const int64_t c = x.shape(x.ndim() - 1);
  const int64_t rows = c > 0 ? static_cast<int64_t>(x.size()) / c : 0;
  const float* s = optional_vector(scale, c, "scale");
  const float* b = optional_vector(bias, c, "bias");
  const float* a = optional_vector(alpha, c, "alpha");
  static Kernel<channel_affine_fn> kernel("channel_affine");
  const float* src = x.data();
  float* dst = out.data();
  nb::gil_scoped_release release;
  channel_affine_fn fn = kernel();
  // At least kMinElementsPerThread elements per thread (a few microseconds of streaming).
  num_threads = threads_for(rows * c, kMinElementsPerThread, num_threads);
  if (s || b || a) {
    parallel_for(rows, num_threads, [&](int64_t rb, int64_t re) {
      fn(src + rb * c, s, b, a, clamp_min, clamp_max, re - rb, c, dst + rb * c);
    });
  } else {  // element-wise: split the flat range in multiples of 64 floats
    parallel_for_grain(rows * c, 64, num_threads, [&](int64_t eb, int64_t ee) {
      fn(src + eb, nullptr, nullptr, nullptr, clamp_min, clamp_max, 1, ee - eb, dst + eb);
    });
  }
}

void bind(nb::module_& m) {
  m.def("fconv2d_direct", &fconv2d_direct, nb::arg("x"), nb::arg("w_hwio"), nb::arg("bias"), nb::arg("clamp_min"),
        nb::arg("clamp_max"), nb::arg("stride_h"), nb::arg("stride_w"), nb::arg("dilation_h"), nb::arg("dilation_w"),
        nb::arg("pad_top"), nb::arg("pad_bottom"), nb::arg("pad_left"), nb::arg("pad_right"), nb::arg("out"),
        nb::arg("num_threads") = 1);
  m.def("fdwconv2d", &fdwconv2d, nb::arg("x"), nb::arg("w_hwc"), nb::arg("bias"), nb::arg("clamp_min"),
        nb::arg("clamp_max"), nb::arg("stride_h"), nb::arg("stride_w"), nb::arg("dilation_h"), nb::arg("dilation_w"),
        nb::arg("pad_top"), nb::arg("pad_bottom"), nb::arg("pad_left"), nb::arg("pad_right"), nb::arg("out"),
        nb::arg("num_threads") = 1);
  m.def("channel_affine", &channel_affine, nb::arg("x"), nb::arg("scale"), nb::arg("bias"), nb::arg("alpha"),
        nb::arg("clamp_min"), nb::arg("clamp_max"), nb::arg("out"), nb::arg("num_threads") = 1);
}

}  // namespace

ONEBIT_REGISTER_BINDINGS(bind);

}  // namespace onebit::bindings
