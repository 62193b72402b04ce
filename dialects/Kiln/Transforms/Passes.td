//===- Passes.td - kiln-to-kiln passes ----------------------*- tablegen -*-===//

#ifndef KILN_TRANSFORMS_PASSES_TD
#define KILN_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def KilnPackWeights : Pass<"kiln-pack-weights", "::mlir::ModuleOp"> {
  let summary = "Rearrange linear-layer weights into the CPU kernels' layout";
  let description = [{
    Replaces every `kiln.weight` in a ggml block format that has a rows16
    form (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K) that `kiln.linear`
    ops multiply by with its `layout = rows16` copy (dialects/Kiln/IR/Rows16.h),
    packed now into a `dense_resource` blob (WeightStore.h): the int8 CPU
    kernels then read 16 rows as one sequential stream. Each weight is packed
    once: the linear layers over it, an embedding tied to it and other
    `kiln.weight` ops of the same bytes share the packed copy. `kiln-compile`
    and the C API run this pass for int8 activations.
  }];
  let dependentDialects = ["::mlir::kiln::KilnDialect"];
}

def KilnGatherWeights : Pass<"kiln-gather-weights", "::mlir::ModuleOp"> {
  let summary = "Write every weight into one file the lowered code reads";
  let description = [{
    Lays the bytes of every `kiln.weight` (file ranges and blobs) out in the
    file `file` (each distinct weight once, 64-byte aligned; packed weights
    first) and points the weights at it with `#kiln.external<file, ...>`,
    as `kiln-compile` does with an artifact's weights section (named
    `weights`): `kiln-opt --kiln-pack-weights --kiln-gather-weights
    --kiln-lower-to-llvm` replays kiln-compile's lowering.
  }];
  let options = [
    Option<"file", "file", "std::string", /*default=*/"\"weights\"",
           "The file to write (and the name the weights give it)">
  ];
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

def KilnQuantize : Pass<"kiln-quantize", "::mlir::ModuleOp"> {
  let summary = "Quantize float linear-layer weights by rounding to nearest";
  let description = [{
    Every `kiln.weight` of float values (f32, f16, bf16) that a `kiln.linear`
    multiplies by becomes a quantized weight of the same shape: `bits`-wide
    codes in groups of `group` values along K (0: one group per row), each
    group with a `scale-type` scale (and, unless `symmetric`, a zero of that
    type), rounded to nearest (RoundToNearest.h). `format=packed` writes
    Kiln's packed layout; `format=gguf` writes ggml's blocks (Q4_0, Q4_1,
    Q5_0, Q5_1, Q8_0), with ggml's rounding, so the weights can go back into
    a GGUF file. Norms, biases and embedding tables no linear layer reads
    stay float (a table tied to the output layer is quantized with it). The
    new bytes are dense_resource blobs of the weight store (WeightStore.h).
    Options that cannot be encoded, and a group that does not divide a
    weight's K, are one-line errors.
  }];
  let options = [
    Option<"bits", "bits", "unsigned", /*default=*/"4", "Code width, 2..8">,
    Option<"group", "group", "unsigned", /*default=*/"32",
           "Values per scale along K (0: one group per row)">,
    Option<"symmetric", "symmetric", "bool", /*default=*/"true",
           "No zero point (codes centred on 2^(bits-1))">,
    Option<"scaleType", "scale-type", "std::string", /*default=*/"\"f16\"",
           "Type of scales and zeros: f16, bf16 or f32">,
    Option<"format", "format", "std::string", /*default=*/"\"packed\"",
           "packed (Kiln's layout) or gguf (ggml's blocks)">
  ];
  let dependentDialects = ["::mlir::kiln::KilnDialect"];
}

def KilnShard : Pass<"kiln-shard", "::mlir::ModuleOp"> {
  let summary = "Split a decoder's step function over the ranks of a group";
  let description = [{
    Expresses distributed inference in the IR: the step function `forward`
    becomes one step function per rank of a model group, `forward_rank<r>`,
    each computing only its share and exchanging activations with
    `kiln.send` / `kiln.recv` / `kiln.all_reduce` (lowered to calls into the
    runtime's communicator, kiln/runtime/HostABI.h). All ranks' functions
    stay in one module, so one artifact holds every rank's code.
    - `pp`: pipeline stages. Rank s computes layers
      [s * L / pp, (s + 1) * L / pp): rank 0 also the embedding, the last
      rank the output norm and head. The hidden state entering a stage is
      sent by the previous rank; the last rank sends the logits to every
      other rank, so every rank returns the same logits and samples the
      same tokens. Each rank's function reads only its layers' weights and
      KV cache entries.
    - `tp`: tensor parallelism. Each rank computes the attention heads of
      its KV heads (whole GQA groups, split as evenly as they go) and its
      share of the MLP's hidden units: the Q/K/V and gate/up projections
      split by output rows (columns of the product), the output and down
      projections by K (rows of the product) followed by a
      `kiln.all_reduce`. Each rank's weights are new blobs holding its
      slices; its KV cache holds its KV heads only. Norms, the embedding and
      the output head are replicated.
    - `dp`: data-parallel replicas serve separate prompts; the step function
      of a replica is the whole model, so `dp` changes nothing here (the
      runtime's world is dp groups of tp * pp ranks).
  }];
  let options = [
    Option<"tp", "tp", "int64_t", /*default=*/"1",
           "Tensor-parallel ranks (1: none)">,
    Option<"pp", "pp", "int64_t", /*default=*/"1",
           "Pipeline stages, one per rank">,
    Option<"dp", "dp", "int64_t", /*default=*/"1",
           "Data-parallel replicas (no change to the step function)">
  ];
  let dependentDialects = ["::mlir::kiln::KilnDialect"];
}

#endif // KILN_TRANSFORMS_PASSES_TD
