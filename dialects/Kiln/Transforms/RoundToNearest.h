//===- RoundToNearest.h - round-to-nearest weight quantizers ---*- C++ -*-===//
//
// The arithmetic of kiln-quantize as plain C++ (no MLIR), so that the pass,
// kiln-compile and the test driver share one encoder per format:
// - Kiln's packed layout (Dequant.h of the CPU lowering describes the bytes)
//   at any width 2..8, any group that divides the row;
// - ggml's Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 blocks, with the rounding of
//   ggml-quants.c's quantize_row_*_ref, so that a Kiln-written GGUF holds the
//   bytes llama-quantize writes (test/Quantize checks this against the gguf
//   Python package).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TRANSFORMS_ROUNDTONEAREST_H
#define KILN_TRANSFORMS_ROUNDTONEAREST_H

#include "Kiln/IR/GGMLFormats.h"

#include <cstdint>

namespace kiln {

/// Storage types of scales and zeros (and of float weights).
enum class ScalarType { F32, F16, BF16 };

unsigned getScalarBytes(ScalarType type);

/// IEEE binary16 and bfloat16, rounded to nearest even (as F16C's vcvtps2ph
/// and numpy's astype do).
uint16_t floatToHalf(float value);
float halfToFloat(uint16_t bits);
uint16_t floatToBF16(float value);
float bf16ToFloat(uint16_t bits);

/// Reads `count` little-endian values of `type` from `bytes` as floats.
void decodeScalars(ScalarType type, const uint8_t *bytes, int64_t count,
                   float *out);

/// Writes `count` floats as little-endian values of `type` at `bytes`,
/// rounded to nearest even.
void encodeScalars(ScalarType type, const float *values, int64_t count,
                   uint8_t *bytes);

/// Error feedback for quantizers that round a row one value at a time
/// (GPTQ): each group's scale (and zero) is chosen from the group's values
/// when the encoder reaches it, then after each value is rounded the encoder
/// reports what the decoder will read back, and the callee may change the
/// values not yet rounded (the encoder reads them only after the call).
class RoundingFeedback {
public:
  virtual ~RoundingFeedback() = default;
  virtual void rounded(int64_t index, double decoded) = 0;
};

/// Feedback that records what the decoder reads for each value (to measure
/// an encoding's error), then passes the rounding on to `next` if given
/// (GPTQ's error feedback, to measure what GPTQ writes).
class RecordDecoded : public RoundingFeedback {
public:
  explicit RecordDecoded(double *out, RoundingFeedback *next = nullptr)
      : out(out), next(next) {}
  void rounded(int64_t index, double decoded) override {
    out[index] = decoded;
    if (next)
      next->rounded(index, decoded);
  }

private:
  double *out;
  RoundingFeedback *next;
};

/// A one-level scheme of Kiln's packed layout (#kiln.quant<layout = packed>).
struct PackedScheme {
  unsigned bits = 4;
  unsigned group = 32;
  bool symmetric = true;
  ScalarType scaleType = ScalarType::F16;
  ScalarType zeroType = ScalarType::F16; // only when !symmetric
  /// Choose each group's scale (and zero) by least (importance-weighted)
  /// squared error among candidates instead of from the group's extremes
  /// (an encoder choice: the bytes' layout is the same).
  bool searchScales = false;

  /// scale, [zero], then group*bits/8 code bytes.
  uint64_t blockBytes() const;
};

/// Quantizes `k` values (a multiple of scheme.group, group*bits a multiple of
/// 8) into k/group packed blocks at `out`. Per group, in float64:
///   symmetric:  scale = m / -2^(bits-1), m the value of largest magnitude
///               (ggml's Q4_0 choice: m itself gets code 0 exactly), stored
///               in the scale type; code = clamp(rint(x / scale) + 2^(bits-1))
///   asymmetric: scale = (max - min) / (2^bits - 1), zero = min, both stored;
///               code = clamp(rint((x - zero) / scale))
/// where `stored` rounds to float32, then to the scale type, and codes are
/// computed from the stored values (so they are what the decoder sees).
/// With `feedback`, values outside a group's range clamp to its end codes.
/// With scheme.searchScales the scale (and zero) are searched instead
/// (RoundToNearest.cpp: llama.cpp's make_qx_quants candidates, each refit
/// by least squares), each value's squared error weighted by
/// `importance[i]` (k values; null: all 1).
void quantizePackedRow(const PackedScheme &scheme, const float *values,
                       int64_t k, uint8_t *out,
                       RoundingFeedback *feedback = nullptr,
                       const float *importance = nullptr);

/// Whether kiln-quantize has an encoder for this ggml type (Q4_0, Q4_1,
/// Q5_0, Q5_1, Q8_0).
bool hasGGMLEncoder(GGMLType type);

/// Quantizes `k` values (a multiple of 32) into ggml blocks of `type` at
/// `out`, as ggml-quants.c's quantize_row_<type>_ref.
void quantizeGGMLRow(GGMLType type, const float *values, int64_t k,
                     uint8_t *out, RoundingFeedback *feedback = nullptr);

} // namespace kiln

#endif // KILN_TRANSFORMS_ROUNDTONEAREST_H
