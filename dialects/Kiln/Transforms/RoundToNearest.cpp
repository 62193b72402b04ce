//===- RoundToNearest.cpp - round-to-nearest weight quantizers ------------===//

#include "Kiln/Transforms/RoundToNearest.h"

#include "llvm/ADT/bit.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

// The ggml encoders must round exactly as ggml-quants.c does: no fused
// multiply-adds where the reference multiplies and adds separately.
#pragma clang fp contract(off)

namespace kiln {

unsigned getScalarBytes(ScalarType type) {
  return type == ScalarType::F32 ? 4 : 2;
}

uint16_t floatToHalf(float value) {
  uint32_t x = llvm::bit_cast<uint32_t>(value);
  uint16_t sign = (x >> 16) & 0x8000;
  uint32_t magnitude = x & 0x7fffffff;
  if (magnitude > 0x7f800000) // NaN stays a (quiet) NaN
    return sign | 0x7e00 | ((magnitude >> 13) & 0x3ff);
  if (magnitude >= 0x477ff000) // >= 65520 rounds to infinity
    return sign | 0x7c00;
  if (magnitude >= 0x38800000) { // a normal half: >= 2^-14
    // Round the 13 dropped mantissa bits to nearest even; a carry moves into
    // the exponent, which is the right result.
    uint32_t rounded = magnitude + 0xfff + ((magnitude >> 13) & 1);
    return sign | uint16_t((rounded - 0x38000000) >> 13);
  }
  // Subnormal or zero: the mantissa counts units of 2^-24 (scaling by 2^24 is
  // exact, nearbyint rounds to even).
  float units = std::fabs(value) * 16777216.0f;
  return sign | uint16_t(std::nearbyint(units));
}

float halfToFloat(uint16_t bits) {
  uint32_t sign = uint32_t(bits & 0x8000) << 16;
  uint32_t exponent = (bits >> 10) & 0x1f;
  uint32_t mantissa = bits & 0x3ff;
  if (exponent == 0) {
    float magnitude = float(mantissa) / 16777216.0f;
    return llvm::bit_cast<float>(sign | llvm::bit_cast<uint32_t>(magnitude));
  }
  if (exponent == 0x1f)
    return llvm::bit_cast<float>(sign | 0x7f800000 | (mantissa << 13));
  return llvm::bit_cast<float>(sign | ((exponent + 112) << 23) |
                               (mantissa << 13));
}

uint16_t floatToBF16(float value) {
  uint32_t x = llvm::bit_cast<uint32_t>(value);
  if ((x & 0x7fffffff) > 0x7f800000)
    return uint16_t((x >> 16) | 0x40);
  return uint16_t((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

float bf16ToFloat(uint16_t bits) {
  return llvm::bit_cast<float>(uint32_t(bits) << 16);
}

void decodeScalars(ScalarType type, const uint8_t *bytes, int64_t count,
                   float *out) {
  for (int64_t i = 0; i < count; ++i) {
    if (type == ScalarType::F32) {
      std::memcpy(&out[i], bytes + 4 * i, 4);
      continue;
    }
    uint16_t half = uint16_t(bytes[2 * i] | (bytes[2 * i + 1] << 8));
    out[i] = type == ScalarType::F16 ? halfToFloat(half) : bf16ToFloat(half);
  }
}

/// Writes `value` in `type` at `out` (little-endian) and returns the float
/// the decoder will read back.
static float storeScalar(ScalarType type, double value, uint8_t *out) {
  float single = float(value);
  if (type == ScalarType::F32) {
    std::memcpy(out, &single, 4);
    return single;
  }
  uint16_t bits =
      type == ScalarType::F16 ? floatToHalf(single) : floatToBF16(single);
  out[0] = uint8_t(bits);
  out[1] = uint8_t(bits >> 8);
  return type == ScalarType::F16 ? halfToFloat(bits) : bf16ToFloat(bits);
}

void encodeScalars(ScalarType type, const float *values, int64_t count,
                   uint8_t *bytes) {
  for (int64_t i = 0; i < count; ++i)
    storeScalar(type, values[i], bytes + i * getScalarBytes(type));
}

uint64_t PackedScheme::blockBytes() const {
  return getScalarBytes(scaleType) +
         (symmetric ? 0 : getScalarBytes(zeroType)) +
         uint64_t(group) * bits / 8;
}

/// The weight of value i in a group's squared error (1 without importance).
static double importanceAt(const float *importance, unsigned i) {
  return importance ? double(importance[i]) : 1.0;
}

/// scheme.searchScales, symmetric: value = scale * L, L in [-midpoint,
/// midpoint - 1]. Candidates as llama.cpp's make_qx_quants: `largest` mapped
/// to -(midpoint + 0.1 t), t in -9..9; each candidate's codes L refit by
/// least squares (scale = sum w x L / sum w L^2); the least weighted squared
/// error wins. t = 0 refits the extremes' codes, so the result is never worse
/// than the extremes' scale (before the scale is stored).
static double searchSymmetricScale(const float *x, const float *importance,
                                   unsigned group, int64_t midpoint,
                                   double largest) {
  double best = largest / -double(midpoint), bestError = INFINITY;
  for (int t = -9; t <= 9; ++t) {
    const double inverse = -(double(midpoint) + 0.1 * t) / largest;
    double sumXL = 0, sumLL = 0, sumXX = 0;
    for (unsigned i = 0; i < group; ++i) {
      const double w = importanceAt(importance, i), v = x[i];
      const double code = std::clamp(std::nearbyint(v * inverse),
                                     -double(midpoint), double(midpoint) - 1);
      sumXL += w * v * code;
      sumLL += w * code * code;
      sumXX += w * v * v;
    }
    if (sumLL <= 0)
      continue;
    // The least-squares residual: sum w (x - scale L)^2.
    const double error = sumXX - sumXL * sumXL / sumLL;
    if (error < bestError) {
      bestError = error;
      best = sumXL / sumLL;
    }
  }
  return best;
}

/// scheme.searchScales, asymmetric: value = scale * code + zero, code in
/// [0, maxCode]. Candidates: the range [lo, hi] shrunk about its middle by
/// 1 - 0.025 t, t in 0..15; each candidate's codes refit by weighted least
/// squares of (scale, zero); the least weighted squared error wins (t = 0 is
/// the extremes' codes, refit).
static void searchAsymmetricRange(const float *x, const float *importance,
                                  unsigned group, int64_t maxCode, double lo,
                                  double hi, double &scale, double &zero) {
  scale = (hi - lo) / double(maxCode);
  zero = lo;
  double bestError = INFINITY;
  for (int t = 0; t < 16; ++t) {
    const double half = 0.5 * (hi - lo) * (1 - 0.025 * t);
    const double start = 0.5 * (hi + lo) - half;
    const double inverse = double(maxCode) / (2 * half);
    double sw = 0, sl = 0, sll = 0, sx = 0, slx = 0, sxx = 0;
    for (unsigned i = 0; i < group; ++i) {
      const double w = importanceAt(importance, i), v = x[i];
      const double code = std::clamp(std::nearbyint((v - start) * inverse),
                                     0.0, double(maxCode));
      sw += w;
      sl += w * code;
      sll += w * code * code;
      sx += w * v;
      slx += w * code * v;
      sxx += w * v * v;
    }
    const double det = sw * sll - sl * sl;
    if (!(det > 0))
      continue;
    const double s = (sw * slx - sl * sx) / det;
    const double z = (sll * sx - sl * slx) / det;
    if (!(s > 0))
      continue;
    // sum w (x - s L - z)^2 expanded.
    const double error = sxx + s * s * sll + z * z * sw - 2 * s * slx -
                         2 * z * sx + 2 * s * z * sl;
    if (error < bestError) {
      bestError = error;
      scale = s;
      zero = z;
    }
  }
}

void quantizePackedRow(const PackedScheme &scheme, const float *values,
                       int64_t k, uint8_t *out, RoundingFeedback *feedback,
                       const float *importance) {
  const unsigned group = scheme.group;
  const int64_t maxCode = (int64_t(1) << scheme.bits) - 1;
  const int64_t midpoint = int64_t(1) << (scheme.bits - 1);
  assert(k % group == 0 && group * scheme.bits % 8 == 0);
  for (int64_t start = 0; start < k; start += group) {
    const float *x = values + start;
    uint8_t *block = out;
    out += scheme.blockBytes();
    double scale, zero = 0;
    if (scheme.symmetric) {
      double largest = 0; // the value of largest magnitude, first one wins
      for (unsigned i = 0; i < group; ++i)
        if (std::fabs(double(x[i])) > std::fabs(largest))
          largest = x[i];
      scale = scheme.searchScales && largest != 0
                  ? searchSymmetricScale(x, importance ? importance + start
                                                       : nullptr,
                                         group, midpoint, largest)
                  : largest / -double(midpoint);
    } else {
      auto [lo, hi] = std::minmax_element(x, x + group);
      scale = (double(*hi) - double(*lo)) / double(maxCode);
      zero = *lo;
      if (scheme.searchScales && *hi > *lo)
        searchAsymmetricRange(x, importance ? importance + start : nullptr,
                              group, maxCode, *lo, *hi, scale, zero);
    }
    double storedScale = storeScalar(scheme.scaleType, scale, block);
    uint8_t *codes = block + getScalarBytes(scheme.scaleType);
    double storedZero = 0;
    if (!scheme.symmetric) {
      storedZero = storeScalar(scheme.zeroType, zero, codes);
      codes += getScalarBytes(scheme.zeroType);
    }
    std::memset(codes, 0, group * scheme.bits / 8);
    // Codes go LSB first into one little-endian bit stream.
    uint64_t bitPos = 0;
    for (unsigned i = 0; i < group; ++i, bitPos += scheme.bits) {
      int64_t code;
      // Within the group's range (as round to nearest always is) the clamp
      // changes nothing; error feedback may push a value past it.
      auto toCode = [&](double scaled) {
        return int64_t(std::nearbyint(
            std::clamp(scaled, -double(maxCode) - 1, double(maxCode) + 1)));
      };
      if (storedScale == 0)
        code = scheme.symmetric ? midpoint : 0;
      else if (scheme.symmetric)
        code = toCode(double(x[i]) / storedScale) + midpoint;
      else
        code = toCode((double(x[i]) - storedZero) / storedScale);
      code = std::clamp<int64_t>(code, 0, maxCode);
      if (feedback)
        feedback->rounded(start + i,
                          scheme.symmetric
                              ? storedScale * double(code - midpoint)
                              : storedScale * double(code) + storedZero);
      uint32_t shifted = uint32_t(code) << (bitPos % 8);
      for (uint64_t byte = bitPos / 8; shifted; ++byte, shifted >>= 8)
        codes[byte] |= uint8_t(shifted);
    }
  }
}

bool hasGGMLEncoder(GGMLType type) {
  switch (type) {
  case GGMLType::Q4_0:
  case GGMLType::Q4_1:
  case GGMLType::Q5_0:
  case GGMLType::Q5_1:
  case GGMLType::Q8_0:
    return true;
  default:
    return false;
  }
}

namespace {

constexpr int kBlock = 32; // QK4_0 = QK4_1 = QK5_0 = QK5_1 = QK8_0

void storeHalf(uint8_t *out, float value) {
  uint16_t bits = floatToHalf(value);
  out[0] = uint8_t(bits);
  out[1] = uint8_t(bits >> 8);
}

/// Q4_0/Q5_0: d = m / -2^(bits-1) for the value m of largest magnitude
/// (first wins), code = min(2^bits - 1, trunc(x/d + 2^(bits-1) + 0.5)), all
/// in float as in ggml-quants.c.
/// The code for `shifted` (truncated as ggml's int8 cast does; within the
/// block's range it is in [0.5, 2^bits + 0.5), error feedback may leave it).
uint8_t truncatedCode(float shifted, int bits) {
  const float top = float((1 << bits) - 1);
  return uint8_t(std::min(top, std::max(0.0f, shifted)));
}

float symmetricCodes(const float *x, int bits, uint8_t *codes,
                     RoundingFeedback *feedback, int64_t start) {
  float largestMagnitude = 0, largest = 0;
  for (int j = 0; j < kBlock; ++j)
    if (largestMagnitude < std::fabs(x[j])) {
      largestMagnitude = std::fabs(x[j]);
      largest = x[j];
    }
  const float half = float(1 << (bits - 1));
  const float d = largest / -half;
  const float inverse = d != 0 ? 1.0f / d : 0.0f;
  const float offset = half + 0.5f;
  const double stored = halfToFloat(floatToHalf(d));
  for (int j = 0; j < kBlock; ++j) {
    const float scaled = x[j] * inverse;
    const float shifted = scaled + offset;
    codes[j] = truncatedCode(shifted, bits);
    if (feedback)
      feedback->rounded(start + j, stored * (double(codes[j]) - half));
  }
  return d;
}

/// Q4_1/Q5_1: d = (max - min) / (2^bits - 1), code = min(2^bits - 1,
/// trunc((x - min)/d + 0.5)).
std::pair<float, float> minCodes(const float *x, int bits, uint8_t *codes,
                                 RoundingFeedback *feedback, int64_t start) {
  float lo = x[0], hi = x[0];
  for (int j = 1; j < kBlock; ++j) {
    lo = std::min(lo, x[j]);
    hi = std::max(hi, x[j]);
  }
  const float d = (hi - lo) / float((1 << bits) - 1);
  const float inverse = d != 0 ? 1.0f / d : 0.0f;
  const double storedD = halfToFloat(floatToHalf(d));
  const double storedMin = halfToFloat(floatToHalf(lo));
  for (int j = 0; j < kBlock; ++j) {
    const float scaled = (x[j] - lo) * inverse;
    const float shifted = scaled + 0.5f;
    codes[j] = truncatedCode(shifted, bits);
    if (feedback)
      feedback->rounded(start + j, storedD * double(codes[j]) + storedMin);
  }
  return {d, lo};
}

/// ggml's 4-bit nibbles: byte j holds value j (low) and value j + 16 (high).
void packNibbles(const uint8_t *codes, uint8_t *qs) {
  for (int j = 0; j < kBlock / 2; ++j)
    qs[j] = (codes[j] & 0x0f) | uint8_t((codes[j + kBlock / 2] & 0x0f) << 4);
}

/// ggml's Q5 `qh`: bit j of the little-endian u32 is bit 4 of value j.
void packHighBits(const uint8_t *codes, uint8_t *qh) {
  uint32_t bits = 0;
  for (int j = 0; j < kBlock; ++j)
    bits |= uint32_t((codes[j] >> 4) & 1) << j;
  for (int i = 0; i < 4; ++i)
    qh[i] = uint8_t(bits >> (8 * i));
}

} // namespace

void quantizeGGMLRow(GGMLType type, const float *values, int64_t k,
                     uint8_t *out, RoundingFeedback *feedback) {
  assert(hasGGMLEncoder(type) && k % kBlock == 0);
  const unsigned blockBytes = getGGMLFormat(type).blockBytes;
  uint8_t codes[kBlock];
  for (int64_t start = 0; start < k; start += kBlock, out += blockBytes) {
    const float *x = values + start;
    switch (type) {
    case GGMLType::Q4_0: // {half d; u8 qs[16]}
      storeHalf(out, symmetricCodes(x, 4, codes, feedback, start));
      packNibbles(codes, out + 2);
      break;
    case GGMLType::Q5_0: // {half d; u8 qh[4]; u8 qs[16]}
      storeHalf(out, symmetricCodes(x, 5, codes, feedback, start));
      packHighBits(codes, out + 2);
      packNibbles(codes, out + 6);
      break;
    case GGMLType::Q4_1: { // {half d, m; u8 qs[16]}
      auto [d, lo] = minCodes(x, 4, codes, feedback, start);
      storeHalf(out, d);
      storeHalf(out + 2, lo);
      packNibbles(codes, out + 4);
      break;
    }
    case GGMLType::Q5_1: { // {half d, m; u8 qh[4]; u8 qs[16]}
      auto [d, lo] = minCodes(x, 5, codes, feedback, start);
      storeHalf(out, d);
      storeHalf(out + 2, lo);
      packHighBits(codes, out + 4);
      packNibbles(codes, out + 8);
      break;
    }
    case GGMLType::Q8_0: { // {half d; i8 qs[32]}; roundf: half away from 0
      float largestMagnitude = 0;
      for (int j = 0; j < kBlock; ++j)
        largestMagnitude = std::max(largestMagnitude, std::fabs(x[j]));
      const float d = largestMagnitude / 127.0f;
      const float inverse = d != 0 ? 1.0f / d : 0.0f;
      storeHalf(out, d);
      const double stored = halfToFloat(floatToHalf(d));
      for (int j = 0; j < kBlock; ++j) {
        // |x * inverse| <= 127 within the block; feedback may leave it.
        const float code =
            std::clamp(std::roundf(x[j] * inverse), -127.0f, 127.0f);
        out[2 + j] = uint8_t(int8_t(code));
        if (feedback)
          feedback->rounded(start + j, stored * double(code));
      }
      break;
    }
    default:
      break;
    }
  }
}

} // namespace kiln
