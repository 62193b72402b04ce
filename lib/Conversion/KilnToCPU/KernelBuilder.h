//===- KernelBuilder.h - how a CPU kernel is written ------------*- C++ -*-===//
//
// What every kernel of the CPU kernel library is built with: its signature,
// declared once with named arguments (KernelSignature), a builder that
// starts the function, hands out the arguments by name and gives the
// finished kernel to the KernelLibrary (KernelBuilder), and the small
// vocabulary kernels are written in (KB).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CONVERSION_KILNTOCPU_KERNELBUILDER_H
#define KILN_CONVERSION_KILNTOCPU_KERNELBUILDER_H

#include "CPUKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <string>

namespace mlir::kiln {

/// Small vocabulary for writing kernels with an ImplicitLocOpBuilder.
struct KB {
  ImplicitLocOpBuilder &b;

  Type f32() { return b.getF32Type(); }
  VectorType vf32() { return VectorType::get({kLanes}, b.getF32Type()); }
  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
  Value f(float v) {
    return arith::ConstantOp::create(b, b.getF32FloatAttr(v));
  }
  Value splat(Value scalar) {
    return vector::BroadcastOp::create(b, vf32(), scalar);
  }
  Value zeros() { return splat(f(0.0f)); }
  Value add(Value x, Value y) {
    return isa<IndexType>(x.getType()) ? Value(arith::AddIOp::create(b, x, y))
                                       : Value(arith::AddFOp::create(b, x, y));
  }
  Value mul(Value x, Value y) {
    return isa<IndexType>(x.getType()) ? Value(arith::MulIOp::create(b, x, y))
                                       : Value(arith::MulFOp::create(b, x, y));
  }
  Value sub(Value x, Value y) {
    return isa<IndexType>(x.getType()) ? Value(arith::SubIOp::create(b, x, y))
                                       : Value(arith::SubFOp::create(b, x, y));
  }
  Value div(Value x, Value y) {
    return isa<IndexType>(x.getType()) ? Value(arith::DivUIOp::create(b, x, y))
                                       : Value(arith::DivFOp::create(b, x, y));
  }
  Value rem(Value x, Value y) { return arith::RemUIOp::create(b, x, y); }
  Value fma(Value x, Value y, Value acc) {
    return vector::FMAOp::create(b, x, y, acc);
  }
  Value sum(Value v) {
    return vector::ReductionOp::create(b, vector::CombiningKind::ADD, v);
  }
  Value maxf(Value x, Value y) { return arith::MaximumFOp::create(b, x, y); }
  Value exp(Value x) { return math::ExpOp::create(b, x); }
  Value dim(Value memref, int64_t d) {
    return memref::DimOp::create(b, memref, d);
  }
  Value load(Value memref, ValueRange indices) {
    return vector::LoadOp::create(b, vf32(), memref, indices);
  }
  void store(Value v, Value memref, ValueRange indices) {
    vector::StoreOp::create(b, v, memref, indices);
  }
  /// Element `i` of an i32 memref (token ids, positions, slots) as an index;
  /// unsigned, so a negative one is past every bound the kernel checks.
  Value loadIndex(Value ids, Value i) {
    Value v = memref::LoadOp::create(b, ids, ValueRange{i});
    return arith::IndexCastUIOp::create(b, b.getIndexType(), v);
  }
  Value toF32(Value index) {
    Value i = arith::IndexCastOp::create(b, b.getI64Type(), index);
    return arith::SIToFPOp::create(b, f32(), i);
  }
  /// [total * tid / nth, total * (tid + 1) / nth): this thread's share.
  std::pair<Value, Value> share(Value total, Value tid, Value nth) {
    Value begin = div(mul(total, tid), nth);
    Value end = div(mul(total, add(tid, idx(1))), nth);
    return {begin, end};
  }
  /// An f32 view of bytes [offset, offset + 4 * count) of a byte buffer.
  Value floatView(Value bytes, Value offset, Value count) {
    auto type = MemRefType::get({ShapedType::kDynamic}, f32());
    return memref::ViewOp::create(b, type, bytes, offset, ValueRange{count});
  }

  /// scf.for lb..ub step `step` carrying `inits`; `body` returns the values
  /// to yield (empty without iter args).
  scf::ForOp loop(Value lb, Value ub, Value step, ValueRange inits,
                  function_ref<SmallVector<Value>(Value, ValueRange)> body) {
    auto forOp = scf::ForOp::create(b, lb, ub, step, inits);
    OpBuilder::InsertionGuard guard(b);
    Block *block = forOp.getBody();
    if (inits.empty())
      b.setInsertionPoint(block->getTerminator());
    else
      b.setInsertionPointToStart(block);
    SmallVector<Value> yielded =
        body(forOp.getInductionVar(), forOp.getRegionIterArgs());
    if (!inits.empty())
      scf::YieldOp::create(b, yielded);
    return forOp;
  }
  void forEach(Value lb, Value ub, function_ref<void(Value)> body) {
    loop(lb, ub, idx(1), {}, [&](Value iv, ValueRange) {
      body(iv);
      return SmallVector<Value>{};
    });
  }
  /// The weight-streaming GEMM order: chunks of `chunk` tokens (their
  /// activations stay in L2 while every row group walks them); in a chunk,
  /// each row group g in [g0, g1) takes the tokens `tile` at a time, then
  /// one by one: emitTile(g, firstToken, tileSize).
  void forTokenTiles(Value tokens, int64_t chunk, int64_t tile, Value g0,
                     Value g1,
                     function_ref<void(Value, Value, int64_t)> emitTile) {
    loop(idx(0), tokens, idx(chunk), {}, [&](Value c0, ValueRange) {
      Value c1 = arith::MinUIOp::create(b, tokens, add(c0, idx(chunk)));
      Value tiledEnd = sub(c1, rem(sub(c1, c0), idx(tile)));
      forEach(g0, g1, [&](Value g) {
        loop(c0, tiledEnd, idx(tile), {}, [&](Value t0, ValueRange) {
          emitTile(g, t0, tile);
          return SmallVector<Value>{};
        });
        forEach(tiledEnd, c1, [&](Value t) { emitTile(g, t, 1); });
      });
      return SmallVector<Value>{};
    });
  }
};

/// A kernel's arguments, declared once, in order, each with a name the body
/// asks for. Kernels follow one convention (CPUKernels.h): operands first,
/// then `tid` and `nth`, which the signature appends itself.
class KernelSignature {
public:
  explicit KernelSignature(MLIRContext *ctx) : ctx(ctx) {}

  KernelSignature &arg(StringRef name, Type type);
  /// `name`: memref<?xCOLSxf32>, rows of activations (getRowsType).
  KernelSignature &rows(StringRef name, int64_t cols);
  /// `name`: memref<?xi32>, token ids (getIdsType).
  KernelSignature &ids(StringRef name);
  /// `name`: index.
  KernelSignature &index(StringRef name);
  /// `name`: memref<?xi8>, a whole byte buffer.
  KernelSignature &bytes(StringRef name);
  /// `name`: memref<?xi8> and `name`Offset: index, an operand that starts at
  /// a byte offset of a buffer (a weight, a scratch slot, a table).
  KernelSignature &bytesAt(StringRef name);
  /// `w` and, with `hasBias`, `bias`: a weight and its bias, each at a byte
  /// offset of the weights (bytesAt).
  KernelSignature &weightAndBias(bool hasBias);
  /// `name`: !llvm.ptr.
  KernelSignature &pointer(StringRef name);
  /// Leaves out `tid` and `nth`: a function every thread calls whole (the
  /// barrier), not a share of the work.
  KernelSignature &withoutThreads();

  /// The function type: the arguments in order, then `tid`, `nth`.
  FunctionType getType() const;
  /// The argument names, in the order of getType().
  SmallVector<std::string> getNames() const;

private:
  MLIRContext *ctx;
  SmallVector<std::pair<std::string, Type>> args;
  bool threads = true;
};

namespace detail {
/// The builder a KernelBuilder owns, constructed before its KB base.
struct KernelBodyBuilder {
  ImplicitLocOpBuilder builder;
};
} // namespace detail

/// One kernel under construction, with KB's vocabulary: starts its function
/// in the library with the builder at the start of the body, gives the
/// arguments by name and this thread's share of the work, and ends the
/// kernel with finish(). Kernel builders are functions of their family's
/// file, given the library:
///
///   KernelSignature sig(library.getContext());
///   sig.rows("x", k).bytesAt("w").rows("y", n);
///   KernelBuilder kb(library, sig, name);
///   Value x = kb.arg("x"), w = kb.arg("w"), wOffset = kb.arg("wOffset");
///   auto [t0, t1] = kb.share(kb.dim(x, 0));
///   ... body ...
///   return kb.finish();
class KernelBuilder : private detail::KernelBodyBuilder, public KB {
public:
  KernelBuilder(KernelLibrary &library, const KernelSignature &signature,
                const Twine &name);
  KernelBuilder(const KernelBuilder &) = delete;
  KernelBuilder &operator=(const KernelBuilder &) = delete;

  /// The argument declared as `name`.
  Value arg(StringRef name) const;
  /// The argument declared as `name`, or null where the signature left it
  /// out (an optional operand such as a bias).
  Value optionalArg(StringRef name) const;
  using KB::share;
  /// This thread's share of [0, total): KB::share with the kernel's `tid`
  /// and `nth`.
  std::pair<Value, Value> share(Value total) {
    return share(total, arg("tid"), arg("nth"));
  }

  /// The bias weightAndBias declared, as a view of `n` f32 values; null
  /// where the kernel has no bias.
  Value biasFloats(int64_t n) {
    Value bias = optionalArg("bias");
    return bias ? floatView(bias, arg("biasOffset"), idx(n)) : Value();
  }

  /// Ends the body and hands the kernel to the library: the kernel built
  /// before with the same code, or this one (KernelLibrary::finish).
  func::FuncOp finish();

private:
  KernelLibrary &library;
  func::FuncOp fn;
  /// fn's arguments, named by `names`.
  ArrayRef<BlockArgument> args;
  SmallVector<std::string> names;
};

/// memref<?xi8>: weights, scratch and tables as the kernels take them.
MemRefType getBytesType(MLIRContext *ctx);

/// A float in a kernel name: exact hex digits, symbol characters only.
std::string floatName(float v);

/// One f32 or i32 at byte `offset` of a byte buffer: the fields of an int8
/// activation record (kQ8RecordBytes).
void storeF32(ImplicitLocOpBuilder &b, Value v, Value bytes, Value offset);
void storeI32(ImplicitLocOpBuilder &b, Value v, Value bytes, Value offset);
Value loadF32(ImplicitLocOpBuilder &b, Value bytes, Value offset);
Value loadI32(ImplicitLocOpBuilder &b, Value bytes, Value offset);
/// 8 bytes at byte `offset` of a byte buffer, as one i64.
Value loadI64(ImplicitLocOpBuilder &b, Value bytes, Value offset);

/// Bits [shift, shift + width of `mask`) of every byte of `bytes`
/// (vector<64xi8>): (bytes >> shift) & mask, the mask left out where the
/// shift already clears every other bit. How packed code planes unpack.
Value emitByteField(ImplicitLocOpBuilder &b, Value bytes, int64_t shift,
                    int64_t mask);

/// Quantizes x[t, col .. col + 32) to `bits`-bit codes (2-8) in int8 into the
/// kQ8RecordBytes record at byte `rec` of `q` (see
/// KernelLibrary::quantizeActivations); also the norm and elementwise
/// kernels' fused epilogue.
void emitQuantizeBlock(KB &kb, Value x, Value t, Value col, Value q, Value rec,
                       int64_t bits);

} // namespace mlir::kiln

#endif // KILN_CONVERSION_KILNTOCPU_KERNELBUILDER_H
