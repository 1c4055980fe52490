// A zero-initialized scratch buffer whose data() is 64-byte aligned, so that vector loads never
// straddle two cache lines (a straddling load costs two L1 accesses; a zmm load is one line).
// Shared by the AVX2 and AVX-512 ternary kernels for their repacked activation and weight tiles.
#pragma once
#include <cstdint>
#include <vector>

namespace onebit::detail {

template <class T>
class Scratch {
 public:
  explicit Scratch(std::int64_t count) : storage_(static_cast<size_t>(count) * sizeof(T) + 64, 0) {
    const auto addr = reinterpret_cast<std::uintptr_t>(storage_.data());
    data_ = reinterpret_cast<T*>(storage_.data() + ((64 - addr % 64) % 64));
  }
  Scratch(Scratch&&) = default;  // the vector's buffer moves with it, so data_ stays valid
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* data() { return data_; }
  const T* data() const { return data_; }

 private:
  std::vector<unsigned char> storage_;
  T* data_;
};

}  // namespace onebit::detail
