//===- KilnToCPU.cpp - kiln ops to multithreaded vector kernels -----------===//
//
// See the pass description in Conversion/Passes.td. The functions this pass
// lowers are straight-line graphs (one block, no control flow), which makes
// buffer assignment a simple interval allocation over the op order.
//
//===----------------------------------------------------------------------===//

#include "CPUKernels.h"
#include "Conversion/Passes.h"
#include "Kiln/IR/KilnDialect.h"

#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/TypeSwitch.h"

namespace mlir::kiln {
#define GEN_PASS_DEF_CONVERTKILNTOCPU
#include "Conversion/Passes.h.inc"
} // namespace mlir::kiln

using namespace mlir;
using namespace mlir::kiln;

namespace {

constexpr int64_t kBufferAlignment = 64;

/// Where a kiln.weight's bytes are: an offset into the `%weights` buffer.
struct WeightRef {
  WeightType type;
  int64_t offset;
};

/// Ops whose result is a view of their source's buffer (no kernel, no slot).
bool isView(Operation *op) {
  return isa_and_nonnull<tensor::ExtractSliceOp, tensor::ExpandShapeOp,
                         tensor::CollapseShapeOp>(op);
}

/// The value whose buffer `v` views (itself when it is not a view).
Value viewRoot(Value v) {
  while (isView(v.getDefiningOp()))
    v = v.getDefiningOp()->getOperand(0);
  return v;
}

/// Bytes [offset, offset + size) of scratch holding one tensor value, as
/// kiln-plan-memory placed it.
struct Slot {
  int64_t offset = 0, size = 0;
};

class FunctionLowering {
public:
  FunctionLowering(func::FuncOp func, KernelLibrary &kernels,
                   bool int8Activations, StringRef cpu)
      : oldFunc(func), kernels(kernels), int8Activations(int8Activations),
        cpu(cpu) {}

  LogicalResult run();

private:
  LogicalResult planScratch();
  LogicalResult emitOp(Operation *op, ImplicitLocOpBuilder &b);
  LogicalResult emitWeight(WeightOp op);
  FailureOr<WeightRef> weightOf(Value v, Operation *user);
  /// The buffer op's result is computed into: its out-parameter if returned,
  /// else its scratch slot.
  Value resultBuffer(Value result, Value rowSource, ImplicitLocOpBuilder &b);
  Value castTo(Value v, Type type, ImplicitLocOpBuilder &b);
  /// Bytes [begin, end) of a buffer a kernel reads or writes; a null buffer
  /// stands for any memory.
  struct Region {
    Value buffer;
    int64_t begin = 0, end = INT64_MAX;
  };
  /// The memory holding tensor `value` of the function being lowered.
  Region regionOf(Value value);
  Region scratchRegion(int64_t offset, int64_t size) {
    return {scratchArg, offset, offset + size};
  }
  /// Calls `kernel` on all threads. A barrier goes first only when the
  /// kernel reads what a kernel since the last barrier wrote, or writes what
  /// one read or wrote: independent kernels (Q, K and V projections) run
  /// back to back.
  void callKernel(func::FuncOp kernel, SmallVector<Value> args,
                  ImplicitLocOpBuilder &b, ArrayRef<Region> reads,
                  ArrayRef<Region> writes);
  void barrier(ImplicitLocOpBuilder &b);
  static bool overlaps(const Region &a, const Region &b);
  /// Whether a linear layer over `weight` takes int8-quantized activations.
  bool usesInt8(WeightType weight);
  /// Whether `v` (rows of `dim` values) is the input of a linear layer that
  /// takes int8 activations: its producer then quantizes it as it writes it.
  bool feedsInt8Linear(Value v, int64_t dim);
  /// The llama-style kiln.rope of `linear`'s result, if that is its only use
  /// and a rows16 kernel can rotate whole vectors of pairs.
  RopeOp ropeOf(LinearOp linear);
  /// Ops a linear layer computed in its epilogue.
  llvm::DenseSet<Operation *> fusedOps;
  struct RopeTable;
  /// The cos/sin table of `rope`'s frequencies and position, filled by a
  /// kernel the first time a step needs it.
  /// `rows` is any buffer with the step's token count as its first dim.
  FailureOr<RopeTable *> ropeTableFor(RopeOp rope, Value rows,
                                      ImplicitLocOpBuilder &b);

  func::FuncOp oldFunc;
  KernelLibrary &kernels;
  int64_t maxTokens = 0;
  bool int8Activations;
  std::string cpu;
  /// Scratch region holding the int8-quantized input of the current linear
  /// layer, and the input it holds (consecutive layers over one input, like
  /// Q/K/V, quantize it once).
  int64_t q8Offset = 0;
  Value lastQuantized;
  /// RoPE cos/sin tables in scratch, one per frequency set and position.
  struct RopeTableKey {
    int64_t rotaryDim;
    float base, scale;
    Value position;
    bool operator==(const RopeTableKey &o) const {
      return rotaryDim == o.rotaryDim && base == o.base && scale == o.scale &&
             position == o.position;
    }
  };
  struct RopeTable {
    RopeTableKey key;
    int64_t offset, bytes;
    bool filled = false;
  };
  SmallVector<RopeTable> ropeTables;
  int64_t q8Bytes = 0;
  SmallVector<Region> pendingReads, pendingWrites;

  IRMapping mapping;
  llvm::DenseMap<Value, WeightRef> weights;
  llvm::DenseMap<Value, Slot> slots;
  /// Returned values and the buffer argument each is computed into.
  llvm::DenseMap<Value, Value> destinations;
  std::optional<std::string> weightFile;
  int64_t scratchBytes = 0;
  Value weightsArg, scratchArg, rtArg, tid, nth;
};

} // namespace

static bool isRows16(WeightType type) {
  return type.getQuant() && type.getQuant().getLayout() == QuantLayout::Rows16;
}

bool FunctionLowering::usesInt8(WeightType weight) {
  if (!int8Activations || weight.getInnerDim() % 32 != 0)
    return false;
  if (isRows16(weight))
    return true;
  std::string error;
  auto format = WeightFormat::get(weight, error);
  return succeeded(format) && (*format)->hasIntegerChunks();
}

bool FunctionLowering::feedsInt8Linear(Value v, int64_t dim) {
  return dim % 32 == 0 && llvm::any_of(v.getUsers(), [&](Operation *u) {
           auto l = dyn_cast<LinearOp>(u);
           return l && l.getInput() == v && usesInt8(l.getWeight().getType());
         });
}

/// The only user of a rows16 linear layer's result, if it is an OpTy: the
/// candidates for the kernel's epilogue.
template <typename OpTy>
static OpTy soleUserOfRows16(LinearOp linear, bool int8Activations) {
  Value y = linear.getResult();
  if (!int8Activations || !isRows16(linear.getWeight().getType()) ||
      !y.hasOneUse())
    return {};
  return dyn_cast<OpTy>(*y.getUsers().begin());
}

RopeOp FunctionLowering::ropeOf(LinearOp linear) {
  auto rope = soleUserOfRows16<RopeOp>(linear, int8Activations);
  if (!rope || linear.getResidual() || rope.getStyle() == RopeStyle::NeoX ||
      rope.getRotaryDim() != rope.getHeadDim() ||
      rope.getHeadDim() % kLanes != 0)
    return {};
  return rope;
}

FailureOr<FunctionLowering::RopeTable *>
FunctionLowering::ropeTableFor(RopeOp r, Value rows, ImplicitLocOpBuilder &b) {
  RopeTableKey key{int64_t(r.getRotaryDim()),
                   r.getFreqBase().convertToFloat(),
                   r.getFreqScale().convertToFloat(), r.getPosition()};
  auto it = llvm::find_if(ropeTables,
                          [&](const RopeTable &table) { return table.key == key; });
  if (it == ropeTables.end())
    return r.emitOpError("has no rope table (a planning bug)");
  if (!it->filled) {
    RopeConfig cfg;
    cfg.width = r.getInput().getType().getDimSize(1);
    cfg.numHeads = r.getNumHeads();
    cfg.headDim = r.getHeadDim();
    cfg.rotaryDim = r.getRotaryDim();
    cfg.neox = r.getStyle() == RopeStyle::NeoX;
    cfg.freqBase = key.base;
    cfg.freqScale = key.scale;
    Value tokens = memref::DimOp::create(b, rows, 0);
    callKernel(kernels.ropeTable(cfg),
               {mapping.lookup(r.getPosition()), tokens, scratchArg,
                arith::ConstantIndexOp::create(b, it->offset)},
               b, {}, {scratchRegion(it->offset, it->bytes)});
    it->filled = true;
  }
  return &*it;
}

LogicalResult FunctionLowering::planScratch() {
  // kiln-plan-memory's slots; the kernels' own workspace goes after them.
  Block &body = oldFunc.getBody().front();
  MLIRContext *ctx = oldFunc.getContext();
  IntegerAttr planned =
      KilnDialect::PlannedBytesAttrHelper(ctx).getAttr(oldFunc);
  if (!planned)
    return oldFunc.emitOpError("has no scratch plan: run kiln-plan-memory "
                               "before convert-kiln-to-cpu");
  scratchBytes = planned.getInt();
  auto slotHelper = KilnDialect::SlotAttrHelper(ctx);
  for (Operation &op : body) {
    DenseI64ArrayAttr slot = slotHelper.getAttr(&op);
    if (!slot)
      continue;
    int64_t end;
    if (__builtin_add_overflow(slot[0], slot[1], &end) || end > scratchBytes)
      return op.emitOpError("kiln.slot lies past kiln.planned_bytes");
    slots[op.getResult(0)] = {slot[0], slot[1]};
  }
  // The int8 activation region, after everything else.
  for (Operation &op : body) {
    auto linear = dyn_cast<LinearOp>(op);
    if (!linear || !usesInt8(linear.getWeight().getType()))
      continue;
    int64_t rows = linear.getInput().getType().getDimSize(0);
    if (ShapedType::isDynamic(rows))
      rows = maxTokens;
    if (rows <= 0)
      return linear.emitOpError("has a dynamic token dimension with no "
                                "kiln.max_tokens bound");
    int64_t k = linear.getWeight().getType().getInnerDim();
    q8Bytes = std::max(q8Bytes, rows * (k / 32) * kQ8RecordBytes);
  }
  if (q8Bytes) {
    q8Offset = llvm::alignTo(scratchBytes, kBufferAlignment);
    scratchBytes = q8Offset + q8Bytes;
  }
  for (Operation &op : body) {
    auto rope = dyn_cast<RopeOp>(op);
    if (!rope)
      continue;
    RopeTableKey key{int64_t(rope.getRotaryDim()),
                     rope.getFreqBase().convertToFloat(),
                     rope.getFreqScale().convertToFloat(), rope.getPosition()};
    if (llvm::any_of(ropeTables,
                     [&](const RopeTable &t) { return t.key == key; }))
      continue;
    int64_t rows = rope.getInput().getType().getDimSize(0);
    if (ShapedType::isDynamic(rows))
      rows = maxTokens;
    if (rows <= 0)
      return rope.emitOpError("has a dynamic token dimension with no "
                              "kiln.max_tokens bound");
    int64_t offset = llvm::alignTo(scratchBytes, kBufferAlignment);
    int64_t bytes = rows * key.rotaryDim * int64_t(sizeof(float));
    ropeTables.push_back({key, offset, bytes});
    scratchBytes = offset + bytes;
  }
  return success();
}

FailureOr<WeightRef> FunctionLowering::weightOf(Value v, Operation *user) {
  auto it = weights.find(v);
  if (it == weights.end()) {
    user->emitOpError("weight operand must come from a kiln.weight in the "
                      "same function");
    return failure();
  }
  return it->second;
}

LogicalResult FunctionLowering::emitWeight(WeightOp op) {
  auto ext = dyn_cast<ExternalDataAttr>(op.getSource());
  if (!ext)
    return op.emitOpError("convert-kiln-to-cpu reads weights from one "
                          "external file; inline sources are not supported "
                          "yet (write them to a file and use #kiln.external)");
  std::string path = ext.getPath().str();
  if (!weightFile)
    weightFile = path;
  else if (*weightFile != path)
    return op.emitOpError("all weights of a function must come from one file "
                          "(found \"")
           << path << "\" after \"" << *weightFile << "\")";
  if (ext.getOffset() > uint64_t(INT64_MAX))
    return op.emitOpError("weight offset is too large");
  weights[op.getResult()] = {op.getType(), int64_t(ext.getOffset())};
  return success();
}

Value FunctionLowering::castTo(Value v, Type type, ImplicitLocOpBuilder &b) {
  if (v.getType() == type)
    return v;
  return memref::CastOp::create(b, type, v);
}

FunctionLowering::Region FunctionLowering::regionOf(Value value) {
  if (auto it = destinations.find(value); it != destinations.end())
    return {it->second};
  if (auto it = slots.find(value); it != slots.end())
    return scratchRegion(it->second.offset, it->second.size);
  if (isa<BlockArgument>(value))
    return {mapping.lookup(value)};
  if (isView(value.getDefiningOp()))
    return regionOf(viewRoot(value));
  return {};
}

bool FunctionLowering::overlaps(const Region &a, const Region &b) {
  if (a.buffer && b.buffer && a.buffer != b.buffer)
    return false;
  return a.begin < b.end && b.begin < a.end;
}

void FunctionLowering::barrier(ImplicitLocOpBuilder &b) {
  func::CallOp::create(b, kernels.barrier(), ValueRange{rtArg});
  pendingReads.clear();
  pendingWrites.clear();
}

void FunctionLowering::callKernel(func::FuncOp kernel, SmallVector<Value> args,
                                  ImplicitLocOpBuilder &b,
                                  ArrayRef<Region> reads,
                                  ArrayRef<Region> writes) {
  auto conflicts = [](ArrayRef<Region> mine, ArrayRef<Region> theirs) {
    return llvm::any_of(mine, [&](const Region &m) {
      return llvm::any_of(theirs,
                          [&](const Region &t) { return overlaps(m, t); });
    });
  };
  if (conflicts(reads, pendingWrites) || conflicts(writes, pendingWrites) ||
      conflicts(writes, pendingReads))
    barrier(b);
  args.push_back(tid);
  args.push_back(nth);
  FunctionType type = kernel.getFunctionType();
  for (auto [i, arg] : llvm::enumerate(args))
    args[i] = castTo(arg, type.getInput(i), b);
  func::CallOp::create(b, kernel, args);
  pendingReads.append(reads.begin(), reads.end());
  pendingWrites.append(writes.begin(), writes.end());
}

Value FunctionLowering::resultBuffer(Value result, Value rowSource,
                                     ImplicitLocOpBuilder &b) {
  auto it = destinations.find(result);
  if (it != destinations.end())
    return it->second;
  auto type = cast<RankedTensorType>(result.getType());
  auto memrefType = MemRefType::get(type.getShape(), type.getElementType());
  SmallVector<Value> sizes;
  for (auto [i, d] : llvm::enumerate(type.getShape()))
    if (ShapedType::isDynamic(d))
      sizes.push_back(memref::DimOp::create(b, rowSource, i));
  Value offset = arith::ConstantIndexOp::create(b, slots[result].offset);
  return memref::ViewOp::create(b, memrefType, scratchArg, offset, sizes);
}

static Value idx(ImplicitLocOpBuilder &b, int64_t v) {
  return arith::ConstantIndexOp::create(b, v);
}

LogicalResult FunctionLowering::emitOp(Operation *op, ImplicitLocOpBuilder &b) {
  auto mapped = [&](Value v) { return mapping.lookup(v); };
  auto requireRowsF32 = [&](RankedTensorType t) -> LogicalResult {
    if (t.getRank() != 2 || !t.getElementType().isF32() ||
        ShapedType::isDynamic(t.getDimSize(1)))
      return op->emitOpError("the CPU lowering needs [tokens, features] f32 "
                             "tensors with a static feature dimension, got ")
             << t;
    if (t.getDimSize(1) % kLanes != 0)
      return op->emitOpError("the CPU lowering needs feature dimensions that "
                             "are multiples of 16, got ")
             << t.getDimSize(1);
    return success();
  };
  auto requireRank2F32 = [&](Value v) {
    return requireRowsF32(cast<RankedTensorType>(v.getType()));
  };
  auto format = [&](WeightType type) -> FailureOr<std::unique_ptr<WeightFormat>> {
    std::string error;
    auto f = WeightFormat::get(type, error);
    if (failed(f))
      op->emitOpError(error);
    return f;
  };
  auto finish = [&](Value result, Value buffer) { mapping.map(result, buffer); };

  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case<WeightOp>([&](WeightOp w) { return emitWeight(w); })
      .Case<PackOp>([&](PackOp p) -> LogicalResult {
        return p.emitOpError("is performed by kiln-compile as it writes the "
                             "weights; lower the module with kiln-compile");
      })
      .Case<LinearOp>([&](LinearOp l) -> LogicalResult {
        if (failed(requireRank2F32(l.getInput())) ||
            failed(requireRank2F32(l.getResult())))
          return failure();
        auto w = weightOf(l.getWeight(), op);
        if (failed(w))
          return failure();
        const Rows16Format *rows16 =
            isRows16(w->type) ? w->type.getRows16Format() : nullptr;
        if (rows16 && !int8Activations)
          return l.emitOpError("layout = rows16 weights need activations=int8");
        FailureOr<std::unique_ptr<WeightFormat>> f;
        if (!rows16 && failed(f = format(w->type)))
          return failure();
        std::optional<WeightRef> bias;
        if (l.getBias()) {
          auto bw = weightOf(l.getBias(), op);
          if (failed(bw))
            return failure();
          if (!bw->type.getElementType().isF32())
            return l.emitOpError("the CPU lowering needs an f32 bias");
          bias = *bw;
        }
        int64_t k = w->type.getShape()[1], n = w->type.getShape()[0];
        if (!rows16 && k % (*f)->getChunkValues() != 0)
          return l.emitOpError("K = ") << k << " is not a multiple of "
                                       << (*f)->getChunkValues();
        Value x = mapped(l.getInput());
        // kiln-fuse's residual: added in the epilogue of the rows16 kernels,
        // by an add kernel after the others.
        Value residual = l.getResidual();
        bool residualEpilogue = residual && rows16;
        RopeOp rope = ropeOf(l);
        Value out = rope ? rope.getResult() : l.getResult();
        Value y = resultBuffer(out, x, b);
        SmallVector<Value> args;
        func::FuncOp kernel;
        if (usesInt8(w->type)) {
          if (lastQuantized != x) {
            callKernel(kernels.quantizeActivations(k),
                       {x, scratchArg, idx(b, q8Offset)}, b,
                       {regionOf(l.getInput())},
                       {scratchRegion(q8Offset, q8Bytes)});
            lastQuantized = x;
          }
          args = {scratchArg, idx(b, q8Offset)};
          kernel = rows16 ? kernels.linearRows16(
                                *rows16, k, n, bias.has_value(),
                                residualEpilogue,
                                rope ? int64_t(rope.getHeadDim()) : 0, cpu)
                          : kernels.linearInt8(**f, k, n, bias.has_value(), cpu);
        } else {
          args = {x};
          kernel = kernels.linear(**f, k, n, bias.has_value());
        }
        args.append({weightsArg, idx(b, w->offset)});
        if (bias)
          args.append({weightsArg, idx(b, bias->offset)});
        SmallVector<Region> reads = {usesInt8(w->type)
                                         ? scratchRegion(q8Offset, q8Bytes)
                                         : regionOf(l.getInput())};
        if (residualEpilogue) {
          args.push_back(mapped(residual));
          reads.push_back(regionOf(residual));
        }
        if (rope) {
          FailureOr<RopeTable *> table = ropeTableFor(rope, x, b);
          if (failed(table))
            return failure();
          args.append({scratchArg, idx(b, (*table)->offset)});
          reads.push_back(scratchRegion((*table)->offset, (*table)->bytes));
        }
        args.push_back(y);
        callKernel(kernel, args, b, reads, {regionOf(out)});
        if (residual && !residualEpilogue)
          callKernel(kernels.elementwise(ElementwiseKind::Add, n,
                                         /*quantize=*/false),
                     {y, mapped(residual), y}, b,
                     {regionOf(out), regionOf(residual)}, {regionOf(out)});
        finish(l.getResult(), y);
        if (out != l.getResult()) {
          finish(out, y);
          fusedOps.insert(out.getDefiningOp());
        }
        return success();
      })
      .Case<EmbeddingOp>([&](EmbeddingOp e) -> LogicalResult {
        if (failed(requireRank2F32(e.getResult())))
          return failure();
        auto w = weightOf(e.getTable(), op);
        if (failed(w))
          return failure();
        int64_t vocab = w->type.getShape()[0], dim = w->type.getShape()[1];
        func::FuncOp kernel;
        if (isRows16(w->type)) {
          kernel = kernels.embeddingRows16(*w->type.getRows16Format(), vocab,
                                           dim, e.getScale().convertToFloat());
        } else {
          auto f = format(w->type);
          if (failed(f))
            return failure();
          if (dim % (*f)->getChunkValues() != 0)
            return e.emitOpError("embedding width must be a multiple of ")
                   << (*f)->getChunkValues();
          kernel = kernels.embedding(**f, vocab, dim,
                                     e.getScale().convertToFloat());
        }
        Value ids = mapped(e.getIds());
        Value y = resultBuffer(e.getResult(), ids, b);
        callKernel(kernel, {weightsArg, idx(b, w->offset), ids, y}, b,
                   {regionOf(e.getIds())}, {regionOf(e.getResult())});
        finish(e.getResult(), y);
        return success();
      })
      .Case<RMSNormOp, LayerNormOp>([&](auto n) -> LogicalResult {
        constexpr bool isLayer = std::is_same_v<decltype(n), LayerNormOp>;
        // [tokens, heads, head_dim] (a per-head norm) runs as
        // [tokens * heads, head_dim] rows.
        RankedTensorType inputType = n.getInput().getType();
        bool perHead = inputType.getRank() == 3 &&
                       !ShapedType::isDynamic(inputType.getDimSize(1));
        if (failed(requireRowsF32(
                perHead ? RankedTensorType::get({ShapedType::kDynamic,
                                                 inputType.getDimSize(2)},
                                                inputType.getElementType())
                        : inputType)))
          return failure();
        auto w = weightOf(n.getWeight(), op);
        if (failed(w))
          return failure();
        auto f = format(w->type);
        if (failed(f))
          return failure();
        std::optional<WeightRef> bias;
        if constexpr (isLayer) {
          if (n.getBias()) {
            auto bw = weightOf(n.getBias(), op);
            if (failed(bw))
              return failure();
            if (bw->type != w->type)
              return n.emitOpError("the CPU lowering needs bias and weight of "
                                   "one type");
            bias = *bw;
          }
        }
        int64_t dim = w->type.getShape()[0];
        Value x = mapped(n.getInput());
        Value y = resultBuffer(n.getResult(), x, b);
        finish(n.getResult(), y);
        if (perHead) {
          SmallVector<ReassociationIndices> rows = {{0, 1}, {2}};
          x = memref::CollapseShapeOp::create(b, x, rows);
          y = memref::CollapseShapeOp::create(b, y, rows);
        }
        SmallVector<Value> args = {x, weightsArg, idx(b, w->offset)};
        if (bias)
          args.append({weightsArg, idx(b, bias->offset)});
        args.push_back(y);
        // Pre-norm blocks feed the norm to int8 linear layers: quantize in
        // the norm kernel.
        bool quantize = !perHead && feedsInt8Linear(n.getResult(), dim);
        SmallVector<Region> writes = {regionOf(n.getResult())};
        if (quantize) {
          args.append({scratchArg, idx(b, q8Offset)});
          writes.push_back(scratchRegion(q8Offset, q8Bytes));
        }
        callKernel(kernels.norm(**f, dim, n.getEpsilon().convertToFloat(),
                                isLayer, bias.has_value(), quantize),
                   args, b, {regionOf(n.getInput())}, writes);
        if (quantize)
          lastQuantized = mapped(n.getResult());
        return success();
      })
      .Case<RopeOp>([&](RopeOp r) -> LogicalResult {
        if (fusedOps.contains(r))
          return success(); // applied by the projection before it
        if (failed(requireRank2F32(r.getInput())))
          return failure();
        RopeConfig cfg;
        cfg.width = r.getInput().getType().getDimSize(1);
        cfg.numHeads = r.getNumHeads();
        cfg.headDim = r.getHeadDim();
        cfg.rotaryDim = r.getRotaryDim();
        cfg.neox = r.getStyle() == RopeStyle::NeoX;
        cfg.freqBase = r.getFreqBase().convertToFloat();
        cfg.freqScale = r.getFreqScale().convertToFloat();
        Value x = mapped(r.getInput());
        Value y = resultBuffer(r.getResult(), x, b);
        // One cos/sin table per frequency set and position: the first rope
        // of the step fills it, the others read it.
        FailureOr<RopeTable *> table = ropeTableFor(r, x, b);
        if (failed(table))
          return failure();
        int64_t at = (*table)->offset, bytes = (*table)->bytes;
        callKernel(kernels.rope(cfg), {x, scratchArg, idx(b, at), y}, b,
                   {regionOf(r.getInput()), scratchRegion(at, bytes)},
                   {regionOf(r.getResult())});
        finish(r.getResult(), y);
        return success();
      })
      .Case<AttentionOp>([&](AttentionOp a) -> LogicalResult {
        for (Value v : {a.getQuery(), a.getKey(), a.getValue()})
          if (failed(requireRank2F32(v)))
            return failure();
        KVCacheType cache = a.getCache().getType();
        if (!cache.getElementType().isF32())
          return a.emitOpError("the CPU lowering needs an f32 KV cache");
        if (cache.getHeadDim() % kLanes != 0)
          return a.emitOpError("the CPU lowering needs head_dim to be a "
                               "multiple of 16");
        AttentionConfig cfg;
        cfg.numHeads = a.getNumHeads();
        cfg.kvHeads = cache.getKvHeads();
        cfg.headDim = cache.getHeadDim();
        cfg.layers = cache.getLayers();
        cfg.context = cache.getContextLength();
        cfg.layer = a.getLayer();
        cfg.window = a.getSlidingWindow();
        cfg.scale = a.getScale().convertToFloat();
        cfg.softcap = a.getSoftcap().convertToFloat();
        cfg.causal = a.getCausal();
        Value q = mapped(a.getQuery());
        Value y = resultBuffer(a.getResult(), q, b);
        SmallVector<Value> args = {q,
                                   mapped(a.getKey()),
                                   mapped(a.getValue()),
                                   mapped(a.getCache()),
                                   mapped(a.getPosition()),
                                   y,
                                   rtArg};
        Region cacheRegion = regionOf(a.getCache());
        callKernel(kernels.attention(cfg), args, b,
                   {regionOf(a.getQuery()), regionOf(a.getKey()),
                    regionOf(a.getValue()), cacheRegion},
                   {regionOf(a.getResult()), cacheRegion});
        finish(a.getResult(), y);
        return success();
      })
      .Case<AddOp, MulOp, SwiGLUOp, GeGLUOp>([&](auto e) -> LogicalResult {
        if (failed(requireRank2F32(e.getLhs())))
          return failure();
        ElementwiseKind kind;
        if constexpr (std::is_same_v<decltype(e), AddOp>)
          kind = ElementwiseKind::Add;
        else if constexpr (std::is_same_v<decltype(e), MulOp>)
          kind = ElementwiseKind::Mul;
        else if constexpr (std::is_same_v<decltype(e), SwiGLUOp>)
          kind = ElementwiseKind::SwiGLU;
        else
          kind = e.getApproximate() == GeluApprox::Tanh
                     ? ElementwiseKind::GeGLUTanh
                     : ElementwiseKind::GeGLUErf;
        Value lhs = mapped(e.getLhs());
        Value y = resultBuffer(e.getResult(), lhs, b);
        int64_t dim = e.getLhs().getType().getDimSize(1);
        bool quantize = feedsInt8Linear(e.getResult(), dim);
        SmallVector<Value> args = {lhs, mapped(e.getRhs()), y};
        SmallVector<Region> writes = {regionOf(e.getResult())};
        if (quantize) {
          args.append({scratchArg, idx(b, q8Offset)});
          writes.push_back(scratchRegion(q8Offset, q8Bytes));
        }
        callKernel(kernels.elementwise(kind, dim, quantize), args, b,
                   {regionOf(e.getLhs()), regionOf(e.getRhs())}, writes);
        finish(e.getResult(), y);
        if (quantize)
          lastQuantized = y;
        return success();
      })
      .Case<SiluOp, GeluOp>([&](auto e) -> LogicalResult {
        if (failed(requireRank2F32(e.getInput())))
          return failure();
        ElementwiseKind kind = ElementwiseKind::Silu;
        if constexpr (std::is_same_v<decltype(e), GeluOp>)
          kind = e.getApproximate() == GeluApprox::Tanh
                     ? ElementwiseKind::GeluTanh
                     : ElementwiseKind::GeluErf;
        Value x = mapped(e.getInput());
        Value y = resultBuffer(e.getResult(), x, b);
        int64_t dim = e.getInput().getType().getDimSize(1);
        callKernel(kernels.elementwise(kind, dim, /*quantize=*/false), {x, y}, b,
                   {regionOf(e.getInput())}, {regionOf(e.getResult())});
        finish(e.getResult(), y);
        return success();
      })
      .Case<SoftmaxOp>([&](SoftmaxOp s) -> LogicalResult {
        if (failed(requireRank2F32(s.getInput())))
          return failure();
        Value x = mapped(s.getInput());
        Value y = resultBuffer(s.getResult(), x, b);
        callKernel(kernels.softmax(s.getInput().getType().getDimSize(1)),
                   {x, y}, b, {regionOf(s.getInput())}, {regionOf(s.getResult())});
        finish(s.getResult(), y);
        return success();
      })
      .Case<tensor::DimOp>([&](tensor::DimOp d) {
        mapping.map(d.getResult(),
                    memref::DimOp::create(b, mapped(d.getSource()),
                                          mapped(d.getIndex())));
        return success();
      })
      .Case<tensor::ExtractSliceOp>([&](tensor::ExtractSliceOp s) -> LogicalResult {
        // Row ranges only: [offset, 0] [size, full] [1, 1].
        auto srcType = s.getSourceType();
        if (srcType.getRank() > 2 || !s.hasUnitStride())
          return s.emitOpError("the CPU lowering supports slices of whole "
                               "rows with unit strides only");
        for (int64_t i = 1; i < srcType.getRank(); ++i)
          if (!s.isSameAs(s, [](OpFoldResult, OpFoldResult) { return true; }) ||
              getConstantIntValue(s.getMixedOffsets()[i]) != 0 ||
              getConstantIntValue(s.getMixedSizes()[i]) !=
                  srcType.getDimSize(i))
            return s.emitOpError("the CPU lowering supports slices of whole "
                                 "rows only");
        SmallVector<OpFoldResult> offsets, sizes, strides;
        for (OpFoldResult ofr : s.getMixedOffsets())
          offsets.push_back(isa<Value>(ofr) ? OpFoldResult(mapped(cast<Value>(ofr))) : ofr);
        for (OpFoldResult ofr : s.getMixedSizes())
          sizes.push_back(isa<Value>(ofr) ? OpFoldResult(mapped(cast<Value>(ofr))) : ofr);
        strides.assign(srcType.getRank(), b.getIndexAttr(1));
        Value view = memref::SubViewOp::create(b, mapped(s.getSource()),
                                               offsets, sizes, strides);
        mapping.map(s.getResult(), view);
        return success();
      })
      .Case<tensor::ExpandShapeOp>([&](tensor::ExpandShapeOp e) {
        SmallVector<OpFoldResult> shape;
        for (OpFoldResult ofr : e.getMixedOutputShape())
          shape.push_back(isa<Value>(ofr) ? OpFoldResult(mapped(cast<Value>(ofr)))
                                          : ofr);
        mapping.map(e.getResult(),
                    memref::ExpandShapeOp::create(
                        b, e.getResultType().getShape(), mapped(e.getSrc()),
                        e.getReassociationIndices(), shape));
        return success();
      })
      .Case<tensor::CollapseShapeOp>([&](tensor::CollapseShapeOp c) {
        mapping.map(c.getResult(),
                    memref::CollapseShapeOp::create(
                        b, mapped(c.getSrc()), c.getReassociationIndices()));
        return success();
      })
      .Default([&](Operation *other) -> LogicalResult {
        // Scalar index arithmetic and constants carry over unchanged.
        bool scalar = llvm::all_of(other->getOperandTypes(), [](Type t) {
                        return t.isIntOrIndexOrFloat();
                      }) &&
                      llvm::all_of(other->getResultTypes(), [](Type t) {
                        return t.isIntOrIndexOrFloat();
                      }) &&
                      other->getNumRegions() == 0;
        if (!scalar)
          return other->emitOpError("is not supported by convert-kiln-to-cpu");
        b.clone(*other, mapping);
        return success();
      });
}

LogicalResult FunctionLowering::run() {
  MLIRContext *ctx = oldFunc.getContext();
  if (!oldFunc.getBody().hasOneBlock())
    return oldFunc.emitOpError("convert-kiln-to-cpu needs a single-block "
                               "function");
  // The token bound the plan was made for.
  if (auto attr = oldFunc->getAttrOfType<IntegerAttr>(
          KilnDialect::MaxTokensAttrHelper::getNameStr()))
    maxTokens = attr.getInt();

  // Signature: tensors become memrefs, the cache a byte buffer.
  auto bytesType = MemRefType::get({ShapedType::kDynamic}, IntegerType::get(ctx, 8));
  auto lowerType = [&](Type t) -> Type {
    if (auto tensor = dyn_cast<RankedTensorType>(t))
      return MemRefType::get(tensor.getShape(), tensor.getElementType());
    if (isa<KVCacheType>(t))
      return bytesType;
    return t;
  };
  FunctionType oldType = oldFunc.getFunctionType();
  SmallVector<int64_t> tied(oldType.getNumResults(), -1);
  // The dialect verified the attribute (KilnFunctionAttrs.cpp).
  if (auto attr = oldFunc->getAttrOfType<ArrayAttr>(
          KilnDialect::TiedResultsAttrHelper::getNameStr())) {
    for (auto [i, a] : llvm::enumerate(attr))
      tied[i] = cast<IntegerAttr>(a).getInt();
  }
  SmallVector<Type> inputs;
  for (Type t : oldType.getInputs()) {
    if (isa<UnrankedTensorType>(t))
      return oldFunc.emitOpError("unranked tensors are not supported");
    inputs.push_back(lowerType(t));
  }
  SmallVector<unsigned> outParam(oldType.getNumResults());
  for (auto [i, t] : llvm::enumerate(oldType.getResults())) {
    if (!isa<RankedTensorType>(t))
      return oldFunc.emitOpError("results must be ranked tensors");
    if (tied[i] >= 0) {
      outParam[i] = tied[i];
    } else {
      outParam[i] = inputs.size();
      inputs.push_back(lowerType(t));
    }
  }
  unsigned weightsIndex = inputs.size();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  inputs.append({bytesType, bytesType, ptr, IntegerType::get(ctx, 32),
                 IntegerType::get(ctx, 32)});

  OpBuilder mb(oldFunc);
  auto newFunc = func::FuncOp::create(mb, oldFunc.getLoc(), oldFunc.getName(),
                                      FunctionType::get(ctx, inputs, {}));
  newFunc.setVisibility(oldFunc.getVisibility());
  newFunc->setAttr("llvm.emit_c_interface", UnitAttr::get(ctx));
  Block *entry = newFunc.addEntryBlock();
  for (auto [i, arg] : llvm::enumerate(oldFunc.getArguments()))
    mapping.map(arg, entry->getArgument(i));
  weightsArg = entry->getArgument(weightsIndex);
  scratchArg = entry->getArgument(weightsIndex + 1);
  rtArg = entry->getArgument(weightsIndex + 2);

  ImplicitLocOpBuilder b(oldFunc.getLoc(), ctx);
  b.setInsertionPointToStart(entry);
  tid = arith::IndexCastOp::create(b, b.getIndexType(),
                                   entry->getArgument(weightsIndex + 3));
  nth = arith::IndexCastOp::create(b, b.getIndexType(),
                                   entry->getArgument(weightsIndex + 4));

  // Results produced by a kiln op are computed straight into their buffer.
  auto ret = cast<func::ReturnOp>(oldFunc.getBody().front().getTerminator());
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    Operation *def = v.getDefiningOp();
    if (def && isa<KilnDialect>(def->getDialect()) && !destinations.count(v))
      destinations[v] = entry->getArgument(outParam[i]);
  }
  if (failed(planScratch()))
    return failure();

  for (Operation &op : oldFunc.getBody().front().without_terminator()) {
    b.setLoc(op.getLoc());
    if (failed(emitOp(&op, b)))
      return failure();
  }
  // Results not computed in place are copied into their buffers.
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    Value dest = entry->getArgument(outParam[i]);
    Value src = mapping.lookup(v);
    if (src == dest)
      continue;
    auto type = cast<RankedTensorType>(v.getType());
    if (type.getRank() != 2 || !type.getElementType().isF32() ||
        type.getDimSize(1) % kLanes != 0)
      return ret.emitOpError("the CPU lowering can only copy [rows, 16k] f32 "
                             "results into their buffers");
    callKernel(kernels.elementwise(ElementwiseKind::Copy, type.getDimSize(1),
                                   /*quantize=*/false),
               {src, dest}, b, {regionOf(v)}, {Region{dest}});
  }
  // Every thread returns only when all results are complete.
  if (!pendingWrites.empty())
    barrier(b);
  func::ReturnOp::create(b);

  newFunc->setAttr(KilnDialect::ScratchBytesAttrHelper::getNameStr(),
                   b.getI64IntegerAttr(scratchBytes));
  if (weightFile)
    newFunc->setAttr(KilnDialect::WeightFileAttrHelper::getNameStr(),
                     b.getStringAttr(*weightFile));
  oldFunc.erase();
  return success();
}

namespace {
struct ConvertKilnToCPUPass
    : public mlir::kiln::impl::ConvertKilnToCPUBase<ConvertKilnToCPUPass> {
  using ConvertKilnToCPUBase::ConvertKilnToCPUBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    KernelLibrary kernels(module);
    SmallVector<func::FuncOp> funcs;
    for (auto f : module.getOps<func::FuncOp>())
      if (KilnDialect::isStepFunction(f))
        funcs.push_back(f);
    for (func::FuncOp f : funcs) {
      FunctionLowering lowering(f, kernels,
                                activations == ActivationPrecision::Int8,
                                stringify(cpu));
      if (failed(lowering.run()))
        return signalPassFailure();
    }
    // exp/tanh/erf as polynomials on vectors: no libm call per lane.
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(
        patterns, [](StringRef name) {
          return name.ends_with("exp") || name.ends_with("tanh") ||
                 name.ends_with("erf");
        });
    if (failed(applyPatternsGreedily(module, std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace
