//===- Dequant.h - in-register dequantization of weight chunks --*- C++ -*-===//
//
// One place that knows how each weight encoding turns bytes into f32 values.
// Kernels (linear, embedding, norms) walk a row in chunks of `chunkValues`
// values and ask the format for each chunk as vectors of 16 f32 lanes; the
// values never go to memory as floats.
//
// Formats: dense f32/f16/bf16; GGUF Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (one chunk =
// one 32-value block) and Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (one chunk = one
// 32-value sub-block of a 256-value super-block), with the block layouts of
// ggml's ggml-common.h; and Kiln's own packed layout below.
//
// Kiln's packed layout (#kiln.quant<..., layout = packed>, one level only):
// a row of K values is K/group blocks stored back to back, with no padding or
// alignment. Block g holds values [g*group, (g+1)*group) of the row:
//
//   scale   one value of the scale type (f16, bf16 or f32), little-endian;
//   zero    only when the scheme has a float zero type: one value of it;
//   codes   group*bits/8 bytes; code i (0 <= i < group) is the unsigned
//           integer in bits [i*bits, (i+1)*bits) of the code bytes read as one
//           little-endian integer, i.e. bit j of the codes is bit (j % 8) of
//           byte j / 8 (LSB first; a code may straddle two bytes).
//
// Value i = scale * (code_i - 2^(bits-1))  when symmetric (no zero),
//           scale * code_i + zero          otherwise (zero is a float "min").
// Block bytes = scaleBytes + zeroBytes + group*bits/8, the one-level formula of
// QuantBlockShape::blockBytes (WeightLayout.h). The CPU lowering takes bits
// 2..8 with any group that is a multiple of 32 (one chunk = 32 values of a
// group), and multiplies the codes by int8 activations in integers.
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

  /// Formats whose 32-value chunks are integer codes times a scale (plus a
  /// min) can multiply int8-quantized activations in integers
  /// (emitIntegerChunk); the others return false.
  virtual bool hasIntegerChunks() const { return false; }

  /// The integer form of chunk `chunk` (32 values): value i = scale *
  /// codes[i] + min (min is null for symmetric formats; the symmetric offset
  /// is already subtracted from the codes).
  struct IntegerChunk {
    Value codes; // vector<32xi8>
    bool unsignedCodes;
    /// Unsigned codes past 127 (8-bit packed): a byte dot product whose pair
    /// sums are 16-bit (AVX2's vpmaddubsw) would saturate on them.
    bool wideCodes = false;
    Value scale, min; // f32
  };
  virtual IntegerChunk emitIntegerChunk(ImplicitLocOpBuilder &b, Value buffer,
                                        Value rowBase, Value chunk) const {
    llvm_unreachable("format has no integer chunks");
  }

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
