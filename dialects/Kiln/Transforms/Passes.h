//===- Passes.h - kiln-to-kiln passes ---------------------------*- C++ -*-===//

#ifndef KILN_TRANSFORMS_PASSES_H
#define KILN_TRANSFORMS_PASSES_H

#include "Kiln/IR/KilnDialect.h"
#include "Kiln/Transforms/WeightPacking.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

#include <optional>
#include <string>
#include <vector>

namespace kiln {
struct QuantizeOptions;
struct PruneOptions;
enum class ScalarType; // RoundToNearest.h
} // namespace kiln

namespace mlir::kiln {

/// The value whose memory `v` views: through tensor.extract_slice,
/// expand_shape and collapse_shape (views have no buffer of their own);
/// `v` itself when it is not a view.
Value viewRoot(Value v);

/// What kiln-quantize does, for drivers that hold the options as a struct
/// (kiln-compile --quantize): quantizes the float weights of the linear
/// layers of `module`; errors (one line) are emitted on the module or the
/// weight.
LogicalResult quantizeWeights(ModuleOp module,
                              const ::kiln::QuantizeOptions &options);

/// What kiln-prune does, for drivers that hold the options as a struct
/// (kiln-compile --prune): zeroes weights of the linear layers of `module`
/// and marks their types `sparsity = #kiln.sparsity<..., dense = true>`;
/// errors (one line) are emitted on the module or the weight.
LogicalResult pruneWeights(ModuleOp module,
                           const ::kiln::PruneOptions &options);

/// What kiln-distill does, for drivers that hold the teacher as a module
/// (kiln-compile --distill, the teacher the model before pruning): refits
/// the kept weights of every pruned float weight of `module` to the weight
/// of the same name in `teacher` under the statistics file `calibration`
/// (cross moments, when it holds them, are not used); errors (one line) are
/// emitted on the module or the weight.
LogicalResult distillWeights(ModuleOp module, ModuleOp teacher,
                             StringRef calibration);

/// kiln-distill's end-to-end mode (inputs=FILE.npy).
struct LogitDistillationOptions {
  /// The forward function's calibration inputs, [N, K] f32 or f64 (.npy).
  std::string inputs;
  double temperature = 2.0;
  unsigned steps = 300;
  double learningRate = 3e-3;
};

/// Fits the float weights and biases of `module` (a chain of kiln.linear and
/// kiln.relu; pruned weights keep their zeros) to `teacher`'s logits
/// softened by the temperature, by full-batch Adam on the inputs; remarks
/// the loss before and after. Errors (one line) are emitted on the module
/// or the op.
LogicalResult distillLogits(ModuleOp module, ModuleOp teacher,
                            const LogitDistillationOptions &options);

/// The storage type of the values of a float weight stored dense (a pruned
/// one included; not a quantized one), if it has one.
std::optional<::kiln::ScalarType> getFloatStorage(WeightType type);

/// The values of a float weight stored dense (getFloatStorage), decoded.
FailureOr<std::vector<float>> readFloatWeight(WeightOp weight);

/// Replaces a float weight stored dense by one of the same type, name and
/// location holding `values` (encoded in its storage type).
void replaceFloatWeight(WeightOp weight, ArrayRef<float> values);

/// Whether kiln-pack-weights{target} would repack a weight of `module` (its
/// code then cannot read the weight file as it is). Reads no weight bytes.
bool kilnPackWeightsRepacks(
    ModuleOp module, LoweringTarget target,
    UnstructuredStorage unstructured = UnstructuredStorage::Auto);

#define GEN_PASS_DECL
#include "Kiln/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "Kiln/Transforms/Passes.h.inc"

} // namespace mlir::kiln

#endif // KILN_TRANSFORMS_PASSES_H
