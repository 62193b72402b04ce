//===- Decoders.cpp - weight encodings decoded on the device --------------===//
//
// Each decoder turns one 32-value chunk of a weight row into f32 values in
// registers, reading the row where it lies (global memory, or the decode
// GEMV's copy in shared memory) with the widest loads the encoding's
// alignment allows: 128-bit loads for f32 and f16 rows, 32-bit words for
// Q4_1 and Q4_K blocks (20 and 144 bytes), 16-bit words for Q4_0, Q5_0, Q5_1,
// Q8_0 and Q6_K (18, 22, 24, 34 and 210 bytes); the split layout of Q4_0,
// Q4_1 and Q8_0 (#kiln_gpu.split) with 128-bit loads. Block layouts are
// ggml-common.h's (see GGMLFormats.h). Weights start 64-byte aligned
// (kiln-compile's weights blob) on a device allocation, which is 256-byte
// aligned; a row is as aligned as its byte size allows.
//
//===----------------------------------------------------------------------===//

#include "GPUKernels.h"

#include "Conversion/KilnToGPU/IR/KilnGPUDialect.h"

#include "Kiln/IR/GGMLFormats.h"

#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::kiln;

namespace {

constexpr int64_t kChunk = GPUWeightDecoder::kChunkValues;

/// Integer helpers on i32 values.
struct Bits {
  GPUKernelBuilder &kb;
  Value shr(Value v, int64_t s) {
    return s ? arith::ShRUIOp::create(kb.b, v, kb.i32(s)) : v;
  }
  Value shr(Value v, Value s) { return arith::ShRUIOp::create(kb.b, v, s); }
  Value mask(Value v, int64_t m) {
    return arith::AndIOp::create(kb.b, v, kb.i32(m));
  }
  Value shl(Value v, int64_t s) {
    return arith::ShLIOp::create(kb.b, v, kb.i32(s));
  }
  Value orI(Value x, Value y) { return arith::OrIOp::create(kb.b, x, y); }
  /// Unsigned word of `view` at element `i`, widened to i32.
  Value word(Value view, Value i) {
    Value w = kb.load(view, i);
    if (w.getType().getIntOrFloatBitWidth() < 32)
      w = arith::ExtUIOp::create(kb.b, kb.b.getI32Type(), w);
    return w;
  }
  Value signedF32(Value i32v) {
    return arith::SIToFPOp::create(kb.b, kb.b.getF32Type(), i32v);
  }
  /// The f16 in the low 16 bits of `w` as f32.
  Value half(Value w) {
    Value h = arith::TruncIOp::create(kb.b, kb.b.getI16Type(), w);
    h = arith::BitcastOp::create(kb.b, kb.b.getF16Type(), h);
    return arith::ExtFOp::create(kb.b, kb.b.getF32Type(), h);
  }
  /// Byte `k` (0-3) of `w` minus `offset`, as f32: one prmt puts the byte
  /// under the exponent of 2^23 (the float 2^23 + byte), an exact
  /// subtraction removes 2^23 + offset. cvt.rn.f32.s32 issues at an eighth
  /// of the FMA rate and bounds a GEMV that decodes every value.
  Value byteToF32(Value w, int64_t k, int64_t offset) {
    // Result bytes 0..3 from pool bytes k, 4, 4, 7: w's byte k, then the
    // bytes 0x00, 0x00, 0x4B of the second operand.
    Value magic =
        NVVM::PermuteOp::create(kb.b, kb.b.getI32Type(), w, kb.i32(0x4B000000),
                                kb.i32(0x7440 | k), NVVM::PermuteMode::DEFAULT);
    Value f = arith::BitcastOp::create(kb.b, kb.b.getF32Type(), magic);
    return kb.sub(f, kb.f(8388608.0f + float(offset)));
  }
  /// Byte `k` (0-3) of `w`.
  Value byte(Value w, int64_t k) { return mask(shr(w, 8 * k), 0xFF); }
};

class DenseF32Decoder : public GPUWeightDecoder {
public:
  explicit DenseF32Decoder(int64_t k) : GPUWeightDecoder("f32", 4 * k) {}
  SmallVector<Value> decode(GPUKernelBuilder &kb, Value source,
                            Value rowBase, Value chunk) const override {
    auto v4 = VectorType::get({4}, kb.b.getF32Type());
    Value view = kb.view(source, v4);
    Value first = kb.add(kb.div(rowBase, kb.idx(16)), kb.mul(chunk, kb.idx(8)));
    SmallVector<Value> values;
    for (int64_t i = 0; i < kChunk / 4; ++i) {
      Value v = kb.load(view, kb.add(first, kb.idx(i)));
      for (int64_t j = 0; j < 4; ++j)
        values.push_back(vector::ExtractOp::create(kb.b, v, j));
    }
    return values;
  }
};

class DenseF16Decoder : public GPUWeightDecoder {
public:
  explicit DenseF16Decoder(int64_t k) : GPUWeightDecoder("f16", 2 * k) {}
  SmallVector<Value> decode(GPUKernelBuilder &kb, Value source,
                            Value rowBase, Value chunk) const override {
    auto v4i32 = VectorType::get({4}, kb.b.getI32Type());
    Value view = kb.view(source, v4i32);
    Value first = kb.add(kb.div(rowBase, kb.idx(16)), kb.mul(chunk, kb.idx(4)));
    SmallVector<Value> values;
    for (int64_t i = 0; i < kChunk / 8; ++i) {
      Value v = kb.load(view, kb.add(first, kb.idx(i)));
      Value h = vector::BitCastOp::create(
          kb.b, VectorType::get({8}, kb.b.getF16Type()), v);
      Value f = arith::ExtFOp::create(
          kb.b, VectorType::get({8}, kb.b.getF32Type()), h);
      for (int64_t j = 0; j < 8; ++j)
        values.push_back(vector::ExtractOp::create(kb.b, f, j));
    }
    return values;
  }
};

/// Q4_0 {half d; u8 qs[16]}: value j = d * ((qs[j] & 15) - 8), value j + 16
/// = d * ((qs[j] >> 4) - 8). Q8_0 {half d; i8 qs[32]}: value j = d * qs[j].
class Block16BitDecoder : public GPUWeightDecoder {
public:
  Block16BitDecoder(::kiln::GGMLType type, int64_t rowBytes)
      : GPUWeightDecoder(type == ::kiln::GGMLType::Q4_0 ? "q4_0" : "q8_0",
                         rowBytes),
        type(type) {}
  SmallVector<Value> decode(GPUKernelBuilder &kb, Value source,
                            Value rowBase, Value chunk) const override {
    Bits bits{kb};
    bool q4 = type == ::kiln::GGMLType::Q4_0;
    int64_t blockBytes = q4 ? 18 : 34;
    Value view = kb.view(source, kb.b.getI16Type());
    Value base = kb.div(kb.add(rowBase, kb.mul(chunk, kb.idx(blockBytes))),
                        kb.idx(2));
    Value d = bits.half(bits.word(view, base));
    SmallVector<Value> codes(kChunk);
    for (int64_t i = 0; i < (blockBytes - 2) / 2; ++i) {
      Value w = bits.word(view, kb.add(base, kb.idx(1 + i)));
      for (int64_t k = 0; k < 2; ++k) {
        Value byte = bits.byte(w, k);
        int64_t j = 2 * i + k;
        if (q4) {
          codes[j] = kb.sub(bits.mask(byte, 15), kb.i32(8));
          codes[j + 16] = kb.sub(bits.shr(byte, 4), kb.i32(8));
        } else {
          // Sign-extend the byte.
          codes[j] = arith::ShRSIOp::create(kb.b, bits.shl(byte, 24),
                                            kb.i32(24));
        }
      }
    }
    SmallVector<Value> values;
    for (Value c : codes)
      values.push_back(kb.mul(bits.signedF32(c), d));
    return values;
  }

private:
  ::kiln::GGMLType type;
};

/// Q4_1 {half d, m; u8 qs[16]}: value j = d * (qs[j] & 15) + m, value j + 16
/// = d * (qs[j] >> 4) + m.
class Q4_1Decoder : public GPUWeightDecoder {
public:
  explicit Q4_1Decoder(int64_t rowBytes) : GPUWeightDecoder("q4_1", rowBytes) {}
  SmallVector<Value> decode(GPUKernelBuilder &kb, Value source,
                            Value rowBase, Value chunk) const override {
    Bits bits{kb};
    Value view = kb.view(source, kb.b.getI32Type());
    Value base =
        kb.div(kb.add(rowBase, kb.mul(chunk, kb.idx(20))), kb.idx(4));
    Value header = bits.word(view, base);
    Value d = bits.half(header), m = bits.half(bits.shr(header, 16));
    SmallVector<Value> values(kChunk);
    for (int64_t i = 0; i < 4; ++i) {
      Value w = bits.word(view, kb.add(base, kb.idx(1 + i)));
      for (int64_t k = 0; k < 4; ++k) {
        Value byte = bits.byte(w, k);
        int64_t j = 4 * i + k;
        values[j] = kb.fma(bits.signedF32(bits.mask(byte, 15)), d, m);
        values[j + 16] = kb.fma(bits.signedF32(bits.shr(byte, 4)), d, m);
      }
    }
    return values;
  }
};

/// Q5_0 {half d; u8 qh[4]; u8 qs[16]} and Q5_1 {half d, m; u8 qh[4]; u8
/// qs[16]}: code j = (qs[j] & 15) | bit j of qh << 4, code j + 16 =
/// (qs[j] >> 4) | bit j + 16 of qh << 4; value = d * (code - 16) (Q5_0) or
/// d * code + m (Q5_1). Both blocks are 2-byte aligned: 16-bit loads.
class Q5Decoder : public GPUWeightDecoder {
public:
  Q5Decoder(bool withMin, int64_t rowBytes)
      : GPUWeightDecoder(withMin ? "q5_1" : "q5_0", rowBytes),
        withMin(withMin) {}
  SmallVector<Value> decode(GPUKernelBuilder &kb, Value source,
                            Value rowBase, Value chunk) const override {
    Bits bits{kb};
    int64_t blockBytes = withMin ? 24 : 22, header = withMin ? 2 : 1;
    Value view = kb.view(source, kb.b.getI16Type());
    Value base = kb.div(kb.add(rowBase, kb.mul(chunk, kb.idx(blockBytes))),
                        kb.idx(2));
    auto half = [&](int64_t i) {
      return bits.word(view, kb.add(base, kb.idx(i)));
    };
    Value d = bits.half(half(0));
    Value m = withMin ? bits.half(half(1)) : Value();
    Value qh = bits.orI(half(header), bits.shl(half(header + 1), 16));
    SmallVector<Value> values(kChunk);
    for (int64_t i = 0; i < 8; ++i) {
      Value w = half(header + 2 + i);
      for (int64_t k = 0; k < 2; ++k) {
        Value byte = bits.byte(w, k);
        int64_t j = 2 * i + k;
        Value lo = bits.orI(bits.mask(byte, 15),
                            bits.shl(bits.mask(bits.shr(qh, j), 1), 4));
        Value hi = bits.orI(bits.shr(byte, 4),
                            bits.shl(bits.mask(bits.shr(qh, j + 16), 1), 4));
        for (auto [at, code] : {std::pair{j, lo}, std::pair{j + 16, hi}}) {
          if (withMin)
            values[at] = kb.fma(bits.signedF32(code), d, m);
          else
            values[at] =
                kb.mul(bits.signedF32(kb.sub(code, kb.i32(16))), d);
        }
      }
    }
    return values;
  }

private:
  bool withMin;
};

/// Q4_K {half d, dmin; u8 scales[12]; u8 qs[128]}, 256 values in 8 chunks:
/// chunk s has 6-bit scale sc and min mn (ggml's get_scale_min_k4) and the
/// low (s even) or high (s odd) nibbles of qs[32 * (s / 2) ..][0..31]:
/// value = d * sc * q - dmin * mn.
class Q4_KDecoder : public GPUWeightDecoder {
public:
  explicit Q4_KDecoder(int64_t rowBytes) : GPUWeightDecoder("q4_K", rowBytes) {}
  SmallVector<Value> decode(GPUKernelBuilder &kb, Value source,
                            Value rowBase, Value chunk) const override {
    Bits bits{kb};
    Value words = kb.view(source, kb.b.getI32Type());
    Value bytes = kb.view(source, kb.b.getI8Type());
    Value s = kb.rem(chunk, kb.idx(8));
    Value block = kb.add(rowBase, kb.mul(kb.div(chunk, kb.idx(8)), kb.idx(144)));
    Value header = bits.word(words, kb.div(block, kb.idx(4)));
    Value d = bits.half(header), dmin = bits.half(bits.shr(header, 16));
    Value scales = kb.add(block, kb.idx(4));
    Value lo = bits.word(bytes, kb.add(scales, s));
    Value hi = bits.word(bytes, kb.add(scales, kb.add(s, kb.idx(4))));
    Value low3 = bits.word(bytes, kb.add(scales, kb.rem(s, kb.idx(4))));
    Value first = kb.ult(s, kb.idx(4));
    Value sc = kb.select(first, bits.mask(lo, 63),
                         bits.orI(bits.mask(hi, 15),
                                  bits.shl(bits.shr(low3, 6), 4)));
    Value mn = kb.select(first, bits.mask(hi, 63),
                         bits.orI(bits.shr(hi, 4), bits.shl(bits.shr(lo, 6), 4)));
    Value scale = kb.mul(d, bits.signedF32(sc));
    Value offset = kb.mul(dmin, bits.signedF32(mn));
    Value shift = arith::IndexCastOp::create(
        kb.b, kb.b.getI32Type(), kb.mul(kb.rem(s, kb.idx(2)), kb.idx(4)));
    Value qs = kb.div(kb.add(block, kb.add(kb.idx(16),
                                           kb.mul(kb.div(s, kb.idx(2)),
                                                  kb.idx(32)))),
                      kb.idx(4));
    SmallVector<Value> values;
    for (int64_t i = 0; i < 8; ++i) {
      Value w = bits.shr(bits.word(words, kb.add(qs, kb.idx(i))), shift);
      for (int64_t k = 0; k < 4; ++k)
        values.push_back(kb.sub(
            kb.mul(bits.signedF32(bits.mask(bits.shr(w, 8 * k), 15)), scale),
            offset));
    }
    return values;
  }
};

/// Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; half d}, 256 values in 8
/// chunks: chunk s = 4h + p holds values 128h + 32p + l (l < 32) with code
/// ((ql[64h + l + 32 (p % 2)] >> 4 (p / 2)) & 15) | ((qh[32h + l] >> 2p) & 3)
/// << 4, minus 32, times d * scales[8h + l / 16 + 2p] (ggml's
/// dequantize_row_q6_K).
class Q6_KDecoder : public GPUWeightDecoder {
public:
  explicit Q6_KDecoder(int64_t rowBytes) : GPUWeightDecoder("q6_K", rowBytes) {}
  SmallVector<Value> decode(GPUKernelBuilder &kb, Value source,
                            Value rowBase, Value chunk) const override {
    Bits bits{kb};
    Value halves = kb.view(source, kb.b.getI16Type());
    Value bytes = kb.view(source, kb.b.getI8Type());
    Value s = kb.rem(chunk, kb.idx(8));
    Value h = kb.div(s, kb.idx(4)), p = kb.rem(s, kb.idx(4));
    Value block = kb.add(rowBase, kb.mul(kb.div(chunk, kb.idx(8)), kb.idx(210)));
    Value d = bits.half(bits.word(halves, kb.div(kb.add(block, kb.idx(208)),
                                                 kb.idx(2))));
    auto toI32 = [&](Value i) {
      return arith::IndexCastOp::create(kb.b, kb.b.getI32Type(), i);
    };
    Value qlShift = toI32(kb.mul(kb.div(p, kb.idx(2)), kb.idx(4)));
    Value qhShift = toI32(kb.mul(p, kb.idx(2)));
    Value ql = kb.add(block, kb.add(kb.mul(h, kb.idx(64)),
                                    kb.mul(kb.rem(p, kb.idx(2)), kb.idx(32))));
    Value qh = kb.add(block, kb.add(kb.idx(128), kb.mul(h, kb.idx(32))));
    Value scaleAt = kb.add(block, kb.add(kb.idx(192),
                                         kb.add(kb.mul(h, kb.idx(8)),
                                                kb.mul(p, kb.idx(2)))));
    Value scale[2];
    for (int64_t i = 0; i < 2; ++i) {
      Value raw = kb.load(bytes, kb.add(scaleAt, kb.idx(i)));
      scale[i] = kb.mul(d, bits.signedF32(arith::ExtSIOp::create(
                               kb.b, kb.b.getI32Type(), raw)));
    }
    SmallVector<Value> values;
    for (int64_t i = 0; i < kChunk / 2; ++i) {
      Value low = bits.shr(
          bits.word(halves, kb.div(kb.add(ql, kb.idx(2 * i)), kb.idx(2))),
          qlShift);
      Value high = bits.shr(
          bits.word(halves, kb.div(kb.add(qh, kb.idx(2 * i)), kb.idx(2))),
          qhShift);
      for (int64_t k = 0; k < 2; ++k) {
        Value code = bits.orI(bits.mask(bits.shr(low, 8 * k), 15),
                              bits.shl(bits.mask(bits.shr(high, 8 * k), 3), 4));
        int64_t l = 2 * i + k;
        values.push_back(kb.mul(bits.signedF32(kb.sub(code, kb.i32(32))),
                                scale[l / 16]));
      }
    }
    return values;
  }
};

/// #kiln_gpu.split (SplitLayout.h): a row's codes are rowBytes = C * Q bytes
/// of 16-byte plane pieces, its headers lie after all rows' codes. Each
/// plane piece is one 128-bit load; the header a 16- or 32-bit load.
class SplitDecoder : public GPUWeightDecoder {
public:
  SplitDecoder(const SplitFormat &format, int64_t n, int64_t k)
      : GPUWeightDecoder(std::string(format.name) + "_split",
                         k / kChunk * format.codeBytes),
        format(format), n(n), blocks(k / kChunk) {}
  bool rowIsContiguous() const override { return false; }
  bool hasCodes() const override { return true; }
  SmallVector<Value> decode(GPUKernelBuilder &kb, Value source, Value rowBase,
                            Value chunk) const override {
    ScaledChunk c = *decodeScaled(kb, source, rowBase, chunk);
    SmallVector<Value> values;
    for (Value code : c.codes)
      values.push_back(c.min ? kb.fma(code, c.scale, c.min)
                             : kb.mul(code, c.scale));
    return values;
  }
  std::optional<CodeChunk> loadCodes(GPUKernelBuilder &kb, Value source,
                                     Value rowBase,
                                     Value chunk) const override {
    Bits bits{kb};
    int64_t codeBytes = format.codeBytes, headerBytes = format.headerBytes;
    Value pieces = kb.view(source, VectorType::get({4}, kb.b.getI32Type()));
    Value first = kb.add(kb.div(rowBase, kb.idx(16)), chunk);
    CodeChunk c;
    for (int64_t p = 0; p < codeBytes / 16; ++p) {
      Value piece = kb.load(pieces, kb.add(first, kb.idx(p * blocks)));
      for (int64_t i = 0; i < 4; ++i)
        c.words.push_back(vector::ExtractOp::create(kb.b, piece, i));
    }
    // Block `chunk` of row rowBase / rowBytes, counted in headers.
    Value headerIndex =
        kb.add(kb.idx(n * blocks * codeBytes / headerBytes),
               kb.add(kb.div(rowBase, kb.idx(codeBytes)), chunk));
    Value header = bits.word(
        kb.view(source, kb.b.getIntegerType(8 * headerBytes)), headerIndex);
    c.scale = bits.half(header);
    if (format.hasMin)
      c.min = bits.half(bits.shr(header, 16));
    // Q8_0's codes are signed bytes; Q4_0's nibbles are offset by 8, Q4_1's
    // by its min.
    c.bits = codeBytes == 32 ? 8 : 4;
    c.offset = c.bits == 4 && !format.hasMin ? 8 : 0;
    return c;
  }
  std::optional<ScaledChunk> decodeScaled(GPUKernelBuilder &kb, Value source,
                                          Value rowBase,
                                          Value chunk) const override {
    Bits bits{kb};
    CodeChunk raw = *loadCodes(kb, source, rowBase, chunk);
    ScaledChunk c;
    c.scale = raw.scale;
    c.min = raw.min;
    c.codes.resize(kChunk);
    for (auto [i, w] : llvm::enumerate(raw.words)) {
      if (raw.bits == 8) {
        // Flipping the sign bits gives code + 128.
        Value flipped =
            arith::XOrIOp::create(kb.b, w, kb.i32(int32_t(0x80808080)));
        for (int64_t k = 0; k < 4; ++k)
          c.codes[4 * i + k] = bits.byteToF32(flipped, k, 128);
        continue;
      }
      Value low = bits.mask(w, 0x0F0F0F0F);
      Value high = bits.mask(bits.shr(w, 4), 0x0F0F0F0F);
      for (int64_t k = 0; k < 4; ++k) {
        c.codes[4 * i + k] = bits.byteToF32(low, k, raw.offset);
        c.codes[4 * i + k + 16] = bits.byteToF32(high, k, raw.offset);
      }
    }
    return c;
  }

private:
  const SplitFormat &format;
  int64_t n, blocks;
};

} // namespace

FailureOr<std::unique_ptr<GPUWeightDecoder>>
GPUWeightDecoder::get(WeightType type, std::string &error) {
  if (type.getCompressedSparsity()) {
    error = "sparse weights are not supported by the GPU lowering yet";
    return failure();
  }
  int64_t k = type.getInnerDim();
  if (k % kChunk != 0) {
    error = "the GPU lowering needs weight rows of a multiple of 32 values";
    return failure();
  }
  if (Type element = type.getElementType()) {
    if (element.isF32())
      return std::unique_ptr<GPUWeightDecoder>(new DenseF32Decoder(k));
    if (element.isF16())
      return std::unique_ptr<GPUWeightDecoder>(new DenseF16Decoder(k));
    error = "dense weights of this element type are not supported by the "
            "GPU lowering yet (f32, f16)";
    return failure();
  }
  QuantSchemeAttr q = type.getQuant();
  if (isSplit(type))
    return std::unique_ptr<GPUWeightDecoder>(
        new SplitDecoder(*findSplitFormat(type), type.getNumRows(), k));
  FailureOr<uint64_t> rowBytes = type.getRowBytes();
  const ::kiln::GGMLFormat *ggml =
      q.getLayout() == QuantLayout::GGUF ? findGGMLBlockFormat(q) : nullptr;
  if (ggml && succeeded(rowBytes)) {
    int64_t bytes = *rowBytes;
    switch (ggml->type) {
    case ::kiln::GGMLType::Q4_0:
    case ::kiln::GGMLType::Q8_0:
      return std::unique_ptr<GPUWeightDecoder>(
          new Block16BitDecoder(ggml->type, bytes));
    case ::kiln::GGMLType::Q4_1:
      return std::unique_ptr<GPUWeightDecoder>(new Q4_1Decoder(bytes));
    case ::kiln::GGMLType::Q5_0:
    case ::kiln::GGMLType::Q5_1:
      return std::unique_ptr<GPUWeightDecoder>(
          new Q5Decoder(ggml->type == ::kiln::GGMLType::Q5_1, bytes));
    case ::kiln::GGMLType::Q4_K:
      return std::unique_ptr<GPUWeightDecoder>(new Q4_KDecoder(bytes));
    case ::kiln::GGMLType::Q6_K:
      return std::unique_ptr<GPUWeightDecoder>(new Q6_KDecoder(bytes));
    default:
      break;
    }
  }
  error = "this weight encoding is not supported by the GPU lowering yet "
          "(f32, f16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q6_K)";
  return failure();
}
