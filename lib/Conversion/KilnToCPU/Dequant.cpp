//===- Dequant.cpp - in-register dequantization of weight chunks ----------===//
//
// Block layouts of the GGUF formats are those of ggml-common.h (block_q4_0,
// block_q4_1, block_q8_0, ...): the scale(s) first, then the codes.
//
//===----------------------------------------------------------------------===//

#include "Dequant.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::kiln;

static Value indexConst(ImplicitLocOpBuilder &b, int64_t v) {
  return arith::ConstantIndexOp::create(b, v);
}

static Value loadBytes(ImplicitLocOpBuilder &b, Value buffer, Value offset,
                       int64_t n) {
  auto type = VectorType::get({n}, b.getI8Type());
  return vector::LoadOp::create(b, type, buffer, ValueRange{offset});
}

static Value splat(ImplicitLocOpBuilder &b, VectorType type, Value scalar) {
  return vector::BroadcastOp::create(b, type, scalar);
}

static Value splatInt(ImplicitLocOpBuilder &b, VectorType type, int64_t v) {
  return arith::ConstantOp::create(
      b, DenseElementsAttr::get(
             type, IntegerAttr::get(type.getElementType(), v)));
}

Value mlir::kiln::loadF16AsF32(ImplicitLocOpBuilder &b, Value buffer,
                               Value offset) {
  Value bytes = loadBytes(b, buffer, offset, 2);
  Value half = vector::BitCastOp::create(
      b, VectorType::get({1}, b.getF16Type()), bytes);
  Value scalar = vector::ExtractOp::create(b, half, ArrayRef<int64_t>{0});
  return arith::ExtFOp::create(b, b.getF32Type(), scalar);
}

SmallVector<Value> mlir::kiln::splitLanes(ImplicitLocOpBuilder &b,
                                          Value wide) {
  auto type = cast<VectorType>(wide.getType());
  int64_t n = type.getShape()[0];
  if (n == kLanes)
    return {wide};
  SmallVector<Value> parts;
  for (int64_t i = 0; i < n; i += kLanes)
    parts.push_back(vector::ExtractStridedSliceOp::create(
        b, wide, ArrayRef<int64_t>{i}, ArrayRef<int64_t>{kLanes},
        ArrayRef<int64_t>{1}));
  return parts;
}

/// Unpacks 16 bytes of nibble pairs into 32 codes: the low nibbles of
/// bytes 0..15 are values 0..15, the high nibbles values 16..31 (ggml's
/// order for Q4_0/Q4_1/Q5_0/Q5_1).
static Value unpackNibbles(ImplicitLocOpBuilder &b, Value bytes16) {
  auto t16 = VectorType::get({16}, b.getI8Type());
  Value lo = arith::AndIOp::create(b, bytes16, splatInt(b, t16, 0x0F));
  Value hi = arith::ShRUIOp::create(b, bytes16, splatInt(b, t16, 4));
  SmallVector<int64_t> order(32);
  for (int64_t i = 0; i < 32; ++i)
    order[i] = i;
  return vector::ShuffleOp::create(b, lo, hi, order);
}

namespace {

/// Dense f32, f16 or bf16 rows: 16 values per chunk.
class DenseFloatFormat : public WeightFormat {
public:
  DenseFloatFormat(Type elementType, int64_t k)
      : WeightFormat(elementName(elementType), kLanes,
                     k * getFloatStorageBytes(elementType)),
        elementType(elementType) {}

  SmallVector<Value> emitChunk(ImplicitLocOpBuilder &b, Value buffer,
                               Value rowBase, Value chunk) const override {
    int64_t bytes = getFloatStorageBytes(elementType);
    Value offset = arith::AddIOp::create(
        b, rowBase,
        arith::MulIOp::create(b, chunk, indexConst(b, kLanes * bytes)));
    Value raw = loadBytes(b, buffer, offset, kLanes * bytes);
    auto f32x16 = VectorType::get({kLanes}, b.getF32Type());
    if (elementType.isF32())
      return {vector::BitCastOp::create(b, f32x16, raw)};
    if (elementType.isF16()) {
      Value half = vector::BitCastOp::create(
          b, VectorType::get({kLanes}, b.getF16Type()), raw);
      return {arith::ExtFOp::create(b, f32x16, half)};
    }
    // bf16 is the high half of an f32.
    auto i32x16 = VectorType::get({kLanes}, b.getI32Type());
    Value bits = vector::BitCastOp::create(
        b, VectorType::get({kLanes}, b.getI16Type()), raw);
    Value wide = arith::ExtUIOp::create(b, i32x16, bits);
    Value shifted = arith::ShLIOp::create(b, wide, splatInt(b, i32x16, 16));
    return {vector::BitCastOp::create(b, f32x16, shifted)};
  }

private:
  static std::string elementName(Type t) {
    return t.isF32() ? "f32" : t.isF16() ? "f16" : "bf16";
  }
  Type elementType;
};

/// ggml's 32-value blocks with an f16 scale (and, for Q4_1, an f16 min):
/// Q8_0 (signed int8 codes), Q4_0 (nibbles, offset 8), Q4_1 (nibbles + min).
class GGUFBlock32Format : public WeightFormat {
public:
  enum class Kind { Q8_0, Q4_0, Q4_1 };

  GGUFBlock32Format(Kind kind, int64_t k)
      : WeightFormat(kindName(kind), 32, (k / 32) * blockBytes(kind)),
        kind(kind) {}

  SmallVector<Value> emitChunk(ImplicitLocOpBuilder &b, Value buffer,
                               Value rowBase, Value chunk) const override {
    Value block = arith::AddIOp::create(
        b, rowBase,
        arith::MulIOp::create(b, chunk, indexConst(b, blockBytes(kind))));
    auto f32x32 = VectorType::get({32}, b.getF32Type());
    Value d = loadF16AsF32(b, buffer, block);
    Value values;
    switch (kind) {
    case Kind::Q8_0: {
      Value codes = loadBytes(b, buffer,
                              arith::AddIOp::create(b, block, indexConst(b, 2)),
                              32);
      Value q = arith::SIToFPOp::create(b, f32x32, codes);
      values = arith::MulFOp::create(b, q, splat(b, f32x32, d));
      break;
    }
    case Kind::Q4_0: {
      Value packed = loadBytes(
          b, buffer, arith::AddIOp::create(b, block, indexConst(b, 2)), 16);
      Value q = arith::UIToFPOp::create(b, f32x32, unpackNibbles(b, packed));
      // d * (q - 8) = q * d + (-8 d)
      Value bias = arith::MulFOp::create(
          b, d, arith::ConstantOp::create(b, b.getF32FloatAttr(-8.0f)));
      values = vector::FMAOp::create(b, q, splat(b, f32x32, d),
                                     splat(b, f32x32, bias));
      break;
    }
    case Kind::Q4_1: {
      Value m = loadF16AsF32(
          b, buffer, arith::AddIOp::create(b, block, indexConst(b, 2)));
      Value packed = loadBytes(
          b, buffer, arith::AddIOp::create(b, block, indexConst(b, 4)), 16);
      Value q = arith::UIToFPOp::create(b, f32x32, unpackNibbles(b, packed));
      values = vector::FMAOp::create(b, q, splat(b, f32x32, d),
                                     splat(b, f32x32, m));
      break;
    }
    }
    return splitLanes(b, values);
  }

private:
  static int64_t blockBytes(Kind kind) {
    switch (kind) {
    case Kind::Q8_0:
      return 34;
    case Kind::Q4_0:
      return 18;
    case Kind::Q4_1:
      return 20;
    }
    return 0;
  }
  static std::string kindName(Kind kind) {
    switch (kind) {
    case Kind::Q8_0:
      return "q8_0";
    case Kind::Q4_0:
      return "q4_0";
    case Kind::Q4_1:
      return "q4_1";
    }
    return "";
  }
  Kind kind;
};

} // namespace

/// Matches a #kiln.quant with layout = gguf against one of ggml's blocks.
static bool isGGUFScheme(QuantSchemeAttr q, unsigned bits, unsigned group,
                         bool hasMin, unsigned superGroup = 0) {
  return q.getLayout() == QuantLayout::GGUF && q.getBits() == bits &&
         q.getGroup() == group && q.getScaleType().isF16() &&
         (!!q.getZeroType() == hasMin) &&
         (!hasMin || q.getZeroType().isF16()) &&
         q.getSuperGroup() == superGroup;
}

FailureOr<std::unique_ptr<WeightFormat>>
WeightFormat::get(WeightType type, std::string &error) {
  if (type.getSparsity()) {
    error = "sparse weights are not supported by the CPU lowering yet";
    return failure();
  }
  int64_t k = type.getInnerDim();
  if (Type element = type.getElementType()) {
    if (!isa<Float32Type, Float16Type, BFloat16Type>(element)) {
      error = "dense weights of this element type are not supported by the "
              "CPU lowering yet";
      return failure();
    }
    if (k % kLanes != 0) {
      error = "dense weight rows must be a multiple of 16 values";
      return failure();
    }
    return std::unique_ptr<WeightFormat>(new DenseFloatFormat(element, k));
  }
  QuantSchemeAttr q = type.getQuant();
  using Kind = GGUFBlock32Format::Kind;
  if (isGGUFScheme(q, 8, 32, false))
    return std::unique_ptr<WeightFormat>(new GGUFBlock32Format(Kind::Q8_0, k));
  if (isGGUFScheme(q, 4, 32, false))
    return std::unique_ptr<WeightFormat>(new GGUFBlock32Format(Kind::Q4_0, k));
  if (isGGUFScheme(q, 4, 32, true))
    return std::unique_ptr<WeightFormat>(new GGUFBlock32Format(Kind::Q4_1, k));
  error = "this quantization scheme is not supported by the CPU lowering yet";
  return failure();
}
