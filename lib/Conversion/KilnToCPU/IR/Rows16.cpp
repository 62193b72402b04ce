//===- Rows16.cpp - packing ggml blocks into the rows16 layout ------------===//

#include "Conversion/KilnToCPU/IR/Rows16.h"
#include "Kiln/IR/WeightLayout.h"

#include <cstring>

using namespace mlir::kiln;
using ::kiln::checkedAdd;
using ::kiln::GGMLType;
using ::kiln::checkedMul;

namespace {

/// The rows16 form of ggml format `kind`: the ggml facts (code bits, block
/// values and bytes, min) from GGMLFormats.h, the rows16 ones given here.
constexpr Rows16Format rows16(GGMLType kind, unsigned headerBytes,
                              unsigned offset) {
  const ::kiln::GGMLFormat &ggml = ::kiln::getGGMLFormat(kind);
  Rows16Format f{};
  f.kind = kind;
  for (unsigned i = 0; ggml.name[i] && i + 1 < sizeof(f.name); ++i)
    f.name[i] = ggml.name[i] >= 'A' && ggml.name[i] <= 'Z'
                    ? char(ggml.name[i] - 'A' + 'a')
                    : ggml.name[i];
  f.codeBits = ggml.bits;
  f.superValues = ggml.blockValues;
  f.sourceBytes = ggml.blockBytes;
  f.headerBytes = headerBytes;
  f.offset = offset;
  f.hasMin = ggml.hasMin;
  f.halfScales = ggml.superGroup != 0 && ggml.group == 16;
  return f;
}

constexpr Rows16Format kFormats[] = {
    // ggml format, header bytes (Rows16.h), code offset
    rows16(GGMLType::Q4_0, 32, 8),
    rows16(GGMLType::Q4_1, 64, 0),
    rows16(GGMLType::Q5_0, 32, 16),
    rows16(GGMLType::Q5_1, 64, 0),
    rows16(GGMLType::Q8_0, 32, 128),
    rows16(GGMLType::Q4_K, 320, 0),
    rows16(GGMLType::Q5_K, 320, 0),
    rows16(GGMLType::Q6_K, 288, 32),
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
  uint8_t *nibbles = block + (f.codeBits - 4) * 64;
  for (unsigned v = 0; v < 32; ++v) {
    unsigned t = v / 4, at = 4 * r + v % 4;
    uint8_t c = codes[v];
    if (t < 4)
      nibbles[64 * t + at] |= c & 15;
    else
      nibbles[64 * (t - 4) + at] |= uint8_t((c & 15) << 4);
    if (f.codeBits == 5)
      block[at] |= uint8_t(((c >> 4) & 1) << t);
    else if (f.codeBits == 6)
      block[64 * (t / 4) + at] |= uint8_t(((c >> 4) & 3) << (2 * (t % 4)));
  }
}

} // namespace

const Rows16Format *mlir::kiln::findRows16Format(GGMLType kind) {
  for (const Rows16Format &f : kFormats)
    if (f.kind == kind)
      return &f;
  return nullptr;
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
      } else if (f.kind == GGMLType::Q6_K) {
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
