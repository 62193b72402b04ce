//===- Dequant.cpp - in-register dequantization of weight chunks ----------===//
//
// Block layouts of the GGUF formats are those of ggml-common.h (block_q4_0,
// ..., block_q6_K) and their value order that of ggml-quants.c
// (dequantize_row_*). Kiln's packed layout is defined in Dequant.h.
//
//===----------------------------------------------------------------------===//

#include "Dequant.h"

#include "Conversion/KilnToCPU/IR/KilnCPUDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <algorithm>

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
      b,
      DenseElementsAttr::get(type, IntegerAttr::get(type.getElementType(), v)));
}

Value mlir::kiln::loadF16AsF32(ImplicitLocOpBuilder &b, Value buffer,
                               Value offset) {
  Value bytes = loadBytes(b, buffer, offset, 2);
  Value half =
      vector::BitCastOp::create(b, VectorType::get({1}, b.getF16Type()), bytes);
  Value scalar = vector::ExtractOp::create(b, half, ArrayRef<int64_t>{0});
  return arith::ExtFOp::create(b, b.getF32Type(), scalar);
}

SmallVector<Value> mlir::kiln::splitLanes(ImplicitLocOpBuilder &b, Value wide) {
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

/// Terse builders for the index, i32 and vector integer arithmetic the
/// formats below share.
struct Ints {
  ImplicitLocOpBuilder &b;

  Value idx(int64_t v) { return indexConst(b, v); }
  Value add(Value a, int64_t c) {
    return c ? arith::AddIOp::create(b, a, idx(c)).getResult() : a;
  }
  Value add(Value a, Value c) { return arith::AddIOp::create(b, a, c); }
  Value mul(Value a, int64_t c) { return arith::MulIOp::create(b, a, idx(c)); }
  Value shr(Value a, int64_t c) {
    return arith::ShRUIOp::create(b, a, constLike(a, c));
  }
  Value shr(Value a, Value c) { return arith::ShRUIOp::create(b, a, c); }
  Value shl(Value a, int64_t c) {
    return arith::ShLIOp::create(b, a, constLike(a, c));
  }
  Value band(Value a, int64_t c) {
    return arith::AndIOp::create(b, a, constLike(a, c));
  }
  Value bor(Value a, Value c) { return arith::OrIOp::create(b, a, c); }

  /// A constant of `like`'s type (scalar, or splat of a vector).
  Value constLike(Value like, int64_t v) {
    Type t = like.getType();
    if (auto vt = dyn_cast<VectorType>(t))
      return splatInt(b, vt, v);
    if (t.isIndex())
      return idx(v);
    return arith::ConstantOp::create(b, IntegerAttr::get(t, v));
  }

  /// Byte `offset` of `buffer`, zero-extended to i32.
  Value byte(Value buffer, Value offset) {
    Value v = memref::LoadOp::create(b, buffer, ValueRange{offset});
    return arith::ExtUIOp::create(b, b.getI32Type(), v);
  }
  /// An index scalar as an i8 or i32.
  Value narrow(Value index, Type t) {
    return arith::IndexCastUIOp::create(b, t, index);
  }
  /// Splat of index scalar `v` (< 256) over a vector of i8.
  Value splatI8(VectorType type, Value v) {
    return splat(b, type, narrow(v, b.getI8Type()));
  }
  Value toF32(Value i32) {
    return arith::UIToFPOp::create(b, b.getF32Type(), i32);
  }
  Value fmul(Value a, Value c) { return arith::MulFOp::create(b, a, c); }
  Value neg(Value a) { return arith::NegFOp::create(b, a); }
  Value fconst(float v) {
    return arith::ConstantOp::create(b, b.getF32FloatAttr(v));
  }
};

/// Loads a little-endian f32, f16 or bf16 at byte `offset` and widens it.
Value loadFloatAsF32(ImplicitLocOpBuilder &b, Value buffer, Value offset,
                     Type type) {
  if (type.isF16())
    return loadF16AsF32(b, buffer, offset);
  unsigned bytes = getFloatStorageBytes(type);
  Value raw = loadBytes(b, buffer, offset, bytes);
  Value one = vector::BitCastOp::create(b, VectorType::get({1}, type), raw);
  Value scalar = vector::ExtractOp::create(b, one, ArrayRef<int64_t>{0});
  if (type.isF32())
    return scalar;
  return arith::ExtFOp::create(b, b.getF32Type(), scalar);
}

/// value = code * scale + bias for unsigned integer `codes` (a vector of a
/// multiple of kLanes lanes), returned as kLanes-lane parts. The parts split
/// evenly between `scales` (and `biases`): one pair for the whole chunk, or
/// one per 16 values for the K-quants with 16-value groups.
SmallVector<Value> scaleCodes(ImplicitLocOpBuilder &b, Value codes,
                              ArrayRef<Value> scales, ArrayRef<Value> biases) {
  auto type = cast<VectorType>(codes.getType());
  auto f32s = VectorType::get(type.getShape(), b.getF32Type());
  Value q = arith::UIToFPOp::create(b, f32s, codes);
  SmallVector<Value> parts = splitLanes(b, q);
  auto lanes = VectorType::get({kLanes}, b.getF32Type());
  size_t perScale = parts.size() / scales.size();
  for (auto [p, part] : llvm::enumerate(parts))
    part = vector::FMAOp::create(b, part, splat(b, lanes, scales[p / perScale]),
                                 splat(b, lanes, biases[p / perScale]));
  return parts;
}

/// The 5th bits of ggml's Q5_0/Q5_1 (ggml-common.h block_q5_0: `qh`, bit i is
/// the high bit of value i), as 16 or 0 per value: byte i/8 of qh is spread
/// to lane i and tested against 1 << (i % 8) (vptestmb + a masked blend).
Value q5HighBits(ImplicitLocOpBuilder &b, Value qh4) {
  auto t32 = VectorType::get({32}, b.getI8Type());
  SmallVector<int64_t> spread(32);
  SmallVector<int8_t> bit(32);
  for (int64_t i = 0; i < 32; ++i) {
    spread[i] = i / 8;
    bit[i] = static_cast<int8_t>(1u << (i % 8));
  }
  Value bytes = vector::ShuffleOp::create(b, qh4, qh4, spread);
  Value bits = arith::ConstantOp::create(
      b, DenseElementsAttr::get(t32, ArrayRef<int8_t>(bit)));
  Value set = arith::CmpIOp::create(b, arith::CmpIPredicate::ne,
                                    arith::AndIOp::create(b, bytes, bits),
                                    splatInt(b, t32, 0));
  return arith::SelectOp::create(b, set, splatInt(b, t32, 16),
                                 splatInt(b, t32, 0));
}

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

/// ggml's 32-value blocks with an f16 scale `d` (and, for Q4_1/Q5_1, an f16
/// min `m`), ggml-common.h block_q8_0 / q4_0 / q4_1 / q5_0 / q5_1:
///   Q8_0 {d, int8 qs[32]}                       value = d * q
///   Q4_0 {d, qs[16]}                            value = d * (q - 8)
///   Q4_1 {d, m, qs[16]}                         value = d * q + m
///   Q5_0 {d, uint8 qh[4], qs[16]}               value = d * (q - 16)
///   Q5_1 {d, m, uint8 qh[4], qs[16]}            value = d * q + m
/// Nibbles: value i < 16 is the low nibble of qs[i], value i + 16 the high
/// one; Q5's 5th bit of value i is bit i of the little-endian u32 qh.
class GGUFBlock32Format : public WeightFormat {
public:
  /// Q8_0, Q4_0, Q4_1, Q5_0 or Q5_1.
  using Kind = ::kiln::GGMLType;

  GGUFBlock32Format(Kind kind, int64_t rowBytes)
      : WeightFormat(kindName(kind), 32, rowBytes), kind(kind) {}

  static int64_t blockBytes(Kind kind) {
    return ::kiln::getGGMLFormat(kind).blockBytes;
  }

  SmallVector<Value> emitChunk(ImplicitLocOpBuilder &b, Value buffer,
                               Value rowBase, Value chunk) const override {
    Ints in{b};
    Value block = in.add(rowBase, in.mul(chunk, blockBytes(kind)));
    Value d = loadF16AsF32(b, buffer, block);
    if (kind == Kind::Q8_0) {
      auto f32x32 = VectorType::get({32}, b.getF32Type());
      Value codes = loadBytes(b, buffer, in.add(block, 2), 32);
      Value q = arith::SIToFPOp::create(b, f32x32, codes);
      return splitLanes(b, arith::MulFOp::create(b, q, splat(b, f32x32, d)));
    }
    bool hasMin = kind == Kind::Q4_1 || kind == Kind::Q5_1;
    bool five = kind == Kind::Q5_0 || kind == Kind::Q5_1;
    int64_t offset = hasMin ? 4 : 2;
    // Symmetric: d * (q - mid) = q * d + (-mid * d).
    Value bias = hasMin ? loadF16AsF32(b, buffer, in.add(block, 2))
                        : in.fmul(d, in.fconst(five ? -16.0f : -8.0f));
    Value qh;
    if (five) {
      qh = loadBytes(b, buffer, in.add(block, offset), 4);
      offset += 4;
    }
    Value q = unpackNibbles(b, loadBytes(b, buffer, in.add(block, offset), 16));
    if (five)
      q = in.bor(q, q5HighBits(b, qh));
    return scaleCodes(b, q, {d}, {bias});
  }

  bool hasIntegerChunks() const override { return true; }

  IntegerChunk emitIntegerChunk(ImplicitLocOpBuilder &b, Value buffer,
                                Value rowBase, Value chunk) const override {
    Ints in{b};
    Value block = in.add(rowBase, in.mul(chunk, blockBytes(kind)));
    IntegerChunk out;
    out.scale = loadF16AsF32(b, buffer, block);
    if (kind == Kind::Q8_0) {
      out.codes = loadBytes(b, buffer, in.add(block, 2), 32);
      out.unsignedCodes = false;
      return out;
    }
    bool hasMin = kind == Kind::Q4_1 || kind == Kind::Q5_1;
    bool five = kind == Kind::Q5_0 || kind == Kind::Q5_1;
    int64_t offset = hasMin ? 4 : 2;
    if (hasMin)
      out.min = loadF16AsF32(b, buffer, in.add(block, 2));
    Value qh;
    if (five) {
      qh = loadBytes(b, buffer, in.add(block, offset), 4);
      offset += 4;
    }
    Value q = unpackNibbles(b, loadBytes(b, buffer, in.add(block, offset), 16));
    if (five)
      q = in.bor(q, q5HighBits(b, qh));
    // Symmetric codes are centred in i8 (q - 8 or q - 16 fits in [-16, 15]).
    if (!hasMin) {
      auto i8x32 = VectorType::get({32}, b.getI8Type());
      Value mid = arith::ConstantOp::create(
          b, DenseElementsAttr::get(i8x32, b.getI8IntegerAttr(five ? 16 : 8)));
      q = arith::SubIOp::create(b, q, mid);
    }
    out.codes = q;
    out.unsignedCodes = hasMin;
    return out;
  }

private:
  /// ggml's name in lower case ("q4_0"), for kernel symbols.
  static std::string kindName(Kind kind) {
    return StringRef(::kiln::getGGMLFormat(kind).name).lower();
  }
  Kind kind;
};

/// ggml's K-quants: 256-value super-blocks (ggml-common.h block_q2_K ...
/// block_q6_K). A chunk is one 32-value sub-block `s` (0..7) of super-block
/// chunk / 8, in ggml's value order (dequantize_row_q*_K in ggml-quants.c):
///   Q2_K {scales[16], qs[64], f16 d, f16 dmin}: values 16e..16e+15 of s use
///        scales[2s+e] (low nibble * d, high nibble * dmin subtracted); codes
///        are bits 2(s%4).. of qs[32(s/4) + l].
///   Q3_K {hmask[32], qs[64], scales[12], f16 d}: 2-bit codes as Q2_K plus
///        bit s of hmask[l] (code - 4 when clear); 16 6-bit signed (-32)
///        scales packed as 4+2 bits.
///   Q4_K {f16 d, f16 dmin, scales[12], qs[128]}: nibble s%2 of
///        qs[32(s/2) + l]; 6-bit scale and min of s (get_scale_min_k4).
///   Q5_K {f16 d, f16 dmin, scales[12], qh[32], qs[128]}: Q4_K plus bit s of
///        qh[l] as the 5th bit.
///   Q6_K {ql[128], qh[64], int8 scales[16], f16 d}: nibble (s%4)/2 of
///        ql[64(s/4) + 32(s%2) + l], bits 2(s%4).. of qh[32(s/4) + l] as the
///        top two, minus 32; values 16e.. use scales[2s+e].
/// The sub-block index is dynamic, so the shifts that select a nibble or a
/// bit pair are uniform (a splat amount) and the scales are scalar loads.
class GGUFKQuantFormat : public WeightFormat {
public:
  /// Q2_K, Q3_K, Q4_K, Q5_K or Q6_K.
  using Kind = ::kiln::GGMLType;

  GGUFKQuantFormat(Kind kind, int64_t rowBytes)
      : WeightFormat(kindName(kind), 32, rowBytes), kind(kind) {}

  static int64_t blockBytes(Kind kind) {
    return ::kiln::getGGMLFormat(kind).blockBytes;
  }

  SmallVector<Value> emitChunk(ImplicitLocOpBuilder &b, Value buffer,
                               Value rowBase, Value chunk) const override {
    Ints in{b};
    Value block =
        in.add(rowBase, in.mul(arith::DivUIOp::create(b, chunk, in.idx(8)),
                               blockBytes(kind)));
    Value s = arith::RemUIOp::create(b, chunk, in.idx(8));
    switch (kind) {
    case Kind::Q2_K:
      return emitQ2K(in, buffer, block, s);
    case Kind::Q3_K:
      return emitQ3K(in, buffer, block, s);
    case Kind::Q4_K:
    case Kind::Q5_K:
      return emitQ45K(in, buffer, block, s);
    case Kind::Q6_K:
      return emitQ6K(in, buffer, block, s);
    default:
      return {};
    }
  }

private:
  /// The 32 bytes at `offset`, shifted right by the index value `shift` and
  /// masked to `mask`: one nibble or bit pair of each byte.
  static Value field(Ints &in, Value buffer, Value offset, Value shift,
                     int64_t mask) {
    Value bytes = loadBytes(in.b, buffer, offset, 32);
    auto t = cast<VectorType>(bytes.getType());
    return in.band(in.shr(bytes, in.splatI8(t, shift)), mask);
  }

  /// `value` (per lane) where bit `bit` (an index < 8) of the 32 bytes at
  /// `offset` is set, else 0.
  static Value bitSelect(Ints &in, Value buffer, Value offset, Value bit,
                         int64_t value) {
    ImplicitLocOpBuilder &b = in.b;
    Value bytes = loadBytes(b, buffer, offset, 32);
    auto t = cast<VectorType>(bytes.getType());
    Value one = splatInt(b, t, 1);
    Value m = arith::ShLIOp::create(b, one, in.splatI8(t, bit));
    Value set = arith::CmpIOp::create(b, arith::CmpIPredicate::ne,
                                      arith::AndIOp::create(b, bytes, m),
                                      splatInt(b, t, 0));
    return arith::SelectOp::create(b, set, splatInt(b, t, value),
                                   splatInt(b, t, 0));
  }

  SmallVector<Value> emitQ2K(Ints &in, Value buffer, Value block,
                             Value s) const {
    ImplicitLocOpBuilder &b = in.b;
    Value d = loadF16AsF32(b, buffer, in.add(block, 80));
    Value dmin = loadF16AsF32(b, buffer, in.add(block, 82));
    Value q =
        field(in, buffer, in.add(in.add(block, 16), in.mul(in.shr(s, 2), 32)),
              in.mul(in.band(s, 3), 2), 3);
    SmallVector<Value, 2> scales, biases;
    for (int64_t e = 0; e < 2; ++e) {
      Value sc = in.byte(buffer, in.add(in.add(block, e), in.mul(s, 2)));
      scales.push_back(in.fmul(d, in.toF32(in.band(sc, 15))));
      biases.push_back(in.neg(in.fmul(dmin, in.toF32(in.shr(sc, 4)))));
    }
    return scaleCodes(b, q, scales, biases);
  }

  SmallVector<Value> emitQ3K(Ints &in, Value buffer, Value block,
                             Value s) const {
    ImplicitLocOpBuilder &b = in.b;
    Value d = loadF16AsF32(b, buffer, in.add(block, 108));
    Value low =
        field(in, buffer, in.add(in.add(block, 32), in.mul(in.shr(s, 2), 32)),
              in.mul(in.band(s, 3), 2), 3);
    // ggml subtracts 4 where the hmask bit is clear: code + 4*bit - 4.
    Value q = in.bor(low, bitSelect(in, buffer, block, s, 4));
    // Scale i = 2s + e (6 bits, ggml-quants.c dequantize_row_q3_K): low
    // nibble from byte i % 8 (high nibble when i >= 8), top two bits from
    // byte 8 + i % 4 at bit 2 * (i / 4).
    Value lowShift = in.narrow(in.mul(in.shr(s, 2), 4), b.getI32Type());
    Value highShift = in.narrow(in.mul(in.shr(s, 1), 2), b.getI32Type());
    SmallVector<Value, 2> scales, biases;
    for (int64_t e = 0; e < 2; ++e) {
      Value i = in.add(in.mul(s, 2), e);
      Value lo = in.byte(buffer, in.add(in.add(block, 96), in.band(i, 7)));
      Value hi = in.byte(buffer, in.add(in.add(block, 104), in.band(i, 3)));
      Value sc = in.bor(in.band(in.shr(lo, lowShift), 15),
                        in.shl(in.band(in.shr(hi, highShift), 3), 4));
      Value signedSc = arith::SubIOp::create(b, sc, in.constLike(sc, 32));
      Value dl = in.fmul(
          d, arith::SIToFPOp::create(b, b.getF32Type(), signedSc).getResult());
      scales.push_back(dl);
      biases.push_back(in.fmul(dl, in.fconst(-4.0f)));
    }
    return scaleCodes(b, q, scales, biases);
  }

  SmallVector<Value> emitQ45K(Ints &in, Value buffer, Value block,
                              Value s) const {
    ImplicitLocOpBuilder &b = in.b;
    bool five = kind == Kind::Q5_K;
    Value d = loadF16AsF32(b, buffer, block);
    Value dmin = loadF16AsF32(b, buffer, in.add(block, 2));
    // get_scale_min_k4 (ggml-quants.c) with t = s % 4 and bytes X = sc[t],
    // Y = sc[t + 4], Z = sc[t + 8]: s < 4 takes the low 6 bits of X (scale)
    // and Y (min); s >= 4 takes Z's nibbles with X's and Y's top two bits.
    Value t = in.band(s, 3);
    Value x = in.byte(buffer, in.add(in.add(block, 4), t));
    Value y = in.byte(buffer, in.add(in.add(block, 8), t));
    Value z = in.byte(buffer, in.add(in.add(block, 12), t));
    Value low =
        arith::CmpIOp::create(b, arith::CmpIPredicate::ult, s, in.idx(4));
    Value sc = arith::SelectOp::create(
        b, low, in.band(x, 63),
        in.bor(in.band(z, 15), in.band(in.shr(x, 2), 48)));
    Value m = arith::SelectOp::create(
        b, low, in.band(y, 63),
        in.bor(in.shr(z, 4), in.band(in.shr(y, 2), 48)));
    Value scale = in.fmul(d, in.toF32(sc));
    Value bias = in.neg(in.fmul(dmin, in.toF32(m)));
    int64_t qsOffset = five ? 48 : 16;
    Value q = field(in, buffer,
                    in.add(in.add(block, qsOffset), in.mul(in.shr(s, 1), 32)),
                    in.mul(in.band(s, 1), 4), 15);
    if (five)
      q = in.bor(q, bitSelect(in, buffer, in.add(block, 16), s, 16));
    return scaleCodes(b, q, {scale}, {bias});
  }

  SmallVector<Value> emitQ6K(Ints &in, Value buffer, Value block,
                             Value s) const {
    ImplicitLocOpBuilder &b = in.b;
    Value d = loadF16AsF32(b, buffer, in.add(block, 208));
    Value half = in.shr(s, 2), quarter = in.band(s, 3);
    Value ql = field(in, buffer,
                     in.add(in.add(block, in.mul(half, 64)),
                            in.mul(in.band(quarter, 1), 32)),
                     in.mul(in.shr(quarter, 1), 4), 15);
    Value qh = field(in, buffer, in.add(in.add(block, 128), in.mul(half, 32)),
                     in.mul(quarter, 2), 3);
    Value q = in.bor(ql, in.shl(qh, 4));
    SmallVector<Value, 2> scales, biases;
    for (int64_t e = 0; e < 2; ++e) {
      Value off = in.add(in.add(block, 192 + e), in.mul(s, 2));
      Value sc = memref::LoadOp::create(b, buffer, ValueRange{off});
      Value dl = in.fmul(
          d, arith::SIToFPOp::create(b, b.getF32Type(), sc).getResult());
      scales.push_back(dl);
      // d * sc * (q - 32) = q * dl + (-32 dl)
      biases.push_back(in.fmul(dl, in.fconst(-32.0f)));
    }
    return scaleCodes(b, q, scales, biases);
  }

  /// ggml's name in lower case ("q4_k"), for kernel symbols.
  static std::string kindName(Kind kind) {
    return StringRef(::kiln::getGGMLFormat(kind).name).lower();
  }
  Kind kind;
};

/// Kiln's packed layout (see Dequant.h): scale, [zero], then group*bits/8
/// code bytes, code i in bits [i*bits, (i+1)*bits), LSB first. A chunk is 32
/// values of one group (a group of 64 or 128 is 2 or 4 chunks under one
/// scale; a chunk's codes start at byte 4*bits of its group's codes). Each
/// code is gathered with one constant byte shuffle as the 16-bit pair (byte
/// holding its first bit, next byte), then shifted right by the constant
/// i*bits % 8 per lane (vpsrlvw) and masked: no per-code scalar work for any
/// width.
class PackedFormat : public WeightFormat {
public:
  static constexpr int64_t kChunk = 32;

  PackedFormat(unsigned bits, unsigned group, Type scaleType, Type zeroType,
               int64_t blockBytes, int64_t rowBytes)
      : WeightFormat(formatName(bits, group, scaleType, zeroType), kChunk,
                     rowBytes),
        bits(bits), group(group), scaleType(scaleType), zeroType(zeroType),
        blockBytes(blockBytes) {}

  SmallVector<Value> emitChunk(ImplicitLocOpBuilder &b, Value buffer,
                               Value rowBase, Value chunk) const override {
    ChunkParts parts = emitParts(b, buffer, rowBase, chunk);
    return scaleCodes(b, parts.codes, {parts.scale}, {parts.min});
  }

  // Every code is unsigned and value = scale * code + min, with min = zero
  // or, when symmetric, -2^(bits-1) * scale: the integer kernels take the
  // min through the activations' block sums, as for ggml's Q4_1.
  bool hasIntegerChunks() const override { return true; }

  IntegerChunk emitIntegerChunk(ImplicitLocOpBuilder &b, Value buffer,
                                Value rowBase, Value chunk) const override {
    ChunkParts parts = emitParts(b, buffer, rowBase, chunk);
    IntegerChunk out;
    out.codes = bits == 8 ? parts.codes
                          : Value(arith::TruncIOp::create(
                                b, VectorType::get({kChunk}, b.getI8Type()),
                                parts.codes));
    out.unsignedCodes = true;
    out.wideCodes = bits == 8;
    out.scale = parts.scale;
    out.min = parts.min;
    return out;
  }

private:
  struct ChunkParts {
    Value codes; // vector<32xi8> (bits == 8) or vector<32xi16>, unsigned
    Value scale, min;
  };

  ChunkParts emitParts(ImplicitLocOpBuilder &b, Value buffer, Value rowBase,
                       Value chunk) const {
    Ints in{b};
    int64_t chunksPerGroup = group / kChunk;
    Value groupIndex = chunk, chunkInGroup;
    if (chunksPerGroup > 1) {
      groupIndex = arith::DivUIOp::create(b, chunk, in.idx(chunksPerGroup));
      chunkInGroup = arith::RemUIOp::create(b, chunk, in.idx(chunksPerGroup));
    }
    Value block = in.add(rowBase, in.mul(groupIndex, blockBytes));
    int64_t scaleBytes = getFloatStorageBytes(scaleType);
    int64_t zeroBytes = zeroType ? getFloatStorageBytes(zeroType) : 0;
    ChunkParts parts;
    parts.scale = loadFloatAsF32(b, buffer, block, scaleType);
    // Symmetric: scale * (q - 2^(bits-1)) = q * scale + (-2^(bits-1) scale).
    parts.min = zeroType ? loadFloatAsF32(b, buffer, in.add(block, scaleBytes),
                                          zeroType)
                         : in.fmul(parts.scale,
                                   in.fconst(-float(1 << (bits - 1))));
    int64_t codeBytes = kChunk * bits / 8;
    Value codesAt = in.add(block, scaleBytes + zeroBytes);
    if (chunkInGroup)
      codesAt = in.add(codesAt, in.mul(chunkInGroup, codeBytes));
    Value bytes = loadBytes(b, buffer, codesAt, codeBytes);
    if (bits == 8) {
      parts.codes = bytes;
      return parts;
    }
    // Lane i of the i16 vector is bytes (first, first + 1) of code i; the
    // last code ends on its byte's last bit, so clamping `first + 1` to the
    // last byte never loses a bit.
    SmallVector<int64_t> pairs(2 * kChunk);
    SmallVector<int16_t> shifts(kChunk);
    for (int64_t i = 0; i < kChunk; ++i) {
      int64_t first = i * bits / 8;
      pairs[2 * i] = first;
      pairs[2 * i + 1] = std::min(first + 1, codeBytes - 1);
      shifts[i] = static_cast<int16_t>(i * bits % 8);
    }
    auto i16s = VectorType::get({kChunk}, b.getI16Type());
    Value gathered = vector::ShuffleOp::create(b, bytes, bytes, pairs);
    Value words = vector::BitCastOp::create(b, i16s, gathered);
    Value shiftVec = arith::ConstantOp::create(
        b, DenseElementsAttr::get(i16s, ArrayRef<int16_t>(shifts)));
    parts.codes = in.band(in.shr(words, shiftVec), (1 << bits) - 1);
    return parts;
  }

  static std::string formatName(unsigned bits, unsigned group, Type scaleType,
                                Type zeroType) {
    return packedFormatName(bits, group, *rows16FloatOf(scaleType),
                            zeroType ? rows16FloatOf(zeroType) : std::nullopt);
  }

  unsigned bits, group;
  Type scaleType, zeroType;
  int64_t blockBytes;
};

} // namespace

static bool isPackedFloat(Type t) {
  return isa<Float32Type, Float16Type, BFloat16Type>(t);
}

FailureOr<std::unique_ptr<WeightFormat>> WeightFormat::get(WeightType type,
                                                           std::string &error) {
  // A pruned weight still stored dense (zeros written) is read as dense.
  if (type.getCompressedSparsity()) {
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
  // Row sizes come from the one formula (WeightLayout.h); each format checks
  // that it agrees with the block size its address arithmetic uses.
  FailureOr<uint64_t> rowBytes = type.getRowBytes();
  if (failed(rowBytes)) {
    error = "weight rows are not a whole number of quantization blocks";
    return failure();
  }
  auto sized =
      [&](WeightFormat *format, int64_t blockValues,
          int64_t blockBytes) -> FailureOr<std::unique_ptr<WeightFormat>> {
    std::unique_ptr<WeightFormat> owned(format);
    if (int64_t(*rowBytes) != k / blockValues * blockBytes) {
      error = "internal error: the CPU lowering and WeightLayout.h disagree "
              "on the size of a " +
              owned->getName().str() + " block";
      return failure();
    }
    return owned;
  };

  // A ggml block format: its decoder by the table's type (GGMLFormats.h).
  const ::kiln::GGMLFormat *ggml =
      q.getLayout() == QuantLayout::GGUF ? findGGMLBlockFormat(q) : nullptr;
  if (ggml) {
    using B32 = GGUFBlock32Format;
    using KQ = GGUFKQuantFormat;
    switch (ggml->type) {
    case ::kiln::GGMLType::Q8_0:
    case ::kiln::GGMLType::Q4_0:
    case ::kiln::GGMLType::Q4_1:
    case ::kiln::GGMLType::Q5_0:
    case ::kiln::GGMLType::Q5_1:
      return sized(new B32(ggml->type, *rowBytes), ggml->blockValues,
                   B32::blockBytes(ggml->type));
    case ::kiln::GGMLType::Q2_K:
    case ::kiln::GGMLType::Q3_K:
    case ::kiln::GGMLType::Q4_K:
    case ::kiln::GGMLType::Q5_K:
    case ::kiln::GGMLType::Q6_K:
      return sized(new KQ(ggml->type, *rowBytes), ggml->blockValues,
                   KQ::blockBytes(ggml->type));
    default:
      break;
    }
    if (ggml->codebook != ::kiln::GGMLCodebook::None) {
      error = std::string(ggml->name) +
              " weights are read by the int8 kernels only (kiln-compile "
              "--activations=int8, the default)";
      return failure();
    }
  }

  if (q.getLayout() == QuantLayout::Packed) {
    if (q.isTwoLevel()) {
      error = "two-level packed schemes (super_group) are not supported by "
              "the CPU lowering yet";
      return failure();
    }
    if (q.getGroup() % PackedFormat::kChunk != 0) {
      error = "the CPU lowering supports packed groups of a multiple of 32 "
              "values, got " +
              std::to_string(q.getGroup());
      return failure();
    }
    if (!isPackedFloat(q.getScaleType()) ||
        (q.getZeroType() && !isPackedFloat(q.getZeroType()))) {
      error = "the CPU lowering supports packed scales and zeros of type "
              "f32, f16 or bf16 only";
      return failure();
    }
    return sized(new PackedFormat(q.getBits(), q.getGroup(), q.getScaleType(),
                                  q.getZeroType(), q.getBlockBytes(),
                                  *rowBytes),
                 q.getGroup(), q.getBlockBytes());
  }
  error = "this quantization scheme is not supported by the CPU lowering yet";
  return failure();
}
