//===- Passes.td - kiln-to-kiln passes ----------------------*- tablegen -*-===//

#ifndef KILN_TRANSFORMS_PASSES_TD
#define KILN_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def KilnPackWeights : Pass<"kiln-pack-weights", "::mlir::ModuleOp"> {
  let summary = "Rearrange linear-layer weights into the CPU kernels' layout";
  let description = [{
    Puts a `kiln.pack` to `layout = rows16` (dialects/Kiln/IR/Rows16.h)
    between every `kiln.weight` in a ggml block format that has a rows16 form
    (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K) and the `kiln.linear` ops
    that multiply by it: the int8 CPU kernels then read 16 rows as one
    sequential stream. An embedding over the same weight (tied to the
    output layer) reads the packed form too, so the weight is stored once.
    `kiln-compile` runs this pass for int8 activations and performs the packs
    as it writes the weights.
  }];
  let dependentDialects = ["::mlir::kiln::KilnDialect"];
}

def KilnFuse : Pass<"kiln-fuse", "::mlir::ModuleOp"> {
  let summary = "Fuse neighbouring ops into the forms kernels compute in one pass";
  let description = [{
    Target-independent fusion decisions, made in the IR so that every
    lowering reads the same ones (and `kiln-opt` shows them):
    - a `kiln.add` of a `kiln.linear` result (its only use) and a value
      computed before that layer becomes the layer's `residual` operand: the
      residual connection after an attention output or MLP down projection,
      added in the projection kernel's epilogue instead of a kernel and a
      pass over memory of its own.
  }];
  let dependentDialects = ["::mlir::kiln::KilnDialect"];
}

#endif // KILN_TRANSFORMS_PASSES_TD
