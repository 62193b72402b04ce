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
  /// Non-zero: the block is a ggml struct of this size whose codes are not
  /// `bits` wide (GGMLFormat::hasGeneralBlock), and blockBytes returns it.
  unsigned fixedBlockBytes = 0;

  unsigned blockValues() const { return superGroup ? superGroup : group; }

  /// Bytes of one block: scales first, then the codes. For one level:
  /// scale + zero + group*bits/8. For two levels: super scale + super zero +
  /// (superGroup/group) sub-scales (and as many sub-mins when asymmetric) of
  /// subScaleBits each + superGroup*bits/8. For every ggml block format of
  /// GGMLFormats.h this gives the block size of ggml-common.h
  /// (unittests/GGMLFormatsTest.cpp checks it).
  uint64_t blockBytes() const {
    if (fixedBlockBytes)
      return fixedBlockBytes;
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

/// Bytes of one block of a symmetric one-level quantized weight stored n:m
/// compressed (#kiln.quant with `sparsity = #kiln.sparsity<kind = n_m>`):
/// the block's scale, its kept codes (n of every m values along K, `bits`
/// each) and each kept value's position in its run of m (ceil(log2 m) bits
/// each, ascending in a run; a run with fewer non-zeros keeps zero codes).
/// Scales stay dense per block, so a compressed block decodes to the same
/// values as the dense one. nullopt unless m divides the group and codes and
/// positions fill whole bytes. The weight is rows x K/group such blocks.
///
/// The one arrangement Kiln writes, 2:4 over ggml's Q4_0 and Q8_0 codes
/// (layout = gguf; 14 and 22 bytes per block), interleaves rows by 16 as the
/// sparse kernels read them: per group of 16 rows, per 32-value block, the 16
/// rows' f16 scales (32 bytes); then per run j of 4 values (8 runs) the kept
/// codes of the 16 rows, row r's first and second as bytes 2r, 2r+1 (Q8_0,
/// signed) or as the low and high nibble of byte r (Q4_0, unsigned, 8 the
/// zero); then per pair of runs (2p, 2p+1) 16 bytes, byte r holding row r's
/// positions for run 2p in its low nibble and run 2p+1 in its high one, a
/// nibble being first | second << 2.
inline std::optional<uint64_t> nmBlockBytes(const QuantBlockShape &shape,
                                            unsigned n, unsigned m) {
  if (shape.superGroup || shape.zeroBytes || m == 0 || shape.group % m != 0)
    return std::nullopt;
  uint64_t kept = uint64_t(shape.group) / m * n;
  unsigned positionBits = 0;
  while ((1u << positionBits) < m)
    ++positionBits;
  uint64_t codeBits = kept * shape.bits, indexBits = kept * positionBits;
  if (codeBits % 8 || indexBits % 8)
    return std::nullopt;
  return shape.scaleBytes + codeBits / 8 + indexBits / 8;
}

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
