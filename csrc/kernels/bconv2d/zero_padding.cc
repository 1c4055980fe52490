// Zero-padding correction for the fast (im2col + BGEMM) binary convolution paths.
//
// The fast paths gather padded taps as all-zero words, i.e. as +1 inputs ("one-padding"), so
// they compute  acc_one = sum_{valid taps} x.w + sum_{padded taps} (+1).w.  With zero-padding
// a padded tap contributes 0, hence
//     acc_zero[p][o] = acc_one[p][o] - sum_{padded taps t of position p} wsum[o][t],
//     wsum[o][t] = sum_c w[o][t][c] = c_g - 2 * popcount(w[o][t][:])   (c_g true channels).
// Which taps are padded depends on the output position only through the interval of kernel
// rows [i0, i1) whose input row is inside the image (an interval, since the input row
// oh*stride - pad + i*dilation grows with i) and the same for columns. Positions sharing both
// intervals share the correction, so one int32[out_c] vector is stored per distinct pair of
// intervals; interior positions (all taps valid) have none.
#include <map>
#include <utility>

#include "onebit/kernels.h"

namespace onebit {
namespace {

int popcount32(bword_t x) { return __builtin_popcount(x); }

// Valid kernel index interval [lo, hi) for output coordinate `o` along one axis.
std::pair<std::int64_t, std::int64_t> valid_taps(std::int64_t o, std::int64_t stride, std::int64_t pad,
                                                 std::int64_t dil, std::int64_t k, std::int64_t in) {
  std::int64_t lo = k, hi = 0;
  for (std::int64_t i = 0; i < k; ++i) {
    const std::int64_t x = o * stride - pad + i * dil;
    if (x >= 0 && x < in) {
      lo = std::min(lo, i);
      hi = std::max(hi, i + 1);
    }
  }
  if (hi <= lo) return {0, 0};
  return {lo, hi};
}

// Interval id per output coordinate: -1 for the full interval [0, k), else 0, 1, ...
std::vector<std::int64_t> interval_ids(std::int64_t n_out, std::int64_t stride, std::int64_t pad, std::int64_t dil,
                                       std::int64_t k, std::int64_t in,
                                       std::vector<std::pair<std::int64_t, std::int64_t>>& intervals) {
  std::map<std::pair<std::int64_t, std::int64_t>, std::int64_t> seen;
  std::vector<std::int64_t> ids(n_out);
  for (std::int64_t o = 0; o < n_out; ++o) {
    auto iv = valid_taps(o, stride, pad, dil, k, in);
    if (iv.first == 0 && iv.second == k) {
      ids[o] = -1;
      continue;
    }
    auto it = seen.find(iv);
    if (it == seen.end()) {
      it = seen.emplace(iv, static_cast<std::int64_t>(intervals.size())).first;
      intervals.push_back(iv);
    }
    ids[o] = it->second;
  }
  return ids;
}

}  // namespace

const std::int32_t* BConv2dZeroPad::at(std::int64_t oh, std::int64_t ow) const {
  const std::int64_t v = v_id[oh], h = h_id[ow];
  if (v < 0 && h < 0) return nullptr;
  const std::int64_t out_c = static_cast<std::int64_t>(table.size()) / ((n_v + 1) * (n_h + 1));
  return table.data() + ((v + 1) * (n_h + 1) + (h + 1)) * out_c;
}

BConv2dZeroPad bconv2d_zero_pad_plan(const BConv2dGeometry& g, const bword_t* weights) {
  BConv2dZeroPad z;
  std::vector<std::pair<std::int64_t, std::int64_t>> vi{{0, g.kh}}, hi{{0, g.kw}};  // slot 0: full
  std::vector<std::pair<std::int64_t, std::int64_t>> v_extra, h_extra;
  z.v_id = interval_ids(g.out_h, g.stride_h, g.pad_top, g.dil_h, g.kh, g.in_h, v_extra);
  z.h_id = interval_ids(g.out_w, g.stride_w, g.pad_left, g.dil_w, g.kw, g.in_w, h_extra);
  vi.insert(vi.end(), v_extra.begin(), v_extra.end());
  hi.insert(hi.end(), h_extra.begin(), h_extra.end());
  z.n_v = static_cast<std::int64_t>(v_extra.size());
  z.n_h = static_cast<std::int64_t>(h_extra.size());

  const std::int64_t c_g = g.channels / g.groups, cw_g = packed_words(c_g);
  // wsum[o][i][j]: +-1 sum of the weights of tap (i, j) over the true channels of the group.
  std::vector<std::int32_t> wsum(g.out_c * g.kh * g.kw);
  for (std::int64_t t = 0; t < g.out_c * g.kh * g.kw; ++t) {
    std::int64_t pop = 0;
    for (std::int64_t c = 0; c < cw_g; ++c) pop += popcount32(weights[t * cw_g + c]);
    wsum[t] = static_cast<std::int32_t>(c_g - 2 * pop);
  }
  z.table.assign((z.n_v + 1) * (z.n_h + 1) * g.out_c, 0);
  for (std::int64_t v = 0; v <= z.n_v; ++v) {
    for (std::int64_t h = 0; h <= z.n_h; ++h) {
      std::int32_t* dst = z.table.data() + (v * (z.n_h + 1) + h) * g.out_c;
      for (std::int64_t o = 0; o < g.out_c; ++o) {
        std::int32_t corr = 0;
        for (std::int64_t i = 0; i < g.kh; ++i) {
          for (std::int64_t j = 0; j < g.kw; ++j) {
            const bool valid = i >= vi[v].first && i < vi[v].second && j >= hi[h].first && j < hi[h].second;
            if (!valid) corr += wsum[(o * g.kh + i) * g.kw + j];
          }
        }
        dst[o] = corr;
      }
    }
  }
  return z;
}

}  // namespace onebit
