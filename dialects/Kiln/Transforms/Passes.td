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
    - with `rope-epilogue`, a llama-style `kiln.rope` over all of each head
      (`rotary_dim = head_dim`) that is the only use of a `kiln.linear`
      without a residual becomes the layer's `rope(%position, #kiln.rope<...>)`:
      the query and key projections rotate their output as they write it.
      `kiln-lower-to-llvm` asks for it with int8 activations, whose CPU
      kernels have the epilogue; its f32 kernels have none, and a rope
      folded there would only be applied in place after the product.
  }];
  let options = [
    Option<"ropeEpilogue", "rope-epilogue", "bool", /*default=*/"true",
           "Fold a rope into the projection whose result it rotates">
  ];
  let dependentDialects = ["::mlir::kiln::KilnDialect"];
}

def KilnPlanMemory : Pass<"kiln-plan-memory", "::mlir::ModuleOp"> {
  let summary = "Give each intermediate tensor of a step function a scratch slot";
  let description = [{
    For every function that uses kiln ops: each tensor result of a kiln op
    that is not returned gets `kiln.slot = array<i64: offset, size>` in one
    scratch buffer, first fit over live ranges (a use of a slice or reshape
    is a use of its source; a slot stays reserved one op past its last use,
    so a kernel never overwrites what the previous one may still read on
    another thread). The function gets `kiln.planned_bytes` and the token
    bound dynamic dimensions were planned for, `kiln.max_tokens` (the option,
    else the function's own attribute). Lowerings read the slots and append
    their kernels' private workspace after `kiln.planned_bytes`.
  }];
  let options = [
    Option<"maxTokens", "max-tokens", "int64_t", /*default=*/"0",
           "Bound of dynamic token dimensions (0: the function's "
           "kiln.max_tokens attribute)">
  ];
  let dependentDialects = ["::mlir::kiln::KilnDialect"];
}

#endif // KILN_TRANSFORMS_PASSES_TD
