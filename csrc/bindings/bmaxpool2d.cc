// Binding of bmaxpool2d: shape/padding checks, GIL release, threading over output rows.
#include <string>

#include "common.h"
#include "onebit/dispatch.h"
#include "onebit/kernels.h"
#include "onebit/parallel.h"

namespace onebit::bindings {
namespace {

void bmaxpool2d(const CArray<const bword_t>& x, int64_t channels, int kernel_h, int kernel_w, int stride_h,
                int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right,
                nb::ndarray<bword_t, nb::c_contig, nb::device::cpu> out, int num_threads) {
  check_threads(num_threads);
  if (x.ndim() != 4) throw std::invalid_argument("bmaxpool2d: expected input of shape (N, H, W, words)");
  if (channels < 1 || static_cast<int64_t>(x.shape(3)) != packed_words(channels)) {
    throw std::invalid_argument("bmaxpool2d: channels=" + std::to_string(channels) + " needs " +
                                std::to_string(packed_words(channels)) + " words, got " + std::to_string(x.shape(3)));
  }
  if (kernel_h < 1 || kernel_w < 1 || stride_h < 1 || stride_w < 1) {
    throw std::invalid_argument("bmaxpool2d: kernel and stride must be >= 1");
  }
  const int pads[4] = {pad_top, pad_bottom, pad_left, pad_right};
  const int limits[4] = {kernel_h, kernel_h, kernel_w, kernel_w};
  for (int i = 0; i < 4; ++i) {
    if (pads[i] < 0 || pads[i] >= limits[i]) {
      throw std::invalid_argument("bmaxpool2d: each pad must be in [0, kernel size), got " + std::to_string(pads[i]));
    }
  }
  BMaxPool2dShape s{};
  s.batch = x.shape(0);
  s.in_h = x.shape(1);
  s.in_w = x.shape(2);
  s.channels = channels;
  s.kernel_h = kernel_h;
  s.kernel_w = kernel_w;
  s.stride_h = stride_h;
  s.stride_w = stride_w;
  s.pad_top = pad_top;
  s.pad_left = pad_left;
  const int64_t span_h = s.in_h + pad_top + pad_bottom, span_w = s.in_w + pad_left + pad_right;
  if (span_h < kernel_h || span_w < kernel_w) {
    throw std::invalid_argument("bmaxpool2d: window larger than padded input");
  }
  s.out_h = (span_h - kernel_h) / stride_h + 1;
  s.out_w = (span_w - kernel_w) / stride_w + 1;
  const int64_t words = packed_words(channels);
  auto dim = [&](size_t d) { return static_cast<int64_t>(out.shape(d)); };
  if (out.ndim() != 4 || dim(0) != s.batch || dim(1) != s.out_h || dim(2) != s.out_w || dim(3) != words) {
    throw std::invalid_argument("bmaxpool2d: output must have shape (" + std::to_string(s.batch) + ", " +
                                std::to_string(s.out_h) + ", " + std::to_string(s.out_w) + ", " +
                                std::to_string(words) + ")");
  }
  static Kernel<bmaxpool2d_fn> kernel("bmaxpool2d");
  const bword_t* src = x.data();
  bword_t* dst = out.data();
  nb::gil_scoped_release release;
  bmaxpool2d_fn fn = kernel();
  parallel_for(s.batch * s.out_h, num_threads, [&](int64_t b, int64_t e) { fn(src, s, b, e, dst); });
}

void bind(nb::module_& m) {
  m.def("bmaxpool2d", &bmaxpool2d, nb::arg("x"), nb::arg("channels"), nb::arg("kernel_h"), nb::arg("kernel_w"),
        nb::arg("stride_h"), nb::arg("stride_w"), nb::arg("pad_top"), nb::arg("pad_bottom"), nb::arg("pad_left"),
        nb::arg("pad_right"), nb::arg("out"), nb::arg("num_threads") = 1);
}

}  // namespace

ONEBIT_REGISTER_BINDINGS(bind);

}  // namespace onebit::bindings
