//===- GGMLFormats.h - the one table of ggml's tensor types -----*- C++ -*-===//
//
// Every ggml tensor type (ggml.h `enum ggml_type`) that a GGUF file may name:
// its name, its block (values and bytes, the sizeof of the block struct in
// ggml-common.h), whether Kiln reads it, and for the block formats Kiln
// computes with, the #kiln.quant<layout = gguf> scheme that describes it.
// The GGUF reader, the importer, the dialect verifier, the CPU target's
// packer and the CPU decoders all read this table; none keeps its own copy.
//
// Plain C++ and data only (no MLIR): the GGUF reader and its fuzzer include
// it without the dialect. unittests/GGMLFormatsTest.cpp checks it against
// ggml-common.h's structs, the general block formula of WeightLayout.h and
// the gguf Python package (gguf.constants.GGML_QUANT_SIZES).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_IR_GGMLFORMATS_H
#define KILN_IR_GGMLFORMATS_H

#include <cstdint>
#include <iterator>

namespace kiln {

/// ggml.h `enum ggml_type`; the numbers are stored in GGUF files. Gaps are
/// numbers ggml retired (4, 5, 31..33, 36..38).
enum class GGMLType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
};

/// What a format's codes stand for where they are not linear codes of `bits`
/// each; None: value = scale * (code - offset). Past IQ4NL the block is
/// ggml's own struct, not the general formula of WeightLayout.h.
enum class GGMLCodebook : uint32_t {
  None = 0,
  IQ4NL = 1,        // ggml-common.h kvalues_iq4nl: IQ4_NL and IQ4_XS
  Ternary = 2,      // TQ2_0: 2-bit codes 0, 1, 2 = -1, 0, +1
  TernaryBase3 = 3, // TQ1_0: the same trits, 5 (or 4) per byte in base 3
  IQ2XXS = 4,       // IQ2_XXS: 8 values per iq2xxs_grid entry, ksigns
  IQ3XXS = 5,       // IQ3_XXS: 4 values per iq3xxs_grid entry, ksigns
  IQ2XS = 6,        // IQ2_XS: 8 values per iq2xs_grid entry, ksigns
  IQ3S = 7,         // IQ3_S: 4 values per iq3s_grid entry, sign bytes
  IQ2S = 8,         // IQ2_S: 8 values per iq2s_grid entry, sign bytes
  IQ1S = 9,         // IQ1_S: 8 values per iq1s_grid entry, + delta per 32
  IQ1M = 10,        // IQ1_M: iq1s_grid, a delta per 8 values
};

/// ggml-common.h kvalues_iq4nl: the 16 values a 4-bit IQ4_NL / IQ4_XS code
/// stands for (times the block's scale).
inline constexpr int8_t kIQ4NLValues[16] = {-127, -104, -83, -65, -49, -35,
                                            -22,  -10,  1,   13,  25,  38,
                                            53,   69,   89,  113};

struct GGMLFormat {
  GGMLType type;
  /// ggml's name (type_traits in ggml.c): "q4_K", "f32"; null for a number
  /// ggml retired.
  const char *name;
  unsigned blockValues; // values per block; 1 for plain element types
  unsigned blockBytes;  // sizeof the ggml-common.h block (or the element)
  bool readable;        // the GGUF reader accepts tensors of this type
  // The format as a #kiln.quant<layout = gguf> scheme: an f16 scale `d`, an
  // f16 min when hasMin, and for K-quants 256-value super-blocks of groups
  // with subScaleBits-wide integer scales (and mins). bits == 0: Kiln has no
  // scheme for this type.
  unsigned bits;
  unsigned group;
  bool hasMin;
  unsigned superGroup;
  unsigned subScaleBits;
  /// Codes index this table: value = scale * codebook[code].
  GGMLCodebook codebook = GGMLCodebook::None;

  bool isQuantScheme() const { return bits != 0; }
  /// The block is `bits`-wide codes plus scales (WeightLayout.h's formula);
  /// otherwise blockBytes is ggml's struct and `bits` is nominal.
  bool hasGeneralBlock() const {
    return codebook == GGMLCodebook::None || codebook == GGMLCodebook::IQ4NL;
  }
  /// One scale (and min) per 32 codes: a dot product with activations
  /// quantized per 32 values is an integer sum and one multiply per block.
  bool hasScalePer32() const {
    return isQuantScheme() && superGroup == 0 && group == 32 &&
           codebook == GGMLCodebook::None;
  }
};

/// Indexed by ggml_type. Block structs are those of ggml-common.h, QK_K = 256,
/// K_SCALE_SIZE = 12, `half` = ggml_half (2 bytes).
inline constexpr GGMLFormat kGGMLFormats[] = {
    // type, name, values, bytes, readable, bits, group, min, super, sub bits
    {GGMLType::F32, "f32", 1, 4, true, 0, 0, false, 0, 0},
    {GGMLType::F16, "f16", 1, 2, true, 0, 0, false, 0, 0},
    // block_q4_0 {half d; u8 qs[16]} = 18
    {GGMLType::Q4_0, "q4_0", 32, 18, true, 4, 32, false, 0, 0},
    // block_q4_1 {half d, m; u8 qs[16]} = 20
    {GGMLType::Q4_1, "q4_1", 32, 20, true, 4, 32, true, 0, 0},
    {GGMLType(4), nullptr, 0, 0, false, 0, 0, false, 0, 0}, // Q4_2, retired
    {GGMLType(5), nullptr, 0, 0, false, 0, 0, false, 0, 0}, // Q4_3, retired
    // block_q5_0 {half d; u8 qh[4]; u8 qs[16]} = 22
    {GGMLType::Q5_0, "q5_0", 32, 22, true, 5, 32, false, 0, 0},
    // block_q5_1 {half d, m; u8 qh[4]; u8 qs[16]} = 24
    {GGMLType::Q5_1, "q5_1", 32, 24, true, 5, 32, true, 0, 0},
    // block_q8_0 {half d; i8 qs[32]} = 34
    {GGMLType::Q8_0, "q8_0", 32, 34, true, 8, 32, false, 0, 0},
    // block_q8_1 {half d, s; i8 qs[32]} = 36
    {GGMLType::Q8_1, "q8_1", 32, 36, true, 0, 0, false, 0, 0},
    // block_q2_K {u8 scales[16]; u8 qs[64]; half d, dmin} = 84
    {GGMLType::Q2_K, "q2_K", 256, 84, true, 2, 16, true, 256, 4},
    // block_q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; half d} = 110
    {GGMLType::Q3_K, "q3_K", 256, 110, true, 3, 16, false, 256, 6},
    // block_q4_K {half d, dmin; u8 scales[12]; u8 qs[128]} = 144
    {GGMLType::Q4_K, "q4_K", 256, 144, true, 4, 32, true, 256, 6},
    // block_q5_K {half d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]} = 176
    {GGMLType::Q5_K, "q5_K", 256, 176, true, 5, 32, true, 256, 6},
    // block_q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; half d} = 210
    {GGMLType::Q6_K, "q6_K", 256, 210, true, 6, 16, false, 256, 8},
    // block_q8_K {float d; i8 qs[256]; i16 bsums[16]} = 292
    {GGMLType::Q8_K, "q8_K", 256, 292, true, 0, 0, false, 0, 0},
    // block_iq2_xxs {half d; u16 qs[32]} = 66: per 32 values 4 grid
    // indices, 4 x 7 sign bits and a 4-bit scale
    {GGMLType::IQ2_XXS, "iq2_xxs", 256, 66, true, 2, 32, false, 256, 4,
     GGMLCodebook::IQ2XXS},
    // block_iq2_xs {half d; u16 qs[32]; u8 scales[8]} = 74: per 8 values a
    // 9-bit grid index and 7 sign bits, 4-bit scales per 16 values
    {GGMLType::IQ2_XS, "iq2_xs", 256, 74, true, 2, 16, false, 256, 4,
     GGMLCodebook::IQ2XS},
    // block_iq3_xxs {half d; u8 qs[96]} = 98: 64 grid indices, then per
    // 32 values 4 x 7 sign bits and a 4-bit scale
    {GGMLType::IQ3_XXS, "iq3_xxs", 256, 98, true, 3, 32, false, 256, 4,
     GGMLCodebook::IQ3XXS},
    // block_iq1_s {half d; u8 qs[32]; u16 qh[8]} = 50: per 8 values an
    // 11-bit grid index, per 32 values a 3-bit scale and the delta's sign
    // (`bits` nominal: 1.56 bits a value)
    {GGMLType::IQ1_S, "iq1_s", 256, 50, true, 2, 32, false, 256, 3,
     GGMLCodebook::IQ1S},
    // block_iq4_nl {half d; u8 qs[16]} = 18: Q4_0's block, codes through
    // kIQ4NLValues
    {GGMLType::IQ4_NL, "iq4_nl", 32, 18, true, 4, 32, false, 0, 0,
     GGMLCodebook::IQ4NL},
    // block_iq3_s {half d; u8 qs[64], qh[8], signs[32], scales[4]} = 110:
    // 9-bit grid indices (high bits in qh), 4-bit scales per 32 values
    {GGMLType::IQ3_S, "iq3_s", 256, 110, true, 3, 32, false, 256, 4,
     GGMLCodebook::IQ3S},
    // block_iq2_s {half d; u8 qs[64]; u8 qh[8]; u8 scales[8]} = 82: per 8
    // values a 10-bit grid index and a sign byte, 4-bit scales per 16 values
    {GGMLType::IQ2_S, "iq2_s", 256, 82, true, 2, 16, false, 256, 4,
     GGMLCodebook::IQ2S},
    // block_iq4_xs {half d; u16 scales_h; u8 scales_l[4]; u8 qs[128]} = 136:
    // 6-bit sub-scales (minus 32) per 32 values
    {GGMLType::IQ4_XS, "iq4_xs", 256, 136, true, 4, 32, false, 256, 6,
     GGMLCodebook::IQ4NL},
    {GGMLType::I8, "i8", 1, 1, true, 0, 0, false, 0, 0},
    {GGMLType::I16, "i16", 1, 2, true, 0, 0, false, 0, 0},
    {GGMLType::I32, "i32", 1, 4, true, 0, 0, false, 0, 0},
    {GGMLType::I64, "i64", 1, 8, true, 0, 0, false, 0, 0},
    {GGMLType::F64, "f64", 1, 8, true, 0, 0, false, 0, 0},
    // block_iq1_m {u8 qs[32]; u8 qh[16]; u8 scales[8]} = 56: per 8 values
    // an 11-bit grid index and the delta's sign, 3-bit scales per 16 values;
    // the f16 d is the top nibbles of the four u16 scale words
    {GGMLType::IQ1_M, "iq1_m", 256, 56, true, 2, 16, false, 256, 3,
     GGMLCodebook::IQ1M},
    {GGMLType::BF16, "bf16", 1, 2, true, 0, 0, false, 0, 0},
    {GGMLType(31), nullptr, 0, 0, false, 0, 0, false, 0, 0}, // Q4_0_4_4
    {GGMLType(32), nullptr, 0, 0, false, 0, 0, false, 0, 0}, // Q4_0_4_8
    {GGMLType(33), nullptr, 0, 0, false, 0, 0, false, 0, 0}, // Q4_0_8_8
    // block_tq1_0 {u8 qs[48]; u8 qh[4]; half d} = 54
    {GGMLType::TQ1_0, "tq1_0", 256, 54, true, 2, 256, false, 0, 0,
     GGMLCodebook::TernaryBase3},
    // block_tq2_0 {u8 qs[64]; half d} = 66
    {GGMLType::TQ2_0, "tq2_0", 256, 66, true, 2, 256, false, 0, 0,
     GGMLCodebook::Ternary},
    {GGMLType(36), nullptr, 0, 0, false, 0, 0, false, 0, 0}, // IQ4_NL_4_4
    {GGMLType(37), nullptr, 0, 0, false, 0, 0, false, 0, 0}, // IQ4_NL_4_8
    {GGMLType(38), nullptr, 0, 0, false, 0, 0, false, 0, 0}, // IQ4_NL_8_8
    // block_mxfp4 {u8 e; u8 qs[16]} = 17
    {GGMLType::MXFP4, "mxfp4", 32, 17, false, 0, 0, false, 0, 0},
};

/// The row of a type (a named enumerator, so never a retired number).
constexpr const GGMLFormat &getGGMLFormat(GGMLType type) {
  return kGGMLFormats[uint32_t(type)];
}

/// The row of a raw ggml type number; null if the number is unknown or
/// retired.
inline const GGMLFormat *findGGMLFormat(uint32_t rawType) {
  if (rawType >= std::size(kGGMLFormats) || !kGGMLFormats[rawType].name)
    return nullptr;
  return &kGGMLFormats[rawType];
}

/// The ggml block format with this #kiln.quant<layout = gguf> scheme (an f16
/// scale, and an f16 min when hasMin), or null.
inline const GGMLFormat *
findGGMLBlockFormat(unsigned bits, unsigned group, bool hasMin,
                    unsigned superGroup, unsigned subScaleBits,
                    GGMLCodebook codebook = GGMLCodebook::None) {
  for (const GGMLFormat &format : kGGMLFormats)
    if (format.isQuantScheme() && format.bits == bits &&
        format.group == group && format.hasMin == hasMin &&
        format.superGroup == superGroup &&
        format.subScaleBits == subScaleBits && format.codebook == codebook)
      return &format;
  return nullptr;
}

/// The values of a codebook's codes; null for None.
constexpr const int8_t *getCodebookValues(GGMLCodebook codebook) {
  return codebook == GGMLCodebook::IQ4NL ? kIQ4NLValues : nullptr;
}

namespace detail {
constexpr bool isIndexedByType() {
  for (uint32_t i = 0; i < std::size(kGGMLFormats); ++i)
    if (uint32_t(kGGMLFormats[i].type) != i)
      return false;
  return true;
}
} // namespace detail
static_assert(detail::isIndexedByType(),
              "kGGMLFormats[i] must be the row of ggml_type i");

} // namespace kiln

#endif // KILN_IR_GGMLFORMATS_H
