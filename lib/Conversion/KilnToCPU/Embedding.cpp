//===- Embedding.cpp - kiln.embedding to a kernel call --------------------===//
//
// Rows of a (possibly packed) table, dequantized and scaled.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"
#include "Rows16Reader.h"
#include "StepLowering.h"

using namespace mlir;
using namespace mlir::kiln;

//===----------------------------------------------------------------------===//
// embedding: y[t, :] = dequant(table[ids[t], :])
//===----------------------------------------------------------------------===//

/// The signature of both embedding kernels: (table: memref<?xi8>,
/// tableOffset: index, ids: memref<?xi32>, y: memref<?xDIMxf32>, tid, nth).
static KernelSignature embeddingSignature(KernelLibrary &library,
                                          int64_t dim) {
  KernelSignature sig(library.getContext());
  sig.bytesAt("table").ids("ids").rows("y", dim);
  return sig;
}

/// kiln_embedding_<encoding>_<vocab>x<dim>[_s<scale>].
static std::string embeddingName(const Twine &encoding, int64_t vocab,
                                 int64_t dim, float scale) {
  return ("kiln_embedding_" + encoding + "_" + Twine(vocab) + "x" +
          Twine(dim) + (scale == 1.0f ? "" : "_s" + floatName(scale)))
      .str();
}

/// y[t] = scale * table[ids[t]] (embeddingSignature).
static func::FuncOp buildEmbeddingKernel(KernelLibrary &library,
                                         const WeightFormat &format,
                                         int64_t vocab, int64_t dim,
                                         float scale) {
  KernelBuilder kb(library, embeddingSignature(library, dim),
                   embeddingName(format.getName(), vocab, dim, scale));
  ImplicitLocOpBuilder &b = kb.b;
  Value table = kb.arg("table"), offset = kb.arg("tableOffset");
  Value idsBuf = kb.arg("ids"), y = kb.arg("y");
  auto [t0, t1] = kb.share(kb.dim(y, 0));
  int64_t chunkValues = format.getChunkValues();
  kb.forEach(t0, t1, [&](Value t) {
    Value id = memref::LoadOp::create(b, idsBuf, t);
    // Out-of-range ids are clamped so a bad token can never read outside the
    // table; the runtime rejects them before they get here.
    Value idIndex = arith::IndexCastUIOp::create(b, b.getIndexType(), id);
    idIndex = arith::MinUIOp::create(b, idIndex, kb.idx(vocab - 1));
    Value rowBase =
        kb.add(offset, kb.mul(idIndex, kb.idx(format.getRowBytes())));
    kb.forEach(kb.idx(0), kb.idx(dim / chunkValues), [&](Value c) {
      SmallVector<Value> values = format.emitChunk(b, table, rowBase, c);
      for (auto [p, v] : llvm::enumerate(values)) {
        if (scale != 1.0f)
          v = kb.mul(v, kb.splat(kb.f(scale)));
        kb.store(v, y,
                 {t, kb.add(kb.mul(c, kb.idx(chunkValues)),
                            kb.idx(int64_t(p) * kLanes))});
      }
    });
  });
  return kb.finish();
}

/// embedding's signature for a table in #kiln_cpu.rows16 (a tied output
/// layer's weight, stored once).
static func::FuncOp buildEmbeddingRows16Kernel(KernelLibrary &library,
                                               const Rows16Format &format,
                                               int64_t vocab, int64_t dim,
                                               float scale) {
  KernelBuilder kb(library, embeddingSignature(library, dim),
                   embeddingName("r16_" + Twine(format.name), vocab, dim,
                                 scale));
  ImplicitLocOpBuilder &b = kb.b;
  Type f32 = b.getF32Type();
  Value table = kb.arg("table"), offset = kb.arg("tableOffset");
  Value idsBuf = kb.arg("ids"), y = kb.arg("y");
  Rows16Reader reader{kb, format, table, library.getTarget()};
  const int64_t bps = format.superValues / 32;
  auto i32x16 = VectorType::get({kLanes}, b.getI32Type());
  auto i32x8 = VectorType::get({8}, b.getI32Type());
  auto i32x32 = VectorType::get({32}, b.getI32Type());
  auto f32x32 = VectorType::get({32}, f32);
  auto tokenShare = kb.share(kb.dim(y, 0));
  kb.forEach(tokenShare.first, tokenShare.second, [&](Value t) {
    Value id = memref::LoadOp::create(b, idsBuf, t);
    // Out-of-range ids are clamped so a bad token can never read outside the
    // table; the runtime rejects them before they get here.
    Value row = arith::IndexCastUIOp::create(b, b.getIndexType(), id);
    row = arith::MinUIOp::create(b, row, kb.idx(vocab - 1));
    Value group = kb.add(offset, kb.mul(kb.div(row, kb.idx(kRows16)),
                                        kb.idx(format.groupBytes(dim))));
    Value lane = kb.rem(row, kb.idx(kRows16));
    auto laneOf = [&](Value v) -> Value {
      return vector::ExtractOp::create(b, v, ArrayRef<OpFoldResult>{lane});
    };
    kb.forEach(kb.idx(0), kb.idx(dim / format.superValues), [&](Value s) {
      Value header = kb.add(group, kb.mul(s, kb.idx(format.headerBytes)));
      Value d = reader.firstScale(header);
      for (int64_t j = 0; j < bps; ++j) {
        Value blk = kb.add(kb.mul(s, kb.idx(bps)), kb.idx(j));
        SmallVector<Value> targets = reader.unpack(kb.add(
            group, kb.add(kb.idx(format.headerRegionBytes(dim)),
                          kb.mul(blk, kb.idx(format.blockCodeBytes())))));
        // This row's 4 codes of each target are values 4t..4t+3, in order.
        SmallVector<Value> words;
        for (Value target : targets)
          words.push_back(laneOf(vector::BitCastOp::create(b, i32x16, target)));
        Value packed = vector::FromElementsOp::create(b, i32x8, words);
        Value codes = arith::ExtUIOp::create(
            b, i32x32,
            vector::BitCastOp::create(
                b, VectorType::get({32}, b.getI8Type()), packed));
        if (format.offset)
          codes = arith::SubIOp::create(
              b, codes,
              arith::ConstantOp::create(
                  b, DenseElementsAttr::get(
                         i32x32, b.getI32IntegerAttr(format.offset))));
        Rows16Reader::Scales sc = reader.scales(header, d, j);
        Value weightScale =
            vector::BroadcastOp::create(b, f32x32, laneOf(sc.scale));
        // Values 0..15 take the low half's number, 16..31 the high's.
        auto byHalf = [&](Value lo, Value hi) -> Value {
          SmallVector<int64_t> halves;
          for (int64_t v = 0; v < 32; ++v)
            halves.push_back(v < 16 ? 0 : 1);
          Value pair = vector::FromElementsOp::create(
              b, VectorType::get({2}, f32), ValueRange{lo, hi});
          return vector::ShuffleOp::create(b, pair, pair, halves);
        };
        if (sc.lo) {
          Value lo =
              kb.mul(laneOf(sc.scale), reader.toFloatScalar(laneOf(sc.lo)));
          Value hi =
              kb.mul(laneOf(sc.scale), reader.toFloatScalar(laneOf(sc.hi)));
          weightScale = byHalf(lo, hi);
        }
        Value values =
            kb.mul(arith::SIToFPOp::create(b, f32x32, codes), weightScale);
        if (sc.min)
          values = kb.add(
              values, vector::BroadcastOp::create(b, f32x32, laneOf(sc.min)));
        if (sc.minLo) {
          Value lo = laneOf(sc.minLo), hi = laneOf(sc.minHi);
          values = kb.add(values, byHalf(lo, hi));
        }
        if (scale != 1.0f)
          values = kb.mul(values, vector::BroadcastOp::create(b, f32x32,
                                                              kb.f(scale)));
        vector::StoreOp::create(b, values, y,
                                ValueRange{t, kb.mul(blk, kb.idx(32))});
      }
    });
  });
  return kb.finish();
}

//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

namespace {

struct EmbeddingLowering : KernelCallPattern<EmbeddingOp> {
  LogicalResult lower(EmbeddingOp e, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    Operation *op = e;
    if (failed(step.requireRowsF32(op, e.getResult())))
      return failure();
    auto w = step.weightOf(e.getTable(), op);
    if (failed(w))
      return failure();
    int64_t vocab = w->type.getShape()[0], dim = w->type.getShape()[1];
    func::FuncOp kernel;
    if (isRows16(w->type)) {
      kernel =
          buildEmbeddingRows16Kernel(step.kernels, *findRows16Format(w->type),
                                     vocab, dim, e.getScale().convertToFloat());
    } else {
      auto f = step.formatOf(op, w->type);
      if (failed(f))
        return failure();
      if (dim % (*f)->getChunkValues() != 0)
        return e.emitOpError("embedding width must be a multiple of ")
               << (*f)->getChunkValues();
      kernel = buildEmbeddingKernel(step.kernels, **f, vocab, dim,
                                      e.getScale().convertToFloat());
    }
    Value ids = step.mapped(e.getIds());
    Value y = step.resultBuffer(e.getResult(), ids, b);
    step.callKernel(kernel, {step.weightsArg, idx(b, w->offset), ids, y}, b,
                    {step.regionOf(e.getIds())},
                    {step.regionOf(e.getResult())});
    step.bind(e.getResult(), y);
    return success();
  }
};

} // namespace

void mlir::kiln::populateEmbeddingPatterns(KernelCallPatterns &patterns) {
  patterns.add<EmbeddingLowering>();
}
