//===- WeightLayout.h - storage arithmetic of compressed weights -*- C++ -*-===//
//
// Plain C++ (no MLIR) so importers, packers and unit tests share one formula
// for how many bytes a weight occupies. Every product and sum is overflow
// checked: sizes come from untrusted model files.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_IR_WEIGHTLAYOUT_H
#define KILN_IR_WEIGHTLAYOUT_H

#include <cstdint>
#include <optional>

namespace kiln {

inline std::optional<uint64_t> checkedMul(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r))
    return std::nullopt;
  return r;
}

inline std::optional<uint64_t> checkedAdd(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r))
    return std::nullopt;
  return r;
}

/// The numbers that fix a quantized block's size (see #kiln.quant).
struct QuantBlockShape {
  unsigned bits = 4;         // code width, 2..8
  unsigned group = 32;       // values sharing one scale
  unsigned scaleBytes = 2;   // bytes of a (super-block) scale
  unsigned zeroBytes = 0;    // bytes of a (super-block) zero/min; 0: symmetric
  unsigned superGroup = 0;   // values per super-block; 0: one level
  unsigned subScaleBits = 0; // width of the per-group integer scales (and mins)

  unsigned blockValues() const { return superGroup ? superGroup : group; }

  /// Bytes of one block: scales first, then the codes. For one level:
  /// scale + zero + group*bits/8. For two levels: super scale + super zero +
  /// (superGroup/group) sub-scales (and as many sub-mins when asymmetric) of
  /// subScaleBits each + superGroup*bits/8. For every ggml block format of
  /// GGMLFormats.h this gives the block size of ggml-common.h
  /// (unittests/GGMLFormatsTest.cpp checks it).
  uint64_t blockBytes() const {
    uint64_t codes = uint64_t(blockValues()) * bits / 8;
    uint64_t header = scaleBytes + zeroBytes;
    if (superGroup) {
      uint64_t subGroups = superGroup / group;
      header += subGroups * subScaleBits * (zeroBytes ? 2 : 1) / 8;
    }
    return header + codes;
  }

  /// Bytes of a row of k values; nullopt unless k is a whole number of blocks.
  std::optional<uint64_t> rowBytes(uint64_t k) const {
    if (k == 0 || k % blockValues() != 0)
      return std::nullopt;
    return checkedMul(k / blockValues(), blockBytes());
  }
};

/// Product of dimensions; nullopt on overflow or a non-positive dimension.
template <typename Range>
std::optional<uint64_t> checkedElementCount(const Range &dims) {
  uint64_t n = 1;
  for (auto d : dims) {
    if (d <= 0)
      return std::nullopt;
    auto next = checkedMul(n, uint64_t(d));
    if (!next)
      return std::nullopt;
    n = *next;
  }
  return n;
}

} // namespace kiln

#endif // KILN_IR_WEIGHTLAYOUT_H
