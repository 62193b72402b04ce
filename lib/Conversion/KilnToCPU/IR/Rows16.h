//===- Rows16.h - the row-interleaved layout of int8-kernel weights -*- C++ -*-===//
//
// `#kiln.quant<..., layout = gguf, target_layout = #kiln_cpu.rows16>`:
// ggml's integer-coded formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K,
// Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, TQ1_0, TQ2_0, IQ2_XXS, IQ2_XS, IQ2_S,
// IQ3_XXS, IQ3_S, IQ1_S, IQ1_M)
// rearranged at compile time for the CPU linear kernels, which
// compute 16 output rows at once, one per 32-bit lane of an AVX-512
// register, with byte dot products (vpdpbusd) against one broadcast 4-byte
// group of int8 activations. Same arithmetic as the GGUF
// block, other byte order; the kernels then read one sequential stream per
// 16 rows and never reduce across lanes.
//
// Rows are taken 16 at a time (the last group padded with zero rows). Each
// group of 16 rows is stored as
//
//   headers  for each super-block (256 values for K-quants, else one 32-value
//            block): the scales of the 16 rows, field by field (below);
//            padded with zeros to a multiple of 64 bytes;
//   codes    for each 32-value block: 64-byte planes, 16 rows x 4 bytes:
//            bytes [4r, 4r+4) of a plane belong to row r.
//
// Codes are unsigned. The kernel's target t (0..7) is the 64 bytes of codes
// for values 4t..4t+3 of each row, read by vpdpbusd against activation bytes
// 4t..4t+3 of the block:
//   Q8_0     8 planes, plane t = target t, codes q + 128;
//   4-bit    4 planes, plane j: low nibbles = target j, high nibbles =
//            target j + 4 (4-bit codes of Q4_0, Q4_1, Q4_K; the low 4 bits
//            of the 5- and 6-bit codes);
//   5-bit    first one plane, bit t of each byte = bit 4 of target t;
//   Q6_K     first two planes, plane t / 4, bits 2(t%4)..2(t%4)+1 = bits
//            4..5 of target t;
//   2-bit    2 planes, plane t / 4, bits 2(t%4)..2(t%4)+1 = target t;
//   3-bit    3 planes (Q3_K, Kiln's 3 bits), plane t / 2, bits 3(t%2)..
//            3(t%2)+2 = target t for t < 6; targets 6 and 7: bits 0..1 in
//            bits 6..7 of planes 0 and 1, bit 2 in bits 6 and 7 of plane 2
//            (one shift and mask a target but for those two).
// Header fields (each one value per row, 16 values):
//   Q4_0, Q5_0, Q8_0   d (f16)
//   Q4_1, Q5_1         d, m (f16)
//   Q4_K, Q5_K         d, dmin (f16), sc[8] (u8), m[8] (u8)  (6-bit, unpacked)
//   Q6_K, Q3_K         d (f16), sc[16] (i8; Q3_K's 6-bit scales minus 32)
//   Q2_K               d, dmin (f16), sc[16] (u8: ggml's byte, scale in the
//                      low nibble, min in the high one)
//   IQ4_NL             d (f16)
//   IQ4_XS             d (f16), sc[8] (i8: the 6-bit scales minus 32)
// Value = d * (code - offset) with offset 8, 16, 128, 32, 4 (Q4_0, Q5_0,
// Q8_0, Q6_K and Q3_K, whose scale is d * sc[sub-block of 16]); d * code + m
// (Q4_1, Q5_1); d * sc[j] * code - dmin * m[j] for sub-block j of 32 (Q4_K,
// Q5_K) or of 16 (Q2_K). IQ4_NL and IQ4_XS store 4-bit indices; the
// kernels look them up (kIQ4NLValues + 128, unsigned) and subtract offset
// 128: d * kIQ4NLValues[code] (times sc[j] for IQ4_XS).
// Kiln's packed layout (`layout = packed`, Dequant.h) at any width 2..8, a
// group of 32 to 256 values (a multiple of 32), f16, bf16 or f32 scales and zeros:
// a super-block is one group; header: the 16 rows' scales, then their zeros
// (if any), each in its stored type; codes unsigned, value scale * (code -
// 2^(bits-1)) (symmetric) or scale * code + zero. Planes as above; 7-bit
// codes: first one plane with bit 6 (as 5-bit's), then two planes with bits
// 4..5 (as Q6_K's), then the nibbles.
// TQ2_0 and TQ1_0 (ternary): 2-bit codes 0..2 (TQ1_0's base-3 trits
// unpacked at compile time), header d (f16), offset 1.
// IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S (grids of magnitudes with signs,
// GGMLGrids.inc) and IQ1_S, IQ1_M (grids of -1, 0, 1 plus a delta of +-1/8):
// rewritten at compile time to one signed value per value, a 4-bit
// index into the format's 16 values (looked up as IQ4_XS's; IQ1's are
// 8 (grid +- delta)); header as IQ4_XS's (IQ2_XS, IQ2_S, IQ1_M: Q6_K's, per
// 16 values) with sc[j] = 2 ls + 1, value d * sc[j] * scaleFactor * value.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CONVERSION_KILNTOCPU_IR_ROWS16_H
#define KILN_CONVERSION_KILNTOCPU_IR_ROWS16_H

#include "Kiln/IR/GGMLFormats.h"

#include <cstdint>
#include <optional>
#include <string>

// In mlir::kiln (though plain C++) so it reads the same as the dialects'
// names wherever both are used.
namespace mlir::kiln {

constexpr unsigned kRows16 = 16;

/// How a packed form stores its scales and zeros (Kiln's scale types).
enum class Rows16Float : uint8_t { F16, BF16, F32 };

inline unsigned rows16FloatBytes(Rows16Float t) {
  return t == Rows16Float::F32 ? 4 : 2;
}

struct Rows16Format {
  ::kiln::GGMLType kind; // the ggml block format this form rearranges (F32
                         // for Kiln's packed layout: no ggml format)
  char name[24];         // ggml's name in lower case ("q4_k"), or the packed
                         // scheme's ("p3g64_bf16_zf16"), for symbols
  unsigned codeBits;     // 2..8
  unsigned superValues;  // 256 for K-quants, else 32
  unsigned sourceBytes;  // bytes of one ggml block of superValues values
  unsigned headerBytes;  // per super-block and group of 16 rows
  unsigned offset;       // subtracted from the codes (0: asymmetric)
  bool hasMin;           // Q4_1, Q5_1, Q2_K, Q4_K, Q5_K
  bool halfScales;       // Q2_K, Q3_K, Q6_K: a scale per 16 values
  const int8_t *codebook; // IQ4_NL, IQ4_XS, the grids: the 16 codes' values
  float scaleFactor;      // a power of 2 on the header's scale (the grids)
  bool packed;            // Kiln's packed layout: headers in these types
  Rows16Float scaleType, zeroType;

  /// Bytes of one 32-value block's code planes for 16 rows: one 64-byte
  /// plane per code bit.
  unsigned blockCodeBytes() const { return codeBits * 64; }
  /// Bytes of the headers of a group of 16 rows of k values (padded).
  uint64_t headerRegionBytes(uint64_t k) const {
    return (k / superValues * headerBytes + 63) / 64 * 64;
  }
  uint64_t groupBytes(uint64_t k) const {
    return headerRegionBytes(k) + k / 32 * blockCodeBytes();
  }
};

/// The rows16 form of a ggml block format, or null if it has none.
const Rows16Format *findRows16Format(::kiln::GGMLType kind);

/// The largest group of Kiln's packed layout with a rows16 form.
constexpr unsigned kMaxPackedRows16Group = 256;

/// The rows16 form of Kiln's packed layout at `bits` (2..8), `group` (a
/// multiple of 32 up to kMaxPackedRows16Group), scales of `scaleType` and
/// zeros of `zeroType` (none: symmetric), or null for other groups.
const Rows16Format *findPackedRows16Format(unsigned bits, unsigned group,
                                           Rows16Float scaleType,
                                           std::optional<Rows16Float> zeroType);

/// The symbol name of Kiln's packed scheme ("p3g64_bf16_zf16"): the
/// rows16 form's and the dequantizing kernels' (Dequant.cpp).
std::string packedFormatName(unsigned bits, unsigned group,
                             Rows16Float scaleType,
                             std::optional<Rows16Float> zeroType);

/// Bytes of an n x k weight in rows16; nullopt on overflow or when k is not
/// a whole number of super-blocks.
std::optional<uint64_t> rows16Bytes(const Rows16Format &format, uint64_t n,
                                    uint64_t k);

/// Rearranges n rows of k values from ggml blocks or Kiln's packed groups
/// (`source`, n * k / superValues * sourceBytes bytes) into rows16 (`dest`, rows16Bytes
/// bytes). Padding rows and bytes are zero.
void packRows16(const Rows16Format &format, uint64_t n, uint64_t k,
                const uint8_t *source, uint8_t *dest);

} // namespace mlir::kiln

#endif // KILN_CONVERSION_KILNTOCPU_IR_ROWS16_H
