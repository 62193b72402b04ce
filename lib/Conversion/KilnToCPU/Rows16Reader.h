//===- Rows16Reader.h - reading rows16 weights in kernels -------*- C++ -*-===//
//
// The rows16 linear and embedding kernels (Linear.cpp, Embedding.cpp) read a
// rows16 weight (Rows16.h) the same way: 16 rows at a time, in registers.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CONVERSION_KILNTOCPU_ROWS16READER_H
#define KILN_CONVERSION_KILNTOCPU_ROWS16READER_H

#include "Conversion/KilnToCPU/IR/Rows16.h"
#include "CPUTarget.h"
#include "KernelBuilder.h"

namespace mlir::kiln {

/// Reads a rows16 weight (Rows16.h) in registers, 16 rows at a time.
struct Rows16Reader {
  KB &kb;
  const Rows16Format &format;
  Value w; // the weight bytes
  const CPUTarget &target; // looks codebook indices up

  Value load64(Value at) {
    return vector::LoadOp::create(kb.b, VectorType::get({64}, kb.b.getI8Type()),
                                  w, ValueRange{at});
  }
  Value bytesSplat(int64_t v) {
    auto type = VectorType::get({64}, kb.b.getI8Type());
    return arith::ConstantOp::create(
        kb.b, DenseElementsAttr::get(type, kb.b.getI8IntegerAttr(v)));
  }
  /// 16 f16 values at `at`, widened.
  Value halves(Value at) {
    Value raw = vector::LoadOp::create(
        kb.b, VectorType::get({32}, kb.b.getI8Type()), w, ValueRange{at});
    Value h = vector::BitCastOp::create(
        kb.b, VectorType::get({kLanes}, kb.b.getF16Type()), raw);
    return arith::ExtFOp::create(kb.b, kb.vf32(), h);
  }
  /// 16 values of `type` at `at` (a packed form's scales or zeros), as f32.
  Value floats(Value at, Rows16Float type) {
    if (type == Rows16Float::F16)
      return halves(at);
    if (type == Rows16Float::F32)
      return vector::BitCastOp::create(
          kb.b, kb.vf32(),
          vector::LoadOp::create(
              kb.b, VectorType::get({64}, kb.b.getI8Type()), w,
              ValueRange{at}));
    // bf16: the high half of an f32.
    auto i32x16 = VectorType::get({kLanes}, kb.b.getI32Type());
    Value raw = vector::LoadOp::create(
        kb.b, VectorType::get({32}, kb.b.getI8Type()), w, ValueRange{at});
    Value words = arith::ExtUIOp::create(
        kb.b, i32x16,
        vector::BitCastOp::create(
            kb.b, VectorType::get({kLanes}, kb.b.getI16Type()), raw));
    Value sixteen = arith::ConstantOp::create(
        kb.b, DenseElementsAttr::get(i32x16, kb.b.getI32IntegerAttr(16)));
    return vector::BitCastOp::create(
        kb.b, kb.vf32(), arith::ShLIOp::create(kb.b, words, sixteen));
  }
  /// The header's first field: d, or a packed form's scale.
  Value firstScale(Value header) {
    return format.packed ? floats(header, format.scaleType) : halves(header);
  }
  /// 16 one-byte integers at `at`, widened to i32.
  Value bytes(Value at, bool isSigned) {
    auto i32x16 = VectorType::get({kLanes}, kb.b.getI32Type());
    Value raw = vector::LoadOp::create(
        kb.b, VectorType::get({kLanes}, kb.b.getI8Type()), w, ValueRange{at});
    return isSigned ? Value(arith::ExtSIOp::create(kb.b, i32x16, raw))
                    : Value(arith::ExtUIOp::create(kb.b, i32x16, raw));
  }
  Value toFloat(Value v) { return arith::SIToFPOp::create(kb.b, kb.vf32(), v); }
  Value toFloatScalar(Value v) {
    return arith::SIToFPOp::create(kb.b, kb.f32(), v);
  }

  /// The 8 targets of the block whose codes start at `at`: unsigned codes of
  /// values 4t..4t+3 of each of the 16 rows.
  SmallVector<Value> unpack(Value at) {
    ImplicitLocOpBuilder &b = kb.b;
    SmallVector<Value> t(8);
    if (format.codeBits == 8) {
      for (int64_t i = 0; i < 8; ++i)
        t[i] = load64(kb.add(at, kb.idx(64 * i)));
      return t;
    }
    auto field = [&](Value x, int64_t shift, int64_t mask) {
      return emitByteField(b, x, shift, mask);
    };
    if (format.codeBits == 2) {
      for (int64_t j = 0; j < 2; ++j) {
        Value x = load64(kb.add(at, kb.idx(64 * j)));
        for (int64_t c = 0; c < 4; ++c)
          t[4 * j + c] = field(x, 2 * c, 3);
      }
      return t;
    }
    if (format.codeBits == 3) {
      // Whole 3-bit fields but for targets 6 and 7, whose top bits share
      // the third plane's last two bits.
      Value x[3];
      for (int64_t j = 0; j < 3; ++j) {
        x[j] = load64(kb.add(at, kb.idx(64 * j)));
        t[2 * j] = field(x[j], 0, 7);
        t[2 * j + 1] = field(x[j], 3, 7);
      }
      for (int64_t i = 6; i < 8; ++i)
        t[i] = arith::OrIOp::create(b, field(x[i - 6], 6, 3),
                                    field(x[2], i - 2, 4));
      return t;
    }
    Value nibbles = kb.add(at, kb.idx(64 * (format.codeBits - 4)));
    for (int64_t j = 0; j < 4; ++j) {
      Value x = load64(kb.add(nibbles, kb.idx(64 * j)));
      t[j] = arith::AndIOp::create(b, x, bytesSplat(0x0F));
      t[j + 4] = arith::ShRUIOp::create(b, x, bytesSplat(4));
    }
    if (format.codebook) {
      // The codes' values, unsigned: offset 128 takes it back off.
      SmallVector<uint8_t> table;
      for (int64_t c = 0; c < 16; ++c)
        table.push_back(uint8_t(format.codebook[c] + 128));
      for (Value &code : t)
        code = target.emitLookup16(b, table, code);
    }
    if (format.codeBits == 4)
      return t;
    // Move each target's high bits to their place (bit 4, bits 4..5, bit 6)
    // and merge: the planes of bits 4..5 follow 7-bit's plane of bit 6.
    auto merge = [&](int64_t firstPlane, bool single, int64_t toBit) {
      int64_t mask = (single ? 1 : 3) << toBit;
      for (int64_t i = 0; i < 8; ++i) {
        int64_t plane = firstPlane + (single ? 0 : i / 4);
        int64_t from = single ? i : 2 * (i % 4);
        Value p = load64(kb.add(at, kb.idx(64 * plane)));
        if (from < toBit)
          p = arith::ShLIOp::create(b, p, bytesSplat(toBit - from));
        else if (from > toBit)
          p = arith::ShRUIOp::create(b, p, bytesSplat(from - toBit));
        t[i] = arith::OrIOp::create(
            b, t[i], arith::AndIOp::create(b, p, bytesSplat(mask)));
      }
    };
    if (format.codeBits == 5)
      merge(0, true, 4);
    if (format.codeBits >= 6)
      merge(format.codeBits == 7 ? 1 : 0, false, 4);
    if (format.codeBits == 7)
      merge(0, true, 6);
    return t;
  }

  /// Block j's per-row arithmetic: value = scale * code + min, or for
  /// half-block scales (Q2_K, Q3_K, Q6_K) d * (lo or hi) * code (then
  /// scale = d; i32 lo, hi) plus Q2_K's minLo or minHi (f32).
  struct Scales {
    Value scale, min, lo, hi, minLo, minHi;
  };
  /// `d`: halves(header), the first header field.
  Scales scales(Value header, Value d, int64_t j) {
    Scales s{d, {}, {}, {}, {}, {}};
    switch (format.kind) {
    case ::kiln::GGMLType::Q4_1:
    case ::kiln::GGMLType::Q5_1:
      s.min = halves(kb.add(header, kb.idx(32)));
      break;
    case ::kiln::GGMLType::Q4_K:
    case ::kiln::GGMLType::Q5_K: {
      Value sc = bytes(kb.add(header, kb.idx(64 + 16 * j)), false);
      Value m = bytes(kb.add(header, kb.idx(192 + 16 * j)), false);
      s.scale = kb.mul(d, toFloat(sc));
      s.min = arith::NegFOp::create(
          kb.b, kb.mul(halves(kb.add(header, kb.idx(32))), toFloat(m)));
      break;
    }
    case ::kiln::GGMLType::Q2_K: {
      // ggml's byte per 16 values: scale in the low nibble, min in the high.
      auto i32x16 = VectorType::get({kLanes}, kb.b.getI32Type());
      auto splat = [&](int64_t v) {
        return arith::ConstantOp::create(
            kb.b, DenseElementsAttr::get(i32x16, kb.b.getI32IntegerAttr(v)));
      };
      Value negDmin = arith::NegFOp::create(
          kb.b, halves(kb.add(header, kb.idx(32))));
      Value packed[2] = {bytes(kb.add(header, kb.idx(64 + 32 * j)), false),
                         bytes(kb.add(header, kb.idx(80 + 32 * j)), false)};
      s.lo = arith::AndIOp::create(kb.b, packed[0], splat(15));
      s.hi = arith::AndIOp::create(kb.b, packed[1], splat(15));
      s.minLo = kb.mul(negDmin, toFloat(arith::ShRUIOp::create(
                                    kb.b, packed[0], splat(4))));
      s.minHi = kb.mul(negDmin, toFloat(arith::ShRUIOp::create(
                                    kb.b, packed[1], splat(4))));
      break;
    }
    case ::kiln::GGMLType::IQ4_XS:
    case ::kiln::GGMLType::IQ2_XXS:
    case ::kiln::GGMLType::IQ3_XXS:
    case ::kiln::GGMLType::IQ3_S:
    case ::kiln::GGMLType::IQ1_S:
      s.scale = kb.mul(
          d, toFloat(bytes(kb.add(header, kb.idx(32 + 16 * j)), true)));
      if (format.scaleFactor != 1.0f)
        s.scale = kb.mul(s.scale, kb.splat(kb.f(format.scaleFactor)));
      break;
    case ::kiln::GGMLType::Q3_K:
    case ::kiln::GGMLType::Q6_K:
    case ::kiln::GGMLType::IQ2_XS:
    case ::kiln::GGMLType::IQ2_S:
    case ::kiln::GGMLType::IQ1_M:
      s.lo = bytes(kb.add(header, kb.idx(32 + 32 * j)), true);
      s.hi = bytes(kb.add(header, kb.idx(48 + 32 * j)), true);
      if (format.scaleFactor != 1.0f)
        s.scale = kb.mul(d, kb.splat(kb.f(format.scaleFactor)));
      break;
    default:
      // Kiln's packed layout: the zeros follow the 16 scales.
      if (format.packed && format.hasMin)
        s.min = floats(kb.add(header, kb.idx(kLanes * rows16FloatBytes(
                                                         format.scaleType))),
                       format.zeroType);
      break;
    }
    return s;
  }
};

} // namespace mlir::kiln

#endif // KILN_CONVERSION_KILNTOCPU_ROWS16READER_H
