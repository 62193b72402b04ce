//===- QuantizeOptions.h - what kiln-quantize is asked to do ---*- C++ -*-===//
//
// One description of a round-to-nearest request, shared by the kiln-quantize
// pass options, kiln-compile --quantize=..., the C API and the test driver,
// and the one place that turns it into an encoding for a row of K values
// (with the one-line errors for what cannot be encoded).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TRANSFORMS_QUANTIZEOPTIONS_H
#define KILN_TRANSFORMS_QUANTIZEOPTIONS_H

#include "Kiln/Transforms/RoundToNearest.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kiln {

enum class QuantizeFormat { Packed, GGUF };

/// How codes are chosen: round to nearest; GPTQ's error feedback through the
/// calibration Hessian (GPTQ.h); or round to nearest after AWQ's
/// activation-aware column scales (AWQ.h). GPTQ and AWQ need statistics.
enum class QuantizeMethod { RTN, GPTQ, AWQ };

/// The calibration statistics of the input a weight multiplies (one record
/// of lib/Calibration/CalibrationStats.h, lent by the driver that read it).
struct InputStatisticsView {
  int64_t cols = 0;
  const float *meanAbs = nullptr; // [cols]
  const float *hessian = nullptr; // [cols * cols], mean of x x^T
};

struct QuantizeOptions {
  unsigned bits = 4;
  /// Values per scale; 0: one group per row (per channel).
  unsigned group = 32;
  bool symmetric = true;
  ScalarType scaleType = ScalarType::F16;
  QuantizeFormat format = QuantizeFormat::Packed;
  QuantizeMethod method = QuantizeMethod::RTN;
  /// search: each packed group's scale (and zero) searched for the least
  /// squared error (PackedScheme::searchScales), weighted by the input's
  /// mean square (the Hessian's diagonal) where statistics are given and
  /// the method is not AWQ (which rescales the columns first).
  bool searchScales = false;
  /// budget=B (> 0): mixed precision: each weight gets the width (2..8)
  /// and group (`group`, twice or four times it) that the budget allows,
  /// chosen by the layer's relative output error on the calibration inputs
  /// after the method's rounding, weighted by the share of the residual
  /// stream the layer's output reaches (and, for a table an embedding
  /// gathers from, the table's own relative error added; Quantize.cpp's
  /// chooseEncodings and measureResidualShares), so that
  /// the mean bits per weight (scales and zeros counted) is at most B.
  /// `bits` is then unused.
  double budget = 0;
  /// GPTQ's damping: a fraction of the Hessian's mean diagonal added to it.
  double damping = 0.01;
  /// stats=PATH: the .kstats file quantizeWeights reads into `statistics`.
  std::string statisticsPath;
  /// The statistics of the input weight `name` multiplies, if any: read by
  /// quantizeWeights from statisticsPath, or lent by a caller that holds
  /// them (the test driver). gptq and awq need them.
  std::function<std::optional<InputStatisticsView>(llvm::StringRef name)>
      statistics;

  /// Checks what does not depend on a weight's shape: bits in 2..8, group
  /// 0 or a positive multiple of 8 / gcd(8, bits) values, for format=gguf a
  /// ggml block format with these numbers, damping in (0, 1), budget in
  /// [0, 32], statistics for gptq and awq, and no search with format=gguf
  /// (ggml's encoders keep llama.cpp's bytes).
  llvm::Error validate() const;
};

/// Parses kiln-compile's --quantize value: comma-separated `bits=N`,
/// `group=N|channel`, `sym` or `asym`, `scale=f16|bf16|f32`,
/// `format=packed|gguf`, `rtn`, `gptq` or `awq`, `search`, `damp=F`,
/// `stats=PATH`, `budget=B`; e.g.
/// "bits=4,group=32,asym,format=gguf" or "bits=3,gptq,stats=model.kstats".
/// Unknown or malformed items, and options validate() refuses, are one-line
/// errors.
llvm::Expected<QuantizeOptions> parseQuantizeOptions(llvm::StringRef text);

bool parseScalarType(llvm::StringRef name, ScalarType &type);
/// "rtn", "gptq" or "awq"; false for anything else.
bool parseQuantizeMethod(llvm::StringRef name, QuantizeMethod &method);
llvm::StringRef getScalarTypeName(ScalarType type);

/// How the rows of one weight are encoded: a ggml block type, or a packed
/// scheme.
struct RowEncoding {
  std::optional<GGMLType> ggml;
  PackedScheme packed;

  uint64_t rowBytes(int64_t k) const;
  /// `importance` (k values or null) weights the scale search's error.
  void quantizeRow(const float *values, int64_t k, uint8_t *out,
                   RoundingFeedback *feedback = nullptr,
                   const float *importance = nullptr) const;
};

/// The weights of the scale search's error for the weight `name` (its
/// input's mean squares; QuantizeOptions::searchScales says when), or none.
std::vector<float> getSearchImportance(const QuantizeOptions &options,
                                       llvm::StringRef name, int64_t k);

/// The encoding of a row of `k` values under `options`; fails (one line)
/// when the group does not divide k.
llvm::Expected<RowEncoding> chooseRowEncoding(const QuantizeOptions &options,
                                              int64_t k);

/// Encodes whole weight matrices by options.method, the one place that
/// dispatches on it (the kiln-quantize pass and the test driver use it).
/// Inputs shared by several weights (q, k and v) factor their Hessian once.
class MatrixQuantizer {
public:
  explicit MatrixQuantizer(const QuantizeOptions &options)
      : options(options) {}

  /// Encodes `rows` rows of `k` floats of the weight named `name` into
  /// `out` (rows * encoding.rowBytes(k) bytes). Fails (one line) when GPTQ
  /// has no statistics for the weight or they do not match it.
  llvm::Error quantize(const RowEncoding &encoding, const float *values,
                       int64_t rows, int64_t k, llvm::StringRef name,
                       uint8_t *out);

  /// What the decoder reads back (rows * k values into `decoded`) for the
  /// rows quantize() would write: the same rounding and error feedback,
  /// without the bytes (how mixed precision measures an encoding's error).
  llvm::Error roundTrip(const RowEncoding &encoding, const float *values,
                        int64_t rows, int64_t k, llvm::StringRef name,
                        double *decoded);

private:
  /// quantize() and roundTrip(): writes the bytes to `out` unless null and
  /// the decoded values to `decoded` unless null.
  llvm::Error encodeRows(const RowEncoding &encoding, const float *values,
                         int64_t rows, int64_t k, llvm::StringRef name,
                         uint8_t *out, double *decoded);

  const QuantizeOptions &options;
  std::map<const float *, std::vector<double>> factors; // by Hessian
};

} // namespace kiln

#endif // KILN_TRANSFORMS_QUANTIZEOPTIONS_H
