//===- Dequant.h - in-register dequantization of weight chunks --*- C++ -*-===//
//
// One place that knows how each weight encoding turns bytes into f32 values.
// Kernels (linear, embedding, norms) walk a row in chunks of `chunkValues`
// values and ask the format for each chunk as vectors of 16 f32 lanes; the
// values never go to memory as floats.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CONVERSION_KILNTOCPU_DEQUANT_H
#define KILN_CONVERSION_KILNTOCPU_DEQUANT_H

#include "Kiln/IR/KilnDialect.h"

#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <memory>
#include <string>

namespace mlir::kiln {

/// Lanes of the f32 vectors kernels compute with (one zmm register).
constexpr int64_t kLanes = 16;

class WeightFormat {
public:
  virtual ~WeightFormat() = default;

  /// Values per chunk: a multiple of kLanes that divides every row.
  int64_t getChunkValues() const { return chunkValues; }
  /// Bytes of one row of K values.
  int64_t getRowBytes() const { return rowBytes; }
  /// A short name for kernel symbols ("f32", "q4_1", ...).
  StringRef getName() const { return name; }

  /// Emits the loads and arithmetic that produce chunk `chunk` of the row
  /// starting at byte `rowBase` of `buffer` (a memref<?xi8>), as
  /// getChunkValues()/kLanes vectors of kLanes f32 values, in order.
  virtual SmallVector<Value> emitChunk(ImplicitLocOpBuilder &b, Value buffer,
                                       Value rowBase, Value chunk) const = 0;

  /// The format of `type`, or a failure with `error` naming what is not
  /// supported yet.
  static FailureOr<std::unique_ptr<WeightFormat>> get(WeightType type,
                                                      std::string &error);

protected:
  WeightFormat(std::string name, int64_t chunkValues, int64_t rowBytes)
      : name(std::move(name)), chunkValues(chunkValues), rowBytes(rowBytes) {}

  std::string name;
  int64_t chunkValues;
  int64_t rowBytes;
};

/// Loads a little-endian f16 at byte `offset` of `buffer` and widens it.
Value loadF16AsF32(ImplicitLocOpBuilder &b, Value buffer, Value offset);

/// Splits a vector<N x f32> (N a multiple of kLanes) into vector<16xf32>s.
SmallVector<Value> splitLanes(ImplicitLocOpBuilder &b, Value wide);

} // namespace mlir::kiln

#endif // KILN_CONVERSION_KILNTOCPU_DEQUANT_H
