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
/// sparse kernels read them, in 64-byte planes as the rows16 layout's (bytes
/// [4r, 4r + 4) of a plane for row r): per group of 16 rows, per 32-value
/// block, the 16 rows' f16 scales (32 bytes); then the kept codes, target t
/// (0..3) being runs 2t and 2t+1 of 4 values, row r's four bytes the first
/// and second kept code of run 2t, then of run 2t+1: Q4_0 two planes, plane
/// j's low nibbles target j, high nibbles target j + 2 (unsigned, 8 the
/// zero); Q8_0 four planes, plane t target t (the code + 128, unsigned);
/// then one plane of places, bits 2t..2t+1 of a byte the place (0..3) of
/// that byte's code of target t in its run.
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

/// Bytes of a Q4_0 or Q8_0 weight (symmetric, one level, 32-value blocks with
/// an f16 scale: `shape`) of `rows` x `k` values stored bitmap compressed
/// (`sparsity = #kiln.sparsity<kind = bitmap, nnz = stored>`): unstructured
/// sparsity, every value's keep bit and only the kept codes. nullopt unless
/// rows is a multiple of 16, k of 32, and the codes fill whole bytes.
///
/// The arrangement is the rows16 one (IR/Rows16.h of the CPU lowering) with
/// the zeros left out, so an expand of each 64-byte plane gives the dense
/// kernels' operand back (vpexpandb where AVX-512 VBMI2 has it; a vpshufb
/// driven by in-lane prefix sums of the mask elsewhere):
///   offsets  rows/16 u64: each group of 16 rows' byte offset from the start
///            (groups differ in size);
///   groups   per group of 16 rows, per 32-value block: the 16 rows' f16
///            scales (32 bytes); the 8 planes' keep masks (u64 each, bit
///            4r+v of plane t: row r keeps value 4t+v); then per plane t and
///            quarter q (rows 4q..4q+3, mask bits 16q..16q+15) the kept codes
///            in mask order: Q8_0's signed bytes, or Q4_0's 4-bit codes (8 the
///            zero) two to a byte, low nibble first, a quarter keeping an
///            even number (the packer keeps one more zero code when odd);
///   16 bytes of padding, so a kernel may load any quarter 16 bytes wide.
/// `stored` counts the kept codes (mask bits set), at least the non-zeros.
/// A block then takes 2 + 4 + stored codes per row: at half the values
/// kept, 14 (Q4_0, plus ~0.5 of quarter padding) and 22 bytes instead of 18
/// and 34.
inline std::optional<uint64_t> bitmapWeightBytes(const QuantBlockShape &shape,
                                                 uint64_t rows, uint64_t k,
                                                 uint64_t stored) {
  if (shape.superGroup || shape.zeroBytes || shape.group != 32 ||
      shape.scaleBytes != 2 || (shape.bits != 4 && shape.bits != 8) ||
      rows % 16 != 0 || k % 32 != 0 || stored * shape.bits % 8 != 0)
    return std::nullopt;
  uint64_t groups = rows / 16;
  std::optional<uint64_t> blocks = checkedMul(groups, k / 32);
  std::optional<uint64_t> headers =
      blocks ? checkedMul(*blocks, 32 + 64) : std::nullopt;
  std::optional<uint64_t> codes = checkedMul(stored, shape.bits);
  if (!headers || !codes)
    return std::nullopt;
  std::optional<uint64_t> total = checkedAdd(*headers, *codes / 8);
  total = total ? checkedAdd(*total, groups * 8 + 16) : std::nullopt;
  return total;
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
