//===- PlanMemory.cpp - scratch slots for a step's intermediate tensors ---===//
//
// Every tensor a step function computes and does not return lives in one
// scratch buffer; this pass gives each a slot (`kiln.slot`: an [offset,
// size] pair per result of the op)
// so that values live at the same time never overlap, and records the bytes
// the slots take (`kiln.planned_bytes`) and the token bound it planned for
// (`kiln.max_tokens`). Decided once, in the IR, for every target; a lowering
// reads the slots and adds only its kernels' private workspace.
//
//===----------------------------------------------------------------------===//

#include "Kiln/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/Support/MathExtras.h"

namespace mlir::kiln {
#define GEN_PASS_DEF_KILNPLANMEMORY
#include "Kiln/Transforms/Passes.h.inc"
} // namespace mlir::kiln

using namespace mlir;
using namespace mlir::kiln;

Value mlir::kiln::viewRoot(Value v) {
  while (isa_and_nonnull<tensor::ExtractSliceOp, tensor::ExpandShapeOp,
                         tensor::CollapseShapeOp>(v.getDefiningOp()))
    v = v.getDefiningOp()->getOperand(0);
  return v;
}

namespace {

/// Slots start at multiples of a cache line (and of a 512-bit vector).
constexpr int64_t kSlotAlignment = 64;

/// A scratch interval for one tensor value, live over ops [def, lastUse].
struct Slot {
  int64_t offset = 0, size = 0, def = 0, lastUse = 0;
};

std::optional<int64_t> slotBytes(RankedTensorType type, int64_t maxTokens) {
  int64_t elems = 1;
  for (int64_t d : type.getShape()) {
    int64_t dim = ShapedType::isDynamic(d) ? maxTokens : d;
    if (dim <= 0 || __builtin_mul_overflow(elems, dim, &elems))
      return std::nullopt;
  }
  int64_t bytes;
  if (__builtin_mul_overflow(
          elems, (type.getElementTypeBitWidth() + 7) / 8, &bytes))
    return std::nullopt;
  return llvm::alignTo(bytes, kSlotAlignment);
}

struct PlanMemory : mlir::kiln::impl::KilnPlanMemoryBase<PlanMemory> {
  using KilnPlanMemoryBase::KilnPlanMemoryBase;

  LogicalResult plan(func::FuncOp fn) {
    MLIRContext *ctx = fn.getContext();
    if (!fn.getBody().hasOneBlock())
      return fn.emitOpError("kiln-plan-memory needs a single-block function");
    auto maxTokensHelper = KilnDialect::MaxTokensAttrHelper(ctx);
    int64_t bound = maxTokens;
    if (!bound)
      if (IntegerAttr attr = maxTokensHelper.getAttr(fn))
        bound = attr.getInt();
    if (bound)
      maxTokensHelper.setAttr(fn, IntegerAttr::get(IntegerType::get(ctx, 64),
                                                   bound));

    Block &body = fn.getBody().front();
    llvm::DenseMap<Operation *, int64_t> order;
    for (auto [i, op] : llvm::enumerate(body))
      order[&op] = i;
    // Results of kiln ops that are returned are computed straight into
    // their out-parameters.
    llvm::DenseSet<Value> returned;
    for (Value v : body.getTerminator()->getOperands())
      if (Operation *def = v.getDefiningOp();
          def && isa<KilnDialect>(def->getDialect()))
        returned.insert(v);

    // Tensor results of kiln ops need a slot; views (slices, reshapes) and
    // empty tensors have no memory of their own.
    SmallVector<Value> values;
    llvm::DenseMap<Value, Slot> slots;
    for (Operation &op : body) {
      if (!isa<KilnDialect>(op.getDialect()))
        continue;
      for (Value r : op.getResults()) {
        auto type = dyn_cast<RankedTensorType>(r.getType());
        if (!type || returned.contains(r))
          continue;
        std::optional<int64_t> bytes = slotBytes(type, bound);
        if (!bytes)
          return op.emitOpError("result size overflows or has a dynamic "
                                "dimension with no kiln.max_tokens bound");
        Slot slot;
        slot.size = *bytes;
        slot.def = slot.lastUse = order[&op];
        slots[r] = slot;
        values.push_back(r);
      }
    }
    // Liveness; a use of a view is a use of the value it views.
    for (Operation &op : body)
      for (Value operand : op.getOperands())
        if (auto it = slots.find(viewRoot(operand)); it != slots.end())
          it->second.lastUse = std::max(it->second.lastUse, order[&op]);

    // First fit: the lowest offset that overlaps no slot live at the same
    // time. A slot stays reserved through the op after its last use, so that
    // op's result never overwrites what the previous kernel may still be
    // reading on another thread (which would cost a barrier).
    int64_t planned = 0;
    SmallVector<Slot *> placed;
    for (Value v : values) {
      Slot &slot = slots[v];
      SmallVector<std::pair<int64_t, int64_t>> busy;
      for (Slot *other : placed)
        if (!reuse ||
            (other->lastUse + 1 >= slot.def && other->def <= slot.lastUse + 1))
          busy.push_back({other->offset, other->offset + other->size});
      llvm::sort(busy);
      int64_t offset = 0;
      for (auto [begin, end] : busy) {
        if (offset + slot.size <= begin)
          break;
        offset = std::max(offset, end);
      }
      slot.offset = offset;
      planned = std::max(planned, offset + slot.size);
      placed.push_back(&slot);
    }
    // One [offset, size] pair per result; [-1, 0] for a result with no slot.
    auto slotHelper = KilnDialect::SlotAttrHelper(ctx);
    for (Operation &op : body) {
      SmallVector<int64_t> pairs;
      bool any = false;
      for (Value r : op.getResults()) {
        auto it = slots.find(r);
        any |= it != slots.end();
        pairs.append(it != slots.end()
                         ? SmallVector<int64_t>{it->second.offset,
                                                it->second.size}
                         : SmallVector<int64_t>{-1, 0});
      }
      if (any)
        slotHelper.setAttr(&op, DenseI64ArrayAttr::get(ctx, pairs));
    }
    KilnDialect::PlannedBytesAttrHelper(ctx).setAttr(
        fn, IntegerAttr::get(IntegerType::get(ctx, 64), planned));
    return success();
  }

  void runOnOperation() override {
    for (auto fn : getOperation().getOps<func::FuncOp>())
      if (KilnDialect::isStepFunction(fn) && failed(plan(fn)))
        return signalPassFailure();
  }
};

} // namespace
