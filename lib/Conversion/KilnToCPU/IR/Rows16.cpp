//===- Rows16.cpp - packing ggml blocks into the rows16 layout ------------===//

#include "Conversion/KilnToCPU/IR/Rows16.h"
#include "Kiln/IR/WeightLayout.h"

#include <array>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

using namespace mlir::kiln;
using ::kiln::checkedAdd;
using ::kiln::GGMLType;
using ::kiln::checkedMul;

namespace {

#include "Kiln/IR/GGMLGrids.inc"

/// The 16 values of the 4-bit codes a grid format is rewritten to: its N
/// magnitudes negated (largest first), then as they are; index N - 1 - m is
/// -magnitude m, N + m is +magnitude m (gridCode).
template <size_t N>
constexpr std::array<int8_t, 16> signedGridValues(const int8_t (&mags)[N]) {
  static_assert(2 * N <= 16, "a grid's signed values must fit 4 bits");
  std::array<int8_t, 16> values{};
  for (size_t m = 0; m < N; ++m) {
    values[N - 1 - m] = int8_t(-mags[m]);
    values[N + m] = mags[m];
  }
  return values;
}
constexpr std::array<int8_t, 16> kIQ2XXSCodebook =
    signedGridValues(kIQ2XXSGridValues);
constexpr std::array<int8_t, 16> kIQ3XXSCodebook =
    signedGridValues(kIQ3XXSGridValues);
constexpr std::array<int8_t, 16> kIQ3SCodebook =
    signedGridValues(kIQ3SGridValues);

/// The 4-bit code of magnitude index m of a grid of n magnitudes, negated
/// when `negative` (signedGridValues).
uint8_t gridCode(unsigned n, unsigned m, bool negative) {
  return uint8_t(negative ? n - 1 - m : n + m);
}

/// IQ1_S and IQ1_M: value dl * (grid + delta), grid -1, 0 or 1 and delta
/// +-1/8 (ggml-common.h IQ1S_DELTA, IQ1M_DELTA), is dl / 8 * (8 grid +- 1):
/// code 2m + 1 is grid value m plus delta, 2m minus it.
constexpr std::array<int8_t, 16> iq1Values() {
  std::array<int8_t, 16> values{};
  for (size_t m = 0; m < std::size(kIQ1SGridValues); ++m) {
    values[2 * m] = int8_t(8 * kIQ1SGridValues[m] - 1);
    values[2 * m + 1] = int8_t(8 * kIQ1SGridValues[m] + 1);
  }
  return values;
}
constexpr std::array<int8_t, 16> kIQ1Codebook = iq1Values();

uint8_t iq1Code(unsigned m, bool negativeDelta) {
  return uint8_t(2 * m + (negativeDelta ? 0 : 1));
}

/// The rows16 form of ggml format `kind`: the ggml facts (code bits, block
/// values and bytes, min) from GGMLFormats.h, the rows16 ones given here.
/// The grid formats are rewritten to 4-bit codes of `codebook` (codeBits).
constexpr Rows16Format rows16(GGMLType kind, unsigned headerBytes,
                              unsigned offset, unsigned codeBits = 0,
                              const int8_t *codebook = nullptr,
                              float scaleFactor = 1.0f) {
  const ::kiln::GGMLFormat &ggml = ::kiln::getGGMLFormat(kind);
  Rows16Format f{};
  f.kind = kind;
  for (unsigned i = 0; ggml.name[i] && i + 1 < sizeof(f.name); ++i)
    f.name[i] = ggml.name[i] >= 'A' && ggml.name[i] <= 'Z'
                    ? char(ggml.name[i] - 'A' + 'a')
                    : ggml.name[i];
  f.codeBits = codeBits ? codeBits : ggml.bits;
  f.superValues = ggml.blockValues;
  f.sourceBytes = ggml.blockBytes;
  f.headerBytes = headerBytes;
  f.offset = offset;
  f.hasMin = ggml.hasMin;
  f.halfScales = ggml.superGroup != 0 && ggml.group == 16;
  f.codebook = codebook ? codebook : ::kiln::getCodebookValues(ggml.codebook);
  f.scaleFactor = scaleFactor;
  return f;
}

constexpr Rows16Format kFormats[] = {
    // ggml format, header bytes (Rows16.h), code offset
    rows16(GGMLType::Q4_0, 32, 8),
    rows16(GGMLType::Q4_1, 64, 0),
    rows16(GGMLType::Q5_0, 32, 16),
    rows16(GGMLType::Q5_1, 64, 0),
    rows16(GGMLType::Q8_0, 32, 128),
    rows16(GGMLType::Q2_K, 320, 0),
    rows16(GGMLType::Q3_K, 288, 4),
    rows16(GGMLType::Q4_K, 320, 0),
    rows16(GGMLType::Q5_K, 320, 0),
    rows16(GGMLType::Q6_K, 288, 32),
    rows16(GGMLType::IQ4_NL, 32, 128),
    rows16(GGMLType::IQ4_XS, 160, 128),
    // Trits 0, 1, 2 as Q2_K's 2-bit codes; value d * (trit - 1).
    rows16(GGMLType::TQ2_0, 32, 1),
    rows16(GGMLType::TQ1_0, 32, 1),
    // Sub-block scale d * (2 ls + 1) / 8 (IQ2_XXS) or / 4 (IQ3_XXS).
    rows16(GGMLType::IQ2_XXS, 160, 128, 4, kIQ2XXSCodebook.data(), 0.125f),
    rows16(GGMLType::IQ3_XXS, 160, 128, 4, kIQ3XXSCodebook.data(), 0.25f),
    // Scales per 16 values (Q6_K's header), d * (2 ls + 1) / 8; IQ2_XS's
    // grid has IQ2_XXS's magnitudes.
    rows16(GGMLType::IQ2_XS, 288, 128, 4, kIQ2XXSCodebook.data(), 0.125f),
    rows16(GGMLType::IQ3_S, 160, 128, 4, kIQ3SCodebook.data()),
    // IQ2_S: IQ2_XS's scales and magnitudes.
    rows16(GGMLType::IQ2_S, 288, 128, 4, kIQ2XXSCodebook.data(), 0.125f),
    // IQ1_S (scales per 32 values) and IQ1_M (per 16): d * (2 ls + 1) / 8
    // times kIQ1Codebook's 8 (grid +- delta).
    rows16(GGMLType::IQ1_S, 160, 128, 4, kIQ1Codebook.data(), 0.125f),
    rows16(GGMLType::IQ1_M, 288, 128, 4, kIQ1Codebook.data(), 0.125f),
};

/// One super-block of one row, decoded from its ggml block.
struct Decoded {
  uint8_t codes[256];
  uint16_t d = 0, m = 0; // raw f16 bits: scale, and min (or dmin)
  uint8_t sc[16] = {}, mins[8] = {};
};

uint16_t readU16(const uint8_t *p) { return uint16_t(p[0] | (p[1] << 8)); }

void decodeLegacy(const Rows16Format &f, const uint8_t *b, Decoded &out) {
  out.d = readU16(b);
  unsigned at = 2;
  if (f.hasMin) {
    out.m = readU16(b + 2);
    at = 4;
  }
  if (f.codeBits == 8) {
    for (unsigned i = 0; i < 32; ++i)
      out.codes[i] = uint8_t(b[at + i] ^ 0x80); // int8 q + 128
    return;
  }
  uint32_t high = 0;
  if (f.codeBits == 5) {
    high = uint32_t(b[at]) | uint32_t(b[at + 1]) << 8 |
           uint32_t(b[at + 2]) << 16 | uint32_t(b[at + 3]) << 24;
    at += 4;
  }
  for (unsigned j = 0; j < 16; ++j) {
    uint8_t q = b[at + j];
    out.codes[j] = uint8_t((q & 15) | ((high >> j) & 1) << 4);
    out.codes[j + 16] = uint8_t((q >> 4) | ((high >> (j + 16)) & 1) << 4);
  }
}

/// Q4_K (qh null) and Q5_K: the same scales; Q5_K's fifth bits in qh.
void decodeQ4KQ5K(const uint8_t *b, const uint8_t *qh, const uint8_t *qs,
                  Decoded &out) {
  out.d = readU16(b);
  out.m = readU16(b + 2);
  const uint8_t *s = b + 4;
  // ggml's get_scale_min_k4: 8 six-bit scales and mins in 12 bytes.
  for (unsigned j = 0; j < 8; ++j) {
    if (j < 4) {
      out.sc[j] = s[j] & 63;
      out.mins[j] = s[j + 4] & 63;
    } else {
      out.sc[j] = uint8_t((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
      out.mins[j] = uint8_t((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
  }
  for (unsigned i = 0; i < 4; ++i)
    for (unsigned l = 0; l < 32; ++l) {
      unsigned high = qh ? qh[l] >> (2 * i) : 0;
      out.codes[64 * i + l] = uint8_t((qs[32 * i + l] & 15) | (high & 1) << 4);
      out.codes[64 * i + 32 + l] =
          uint8_t((qs[32 * i + l] >> 4) | ((high >> 1) & 1) << 4);
    }
}

void decodeQ6K(const uint8_t *b, Decoded &out) {
  const uint8_t *ql = b, *qh = b + 128;
  for (unsigned j = 0; j < 16; ++j)
    out.sc[j] = b[192 + j];
  out.d = readU16(b + 208);
  for (unsigned half = 0; half < 2; ++half, ql += 64, qh += 32) {
    uint8_t *c = out.codes + 128 * half;
    for (unsigned l = 0; l < 32; ++l) {
      c[l] = uint8_t((ql[l] & 15) | ((qh[l] >> 0) & 3) << 4);
      c[l + 32] = uint8_t((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4);
      c[l + 64] = uint8_t((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4);
      c[l + 96] = uint8_t((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4);
    }
  }
}

/// ggml-quants.c dequantize_row_q2_K: value 128h + 32j + l (l < 32) is bits
/// 2j..2j+1 of qs[32h + l]; its sub-block's scale byte passes through.
void decodeQ2K(const uint8_t *b, Decoded &out) {
  const uint8_t *qs = b + 16;
  for (unsigned j = 0; j < 16; ++j)
    out.sc[j] = b[j];
  out.d = readU16(b + 80);
  out.m = readU16(b + 82);
  for (unsigned h = 0; h < 2; ++h)
    for (unsigned j = 0; j < 4; ++j)
      for (unsigned l = 0; l < 32; ++l)
        out.codes[128 * h + 32 * j + l] =
            uint8_t((qs[32 * h + l] >> (2 * j)) & 3);
}

/// ggml-quants.c dequantize_row_q3_K: Q2_K's 2-bit codes plus bit
/// 4h + j of hmask[l] as bit 2 (set: no -4), and 16 six-bit scales minus 32:
/// low nibbles in bytes 0..7 (scales 0..7 low, 8..15 high nibble), top two
/// bits in bytes 8..11 (scale i: bits 2(i/4) of byte 8 + i%4).
void decodeQ3K(const uint8_t *b, Decoded &out) {
  const uint8_t *hmask = b, *qs = b + 32, *s = b + 96;
  for (unsigned i = 0; i < 16; ++i) {
    unsigned low = i < 8 ? s[i] & 15 : s[i - 8] >> 4;
    unsigned high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
    out.sc[i] = uint8_t(int8_t(int(low | high << 4) - 32));
  }
  out.d = readU16(b + 108);
  for (unsigned h = 0; h < 2; ++h)
    for (unsigned j = 0; j < 4; ++j)
      for (unsigned l = 0; l < 32; ++l)
        out.codes[128 * h + 32 * j + l] =
            uint8_t(((qs[32 * h + l] >> (2 * j)) & 3) |
                    ((hmask[l] >> (4 * h + j)) & 1) << 2);
}

/// ggml-quants.c dequantize_row_iq4_xs: sub-block j's scale is 4 bits of
/// scales_l[j / 2] and 2 of scales_h, minus 32; its 16 code bytes hold
/// values l (low nibble) and l + 16 (high), as Q4_0's.
void decodeIQ4XS(const uint8_t *b, Decoded &out) {
  out.d = readU16(b);
  uint16_t high = readU16(b + 2);
  const uint8_t *low = b + 4, *qs = b + 8;
  for (unsigned j = 0; j < 8; ++j) {
    unsigned ls = ((low[j / 2] >> (4 * (j % 2))) & 15) |
                  ((high >> (2 * j)) & 3) << 4;
    out.sc[j] = uint8_t(int8_t(int(ls) - 32));
    for (unsigned l = 0; l < 16; ++l) {
      out.codes[32 * j + l] = qs[16 * j + l] & 15;
      out.codes[32 * j + 16 + l] = qs[16 * j + l] >> 4;
    }
  }
}

uint32_t readU32(const uint8_t *p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
         uint32_t(p[3]) << 24;
}

/// ggml-quants.c dequantize_row_tq2_0: Q2_K's arrangement of 2-bit codes
/// (value 128h + 32j + l is bits 2j..2j+1 of qs[32h + l]), d at the end.
void decodeTQ2(const uint8_t *b, Decoded &out) {
  for (unsigned h = 0; h < 2; ++h)
    for (unsigned j = 0; j < 4; ++j)
      for (unsigned l = 0; l < 32; ++l)
        out.codes[128 * h + 32 * j + l] = uint8_t((b[32 * h + l] >> (2 * j)) & 3);
  out.d = readU16(b + 64);
}

/// ggml-quants.c dequantize_row_tq1_0: byte q holds trits as a fraction of
/// 243; trit n is the top base-3 digit of q * 3^n (mod 256): (q * 3^n * 3)
/// >> 8. Values 32n + m from qs[m] (m < 32), 160 + 16n + m from qs[32 + m],
/// 240 + 4n + m from qh[m].
void decodeTQ1(const uint8_t *b, Decoded &out) {
  const uint8_t *qs = b, *qh = b + 48;
  auto trit = [](uint8_t q, unsigned n) {
    static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
    return uint8_t((uint16_t(uint8_t(q * kPow3[n])) * 3) >> 8);
  };
  for (unsigned n = 0; n < 5; ++n) {
    for (unsigned m = 0; m < 32; ++m)
      out.codes[32 * n + m] = trit(qs[m], n);
    for (unsigned m = 0; m < 16; ++m)
      out.codes[160 + 16 * n + m] = trit(qs[32 + m], n);
  }
  for (unsigned n = 0; n < 4; ++n)
    for (unsigned m = 0; m < 4; ++m)
      out.codes[240 + 4 * n + m] = trit(qh[m], n);
  out.d = readU16(b + 52);
}

/// ggml-quants.c dequantize_row_iq2_xxs: sub-block j (32 values) is two
/// u32s: 4 grid indices (8 values each), then 4 x 7 bits of sign pattern
/// and the scale ls in the top 4 bits (value d * (ls + 1/2) / 4 * grid).
void decodeIQ2XXS(const uint8_t *b, Decoded &out) {
  out.d = readU16(b);
  for (unsigned j = 0; j < 8; ++j) {
    uint32_t grid = readU32(b + 2 + 8 * j), signs = readU32(b + 6 + 8 * j);
    out.sc[j] = uint8_t(2 * (signs >> 28) + 1);
    for (unsigned l = 0; l < 4; ++l) {
      const uint8_t *entry = kIQ2XXSGrid[(grid >> (8 * l)) & 255];
      uint8_t pattern = kIQ2SignPatterns[(signs >> (7 * l)) & 127];
      for (unsigned v = 0; v < 8; ++v)
        out.codes[32 * j + 8 * l + v] =
            gridCode(3, entry[v], (pattern >> v) & 1);
    }
  }
}

/// ggml-quants.c dequantize_row_iq3_xxs: 64 grid indices (4 values each),
/// then per sub-block j a u32 of 4 x 7 bits of sign pattern (one per 8
/// values) and the scale ls in the top 4 bits (d * (ls + 1/2) / 2 * grid).
void decodeIQ3XXS(const uint8_t *b, Decoded &out) {
  out.d = readU16(b);
  const uint8_t *qs = b + 2;
  for (unsigned j = 0; j < 8; ++j) {
    uint32_t signs = readU32(b + 66 + 4 * j);
    out.sc[j] = uint8_t(2 * (signs >> 28) + 1);
    for (unsigned l = 0; l < 4; ++l) {
      uint8_t pattern = kIQ2SignPatterns[(signs >> (7 * l)) & 127];
      for (unsigned v = 0; v < 8; ++v) {
        const uint8_t *entry = kIQ3XXSGrid[qs[8 * j + 2 * l + v / 4]];
        out.codes[32 * j + 8 * l + v] =
            gridCode(8, entry[v % 4], (pattern >> v) & 1);
      }
    }
  }
}

/// ggml-quants.c dequantize_row_iq2_xs: per 8 values a u16, a 9-bit
/// iq2xs_grid index and 7 bits of sign pattern; scales[j] holds sub-block
/// j's two scales (low nibble: first 16 values), d * (ls + 1/2) / 4.
void decodeIQ2XS(const uint8_t *b, Decoded &out) {
  static_assert(kIQ2XSGridValues[0] == kIQ2XXSGridValues[0] &&
                    kIQ2XSGridValues[2] == kIQ2XXSGridValues[2],
                "IQ2_XS shares IQ2_XXS's rows16 codebook");
  out.d = readU16(b);
  const uint8_t *scales = b + 66;
  for (unsigned j = 0; j < 8; ++j) {
    out.sc[2 * j] = uint8_t(2 * (scales[j] & 15) + 1);
    out.sc[2 * j + 1] = uint8_t(2 * (scales[j] >> 4) + 1);
    for (unsigned l = 0; l < 4; ++l) {
      uint16_t q = readU16(b + 2 + 2 * (4 * j + l));
      const uint8_t *entry = kIQ2XSGrid[q & 511];
      uint8_t pattern = kIQ2SignPatterns[q >> 9];
      for (unsigned v = 0; v < 8; ++v)
        out.codes[32 * j + 8 * l + v] =
            gridCode(3, entry[v], (pattern >> v) & 1);
    }
  }
}

/// ggml-quants.c dequantize_row_iq3_s: per 4 values a 9-bit iq3s_grid index
/// (8 bits in qs, the ninth bit 2l + h of qh[j]), one sign byte per 8
/// values, and a 4-bit scale per 32 values (scales[j / 2], low nibble
/// first): d * (2 ls + 1) * grid.
void decodeIQ3S(const uint8_t *b, Decoded &out) {
  out.d = readU16(b);
  const uint8_t *qs = b + 2, *qh = b + 66, *signs = b + 74, *scales = b + 106;
  for (unsigned j = 0; j < 8; ++j) {
    out.sc[j] = uint8_t(2 * ((scales[j / 2] >> (4 * (j % 2))) & 15) + 1);
    for (unsigned l = 0; l < 4; ++l)
      for (unsigned v = 0; v < 8; ++v) {
        unsigned h = v / 4;
        unsigned index = qs[8 * j + 2 * l + h] |
                         ((qh[j] >> (2 * l + h)) & 1) << 8;
        out.codes[32 * j + 8 * l + v] = gridCode(
            8, kIQ3SGrid[index][v % 4], (signs[4 * j + l] >> v) & 1);
      }
  }
}

/// ggml-quants.c dequantize_row_iq2_s: per 8 values a 10-bit iq2s_grid
/// index (8 bits in qs, bits 2l..2l+1 of qh[j] above them) and a sign byte
/// (after the 32 index bytes); scales as IQ2_XS's, d * (ls + 1/2) / 4.
void decodeIQ2S(const uint8_t *b, Decoded &out) {
  static_assert(kIQ2SGridValues[0] == kIQ2XXSGridValues[0] &&
                    kIQ2SGridValues[2] == kIQ2XXSGridValues[2],
                "IQ2_S shares IQ2_XXS's rows16 codebook");
  out.d = readU16(b);
  const uint8_t *qs = b + 2, *signs = b + 34, *qh = b + 66, *scales = b + 74;
  for (unsigned j = 0; j < 8; ++j) {
    out.sc[2 * j] = uint8_t(2 * (scales[j] & 15) + 1);
    out.sc[2 * j + 1] = uint8_t(2 * (scales[j] >> 4) + 1);
    for (unsigned l = 0; l < 4; ++l) {
      const uint8_t *entry =
          kIQ2SGrid[qs[4 * j + l] | ((qh[j] >> (2 * l)) & 3) << 8];
      uint8_t sign = signs[4 * j + l];
      for (unsigned v = 0; v < 8; ++v)
        out.codes[32 * j + 8 * l + v] = gridCode(3, entry[v], (sign >> v) & 1);
    }
  }
}

/// ggml-quants.c dequantize_row_iq1_s: per 32 values a u16 qh holding the
/// top 3 bits of four 11-bit iq1s_grid indices (bits 3l..3l+2), the scale
/// ls (bits 12..14, d * (2 ls + 1)) and the delta's sign (bit 15: -1/8).
void decodeIQ1S(const uint8_t *b, Decoded &out) {
  out.d = readU16(b);
  const uint8_t *qs = b + 2;
  for (unsigned j = 0; j < 8; ++j) {
    uint16_t qh = readU16(b + 34 + 2 * j);
    out.sc[j] = uint8_t(2 * ((qh >> 12) & 7) + 1);
    bool negativeDelta = qh & 0x8000;
    for (unsigned l = 0; l < 4; ++l) {
      const uint8_t *entry =
          kIQ1SGrid[qs[4 * j + l] | ((qh >> (3 * l)) & 7) << 8];
      for (unsigned v = 0; v < 8; ++v)
        out.codes[32 * j + 8 * l + v] = iq1Code(entry[v], negativeDelta);
    }
  }
}

/// ggml-quants.c dequantize_row_iq1_m: per 8 values k a nibble of qh
/// (qh[k / 2], low nibble first): the index's top 3 bits and the delta's
/// sign (bit 3); per 16 values g a 3-bit scale, bits 3 (g % 4) of the u16
/// scales[g / 4], whose top nibbles hold the f16 d (nibble i in word i).
void decodeIQ1M(const uint8_t *b, Decoded &out) {
  const uint8_t *qs = b, *qh = b + 32;
  uint16_t sc[4];
  for (unsigned i = 0; i < 4; ++i)
    sc[i] = readU16(b + 48 + 2 * i);
  out.d = uint16_t((sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) |
                   ((sc[2] >> 4) & 0x0F00) | (sc[3] & 0xF000));
  for (unsigned g = 0; g < 16; ++g)
    out.sc[g] = uint8_t(2 * ((sc[g / 4] >> (3 * (g % 4))) & 7) + 1);
  for (unsigned k = 0; k < 32; ++k) {
    unsigned high = (qh[k / 2] >> (4 * (k % 2))) & 15;
    const uint8_t *entry = kIQ1SGrid[qs[k] | (high & 7) << 8];
    for (unsigned v = 0; v < 8; ++v)
      out.codes[8 * k + v] = iq1Code(entry[v], high & 8);
  }
}

void put16(uint8_t *p, uint16_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
}

/// Writes row r's 32 codes of one block into the block's planes.
void placeCodes(const Rows16Format &f, const uint8_t *codes, unsigned r,
                uint8_t *block) {
  if (f.codeBits == 8) {
    for (unsigned v = 0; v < 32; ++v)
      block[64 * (v / 4) + 4 * r + v % 4] = codes[v];
    return;
  }
  if (f.codeBits == 2) {
    for (unsigned v = 0; v < 32; ++v) {
      unsigned t = v / 4, at = 4 * r + v % 4;
      block[64 * (t / 4) + at] |= uint8_t((codes[v] & 3) << (2 * (t % 4)));
    }
    return;
  }
  if (f.codeBits == 3) {
    for (unsigned v = 0; v < 32; ++v) {
      unsigned t = v / 4, at = 4 * r + v % 4;
      uint8_t c = codes[v] & 7;
      if (t < 6) {
        block[64 * (t / 2) + at] |= uint8_t(c << (3 * (t % 2)));
        continue;
      }
      block[64 * (t - 6) + at] |= uint8_t((c & 3) << 6);
      block[128 + at] |= uint8_t((c >> 2) << t);
    }
    return;
  }
  uint8_t *nibbles = block + (f.codeBits - 4) * 64;
  // 7-bit: bit 6 in the first plane, bits 4..5 in the next two.
  uint8_t *crumbs = f.codeBits == 7 ? block + 64 : block;
  for (unsigned v = 0; v < 32; ++v) {
    unsigned t = v / 4, at = 4 * r + v % 4;
    uint8_t c = codes[v];
    if (t < 4)
      nibbles[64 * t + at] |= c & 15;
    else
      nibbles[64 * (t - 4) + at] |= uint8_t((c & 15) << 4);
    if (f.codeBits == 5)
      block[at] |= uint8_t(((c >> 4) & 1) << t);
    if (f.codeBits >= 6)
      crumbs[64 * (t / 4) + at] |= uint8_t(((c >> 4) & 3) << (2 * (t % 4)));
    if (f.codeBits == 7)
      block[at] |= uint8_t(((c >> 6) & 1) << t);
  }
}

/// Row r's codes of one group of Kiln's packed layout (`codes`: bits *
/// group / 8 bytes, code i at bits [i * bits, (i + 1) * bits), LSB first).
void unpackPackedCodes(unsigned bits, unsigned group, const uint8_t *codes,
                       uint8_t *out) {
  for (unsigned i = 0; i < group; ++i) {
    unsigned bit = i * bits, byte = bit / 8, shift = bit % 8;
    unsigned word = codes[byte];
    if (shift + bits > 8)
      word |= unsigned(codes[byte + 1]) << 8;
    out[i] = uint8_t((word >> shift) & ((1u << bits) - 1));
  }
}

/// Copies the packed scale and zero of one row into a header, each field
/// 16 rows wide in its stored type.
void placePackedHeader(const Rows16Format &f, const uint8_t *source,
                       unsigned r, uint8_t *header) {
  unsigned scaleBytes = rows16FloatBytes(f.scaleType);
  std::memcpy(header + scaleBytes * r, source, scaleBytes);
  if (f.hasMin) {
    unsigned zeroBytes = rows16FloatBytes(f.zeroType);
    std::memcpy(header + kRows16 * scaleBytes + zeroBytes * r,
                source + scaleBytes, zeroBytes);
  }
}

void packPackedRows16(const Rows16Format &f, uint64_t n, uint64_t k,
                      const uint8_t *source, uint8_t *dest) {
  uint64_t supers = k / f.superValues, blocksPerSuper = f.superValues / 32;
  uint64_t groupBytes = f.groupBytes(k), headerRegion = f.headerRegionBytes(k);
  unsigned fieldBytes = rows16FloatBytes(f.scaleType) +
                        (f.hasMin ? rows16FloatBytes(f.zeroType) : 0);
  std::vector<uint8_t> codes(f.superValues);
  for (uint64_t row = 0; row < n; ++row) {
    unsigned r = unsigned(row % kRows16);
    uint8_t *group = dest + row / kRows16 * groupBytes;
    for (uint64_t s = 0; s < supers; ++s) {
      const uint8_t *block = source + (row * supers + s) * f.sourceBytes;
      placePackedHeader(f, block, r, group + s * f.headerBytes);
      unpackPackedCodes(f.codeBits, f.superValues, block + fieldBytes,
                        codes.data());
      for (uint64_t j = 0; j < blocksPerSuper; ++j)
        placeCodes(f, codes.data() + 32 * j, r,
                   group + headerRegion +
                       (s * blocksPerSuper + j) * f.blockCodeBytes());
    }
  }
}

Rows16Format packedRows16(unsigned bits, unsigned group, Rows16Float scaleType,
                          std::optional<Rows16Float> zeroType) {
  Rows16Format f{};
  f.kind = GGMLType::F32;
  std::string name = packedFormatName(bits, group, scaleType, zeroType);
  std::strncpy(f.name, name.c_str(), sizeof(f.name) - 1);
  f.codeBits = bits;
  f.superValues = group;
  unsigned fieldBytes =
      rows16FloatBytes(scaleType) + (zeroType ? rows16FloatBytes(*zeroType) : 0);
  f.sourceBytes = fieldBytes + group * bits / 8;
  f.headerBytes = kRows16 * fieldBytes;
  f.offset = zeroType ? 0 : 1u << (bits - 1);
  f.hasMin = zeroType.has_value();
  f.scaleFactor = 1.0f;
  f.packed = true;
  f.scaleType = scaleType;
  f.zeroType = zeroType.value_or(Rows16Float::F16);
  return f;
}

} // namespace

static const char *rows16FloatName(Rows16Float t) {
  return t == Rows16Float::F32 ? "f32" : t == Rows16Float::F16 ? "f16" : "bf16";
}

std::string mlir::kiln::packedFormatName(unsigned bits, unsigned group,
                                         Rows16Float scaleType,
                                         std::optional<Rows16Float> zeroType) {
  std::string name = "p" + std::to_string(bits) + "g" + std::to_string(group) +
                     "_" + rows16FloatName(scaleType);
  if (zeroType)
    name += std::string("_z") + rows16FloatName(*zeroType);
  return name;
}

const Rows16Format *mlir::kiln::findRows16Format(GGMLType kind) {
  for (const Rows16Format &f : kFormats)
    if (f.kind == kind)
      return &f;
  return nullptr;
}

const Rows16Format *
mlir::kiln::findPackedRows16Format(unsigned bits, unsigned group,
                                   Rows16Float scaleType,
                                   std::optional<Rows16Float> zeroType) {
  // Kernels unroll a super-block's 32-value blocks: per-channel groups
  // (thousands of values) keep the row-at-a-time kernels.
  if (bits < 2 || bits > 8 || group == 0 || group % 32 != 0 ||
      group > kMaxPackedRows16Group)
    return nullptr;
  // Forms are made on first use (any group is allowed) and live as long as
  // the process: callers keep pointers.
  using Key = std::tuple<unsigned, unsigned, Rows16Float, int>;
  static std::mutex mutex;
  static std::map<Key, std::unique_ptr<Rows16Format>> forms;
  Key key{bits, group, scaleType, zeroType ? int(*zeroType) : -1};
  std::lock_guard<std::mutex> lock(mutex);
  std::unique_ptr<Rows16Format> &form = forms[key];
  if (!form)
    form = std::make_unique<Rows16Format>(
        packedRows16(bits, group, scaleType, zeroType));
  return form.get();
}

std::optional<uint64_t> mlir::kiln::rows16Bytes(const Rows16Format &format,
                                          uint64_t n, uint64_t k) {
  if (k == 0 || k % format.superValues != 0 || n == 0)
    return std::nullopt;
  std::optional<uint64_t> codes = checkedMul(k / 32, format.blockCodeBytes());
  std::optional<uint64_t> headers =
      checkedMul(k / format.superValues, format.headerBytes);
  if (!codes || !headers)
    return std::nullopt;
  std::optional<uint64_t> group = checkedAdd(*codes, (*headers + 63) / 64 * 64);
  if (!group)
    return std::nullopt;
  return checkedMul((n + kRows16 - 1) / kRows16, *group);
}

void mlir::kiln::packRows16(const Rows16Format &f, uint64_t n, uint64_t k,
                      const uint8_t *source, uint8_t *dest) {
  uint64_t supers = k / f.superValues, blocksPerSuper = f.superValues / 32;
  uint64_t groupBytes = f.groupBytes(k), headerRegion = f.headerRegionBytes(k);
  uint64_t groups = (n + kRows16 - 1) / kRows16;
  std::memset(dest, 0, groups * groupBytes);
  if (f.packed)
    return packPackedRows16(f, n, k, source, dest);
  Decoded dec;
  for (uint64_t row = 0; row < n; ++row) {
    unsigned r = unsigned(row % kRows16);
    uint8_t *group = dest + row / kRows16 * groupBytes;
    for (uint64_t s = 0; s < supers; ++s) {
      const uint8_t *block = source + (row * supers + s) * f.sourceBytes;
      if (f.kind == GGMLType::Q4_K)
        decodeQ4KQ5K(block, nullptr, block + 16, dec);
      else if (f.kind == GGMLType::Q5_K)
        decodeQ4KQ5K(block, block + 16, block + 48, dec);
      else if (f.kind == GGMLType::Q6_K)
        decodeQ6K(block, dec);
      else if (f.kind == GGMLType::Q2_K)
        decodeQ2K(block, dec);
      else if (f.kind == GGMLType::Q3_K)
        decodeQ3K(block, dec);
      else if (f.kind == GGMLType::IQ4_XS)
        decodeIQ4XS(block, dec);
      else if (f.kind == GGMLType::TQ2_0)
        decodeTQ2(block, dec);
      else if (f.kind == GGMLType::TQ1_0)
        decodeTQ1(block, dec);
      else if (f.kind == GGMLType::IQ2_XXS)
        decodeIQ2XXS(block, dec);
      else if (f.kind == GGMLType::IQ3_XXS)
        decodeIQ3XXS(block, dec);
      else if (f.kind == GGMLType::IQ2_XS)
        decodeIQ2XS(block, dec);
      else if (f.kind == GGMLType::IQ3_S)
        decodeIQ3S(block, dec);
      else if (f.kind == GGMLType::IQ2_S)
        decodeIQ2S(block, dec);
      else if (f.kind == GGMLType::IQ1_S)
        decodeIQ1S(block, dec);
      else if (f.kind == GGMLType::IQ1_M)
        decodeIQ1M(block, dec);
      else
        decodeLegacy(f, block, dec);
      uint8_t *header = group + s * f.headerBytes;
      put16(header + 2 * r, dec.d);
      if (f.kind == GGMLType::Q4_K || f.kind == GGMLType::Q5_K) {
        put16(header + 32 + 2 * r, dec.m);
        for (unsigned j = 0; j < 8; ++j) {
          header[64 + 16 * j + r] = dec.sc[j];
          header[192 + 16 * j + r] = dec.mins[j];
        }
      } else if (f.kind == GGMLType::Q2_K) {
        put16(header + 32 + 2 * r, dec.m);
        for (unsigned j = 0; j < 16; ++j)
          header[64 + 16 * j + r] = dec.sc[j];
      } else if (f.kind == GGMLType::IQ4_XS || f.kind == GGMLType::IQ2_XXS ||
                 f.kind == GGMLType::IQ3_XXS || f.kind == GGMLType::IQ3_S ||
                 f.kind == GGMLType::IQ1_S) {
        for (unsigned j = 0; j < 8; ++j)
          header[32 + 16 * j + r] = dec.sc[j];
      } else if (f.kind == GGMLType::Q6_K || f.kind == GGMLType::Q3_K ||
                 f.kind == GGMLType::IQ2_XS || f.kind == GGMLType::IQ2_S ||
                 f.kind == GGMLType::IQ1_M) {
        for (unsigned j = 0; j < 16; ++j)
          header[32 + 16 * j + r] = dec.sc[j];
      } else if (f.hasMin) {
        put16(header + 32 + 2 * r, dec.m);
      }
      for (uint64_t j = 0; j < blocksPerSuper; ++j)
        placeCodes(f, dec.codes + 32 * j, r,
                   group + headerRegion +
                       (s * blocksPerSuper + j) * f.blockCodeBytes());
    }
  }
}
