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

#include <optional>
#include <string>

namespace kiln {

enum class QuantizeFormat { Packed, GGUF };

struct QuantizeOptions {
  unsigned bits = 4;
  /// Values per scale; 0: one group per row (per channel).
  unsigned group = 32;
  bool symmetric = true;
  ScalarType scaleType = ScalarType::F16;
  QuantizeFormat format = QuantizeFormat::Packed;

  /// Checks what does not depend on a weight's shape: bits in 2..8, group
  /// 0 or a positive multiple of 8 / gcd(8, bits) values, and for
  /// format=gguf a ggml block format with these numbers.
  llvm::Error validate() const;
};

/// Parses kiln-compile's --quantize value: comma-separated `bits=N`,
/// `group=N|channel`, `sym` or `asym`, `scale=f16|bf16|f32`,
/// `format=packed|gguf`; e.g. "bits=4,group=32,asym,format=gguf". Unknown or
/// malformed items, and options validate() refuses, are one-line errors.
llvm::Expected<QuantizeOptions> parseQuantizeOptions(llvm::StringRef text);

bool parseScalarType(llvm::StringRef name, ScalarType &type);
llvm::StringRef getScalarTypeName(ScalarType type);

/// How the rows of one weight are encoded: a ggml block type, or a packed
/// scheme.
struct RowEncoding {
  std::optional<GGMLType> ggml;
  PackedScheme packed;

  uint64_t rowBytes(int64_t k) const;
  void quantizeRow(const float *values, int64_t k, uint8_t *out) const;
};

/// The encoding of a row of `k` values under `options`; fails (one line)
/// when the group does not divide k.
llvm::Expected<RowEncoding> chooseRowEncoding(const QuantizeOptions &options,
                                              int64_t k);

} // namespace kiln

#endif // KILN_TRANSFORMS_QUANTIZEOPTIONS_H
