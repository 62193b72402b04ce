//===- Passes.td - kiln-to-kiln passes ----------------------*- tablegen -*-===//

#ifndef KILN_TRANSFORMS_PASSES_TD
#define KILN_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def KilnPackWeights : Pass<"kiln-pack-weights", "::mlir::ModuleOp"> {
  let summary = "Rearrange linear-layer weights into a target's kernel layout";
  let description = [{
    Asks `target`'s weight packer (WeightPacking.h, registered by the target)
    which layout its kernels read each quantized weight a `kiln.linear`
    multiplies by in, and replaces the weight with a copy in that layout
    (`#kiln.quant<..., target_layout = ...>`), packed now into a
    `dense_resource` blob (WeightStore.h). The CPU target interleaves the
    ggml formats its int8 kernels multiply 16 rows at a time
    (lib/Conversion/KilnToCPU/IR); the CUDA target splits Q4_0, Q4_1 and
    Q8_0 codes from their scales for its GEMV (lib/Conversion/KilnToGPU/IR).
    Each weight is packed once: the linear
    layers over it, an embedding tied to it and other `kiln.weight` ops of
    the same bytes share the packed copy. `kiln-compile`, the C API and
    Python run this pass with target=cpu for int8 activations and with
    target=cuda for every CUDA artifact. A target with no packer registered
    in the tool is an error.

    With target=cpu, a Q4_0 or Q8_0 weight pruned 2:4 and still stored dense (`#kiln.sparsity<
    kind = n_m, n = 2, m = 4, dense = true>`, what kiln-prune leaves), with K a
    multiple of 64 and rows a multiple of 16, is stored compressed instead
    (its kept codes and their 2-bit positions, scales per block as before: WeightLayout.h) for the
    sparse CPU kernels; the pass fails on a run with more than 2 non-zeros.
    A Q4_0 or Q8_0 weight pruned unstructured (`#kiln.sparsity<kind =
    bitmap, nnz = N, dense = true>`), rows a multiple of 16, is stored bitmap
    compressed (keep bits and the kept codes: WeightLayout.h,
    bitmapWeightBytes) as `unstructured` says: `auto` where the bitmap kernel
    measured faster than the dense one at the weight's format and kept share
    (bitmapBeatsDense; on every CPU measured so far it was not, so `auto` keeps
    them dense), `bitmap` always, `dense` never. A pruned weight left dense is
    packed as an unpruned one (rows16): the dense fallback.
    Other pruned weights stay dense: no kernel reads them compressed.
  }];
  let options = [
    Option<"target", "target", "::mlir::kiln::LoweringTarget",
           /*default=*/"::mlir::kiln::LoweringTarget::CPU",
           "The target whose kernels read the weights",
           [{::llvm::cl::values(
             clEnumValN(::mlir::kiln::LoweringTarget::CPU, "cpu",
                        "the CPU kernels (convert-kiln-to-cpu)"),
             clEnumValN(::mlir::kiln::LoweringTarget::CUDA, "cuda",
                        "the CUDA kernels (convert-kiln-to-gpu)"))}]>,
    Option<"unstructured", "unstructured",
           "::mlir::kiln::UnstructuredStorage",
           /*default=*/"::mlir::kiln::UnstructuredStorage::Auto",
           "How target=cpu stores Q4_0/Q8_0 weights pruned unstructured",
           [{::llvm::cl::values(
             clEnumValN(::mlir::kiln::UnstructuredStorage::Auto, "auto",
                        "bitmap where it measured faster, else dense"),
             clEnumValN(::mlir::kiln::UnstructuredStorage::Bitmap, "bitmap",
                        "bitmap compressed"),
             clEnumValN(::mlir::kiln::UnstructuredStorage::Dense, "dense",
                        "dense (rows16)"))}]>
  ];
  let dependentDialects = ["::mlir::kiln::KilnDialect"];
}

def KilnGatherWeights : Pass<"kiln-gather-weights", "::mlir::ModuleOp"> {
  let summary = "Write every weight into one file the lowered code reads";
  let description = [{
    Lays the bytes of every `kiln.weight` (file ranges and blobs) out in the
    file `file` (each distinct weight once, 64-byte aligned; packed weights
    first) and points the weights at it with `#kiln.external<file, ...>`,
    as `kiln-compile` does with an artifact's weights section (named
    `weights`): `kiln-opt --kiln-pack-weights=target=cpu
    --kiln-gather-weights --kiln-lower-to-llvm` replays kiln-compile's
    lowering.
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
    - with `activation-bits` = b > 0, every `kiln.linear` whose weight has
      one scale per 32 values along K takes quantized activations
      (`activation_bits = b`), and the norm or binary elementwise op whose
      result such a layer reads gets `kiln.quantize_output = b`: it writes
      the quantized copy as it computes its result, so the layers that read
      it (Q, K and V after a pre-attention norm; gate and up after the MLP
      norm; down after the SwiGLU) do not each quantize it again.
      `activation-bits=0` keeps every layer's activations in float. (The
      CUDA lowering takes quantized activations in its decode GEMVs only:
      its one-token norm and binary elementwise kernels honour
      `kiln.quantize_output` where the row is a multiple of 128 values, and
      a linear layer quantizes any other input itself.)
  }];
  let options = [
    Option<"ropeEpilogue", "rope-epilogue", "bool", /*default=*/"true",
           "Fold a rope into the projection whose result it rotates">,
    Option<"activationBits", "activation-bits", "int64_t", /*default=*/"8",
           "Width of the quantized activations of linear layers over "
           "integer-coded weights (2-8; 0: float)">
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
    their kernels' private workspace after `kiln.planned_bytes`. With
    `reuse=false` no two slots overlap, so every intermediate tensor is still
    in scratch after the step (calibration reads the linear layers' inputs
    there: kiln-compile --calibration-taps).
  }];
  let options = [
    Option<"maxTokens", "max-tokens", "int64_t", /*default=*/"0",
           "Bound of dynamic token dimensions (0: the function's "
           "kiln.max_tokens attribute)">,
    Option<"reuse", "reuse", "bool", /*default=*/"true",
           "Let tensors whose live ranges do not meet share memory">
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
    weight's K, are one-line errors. `method=gptq` (error feedback through
    the calibration Hessian, GPTQ.h) and `method=awq` (activation-aware
    column scales, AWQ.h) read calibration statistics (`stats`, a .kstats
    file from `kiln-run --collect-stats`); `budget` > 0 chooses each
    weight's width and group by its measured output error on the
    calibration inputs under a bits-per-weight budget (QuantizeOptions.h).
    kiln-compile's --quantize takes the same choices.
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
           "packed (Kiln's layout) or gguf (ggml's blocks)">,
    Option<"method", "method", "std::string", /*default=*/"\"rtn\"",
           "How codes are chosen: rtn, gptq or awq">,
    Option<"stats", "stats", "std::string", /*default=*/"\"\"",
           "Calibration statistics file (.kstats) for gptq, awq and budget">,
    Option<"damping", "damping", "double", /*default=*/"0.01",
           "GPTQ's damping: share of the Hessian's mean diagonal, (0, 1)">,
    Option<"budget", "budget", "double", /*default=*/"0",
           "Mixed precision: mean bits per weight (0: every weight at bits)">,
    Option<"search", "search", "bool", /*default=*/"false",
           "Search each packed group's scale (and zero) for the least "
           "squared error (weighted by the input's mean squares with stats)">
  ];
  let dependentDialects = ["::mlir::kiln::KilnDialect"];
}

def KilnPrune : Pass<"kiln-prune", "::mlir::ModuleOp"> {
  let summary = "Zero the least important float weights of linear layers";
  let description = [{
    Every `kiln.weight` of float values (f32, f16, bf16) that only
    `kiln.linear` ops multiply by (not an embedding table tied to the
    output layer) keeps its shape and storage type, with the weights the
    pattern drops written as zeros, and its type marked
    `sparsity = #kiln.sparsity<..., dense = true>`:
    - `pattern=unstructured`: each row zeroes round(`rate` x K) values
      (`kind = bitmap`, `nnz` the kept values);
    - `pattern=nm`: every run of `m` values along K keeps `n` (`kind = n_m`);
    - `pattern=block`: round(`rate` x blocks) whole `block` tiles (rows x
      columns) of the weight are zeroed (`kind = block`, `nnz` the kept
      blocks).
    `criterion` chooses the weights (PruneOptions.h): `magnitude` the
    smallest |w|; `wanda` and `sparsegpt` read the layer's input statistics
    from the `calibration` file (.kstats, lib/Calibration), and `sparsegpt`
    also updates the kept weights to make up for the pruned ones
    (SparseGPT.h). Quantize afterwards
    (kiln-quantize keeps the zeros and the mark). Options that cannot be
    applied, and a pattern that does not tile a weight, are one-line errors.
  }];
  let options = [
    Option<"pattern", "pattern", "std::string", /*default=*/"\"unstructured\"",
           "unstructured, nm or block">,
    Option<"rate", "rate", "double", /*default=*/"0.5",
           "Share of values (unstructured) or blocks (block) zeroed, [0, 1)">,
    Option<"n", "n", "unsigned", /*default=*/"2", "Values kept per run of m (nm)">,
    Option<"m", "m", "unsigned", /*default=*/"4", "Run length along K (nm)">,
    Option<"block", "block", "std::string", /*default=*/"\"4x4\"",
           "Block rows x columns (block)">,
    Option<"criterion", "criterion", "std::string", /*default=*/"\"magnitude\"",
           "How weights are chosen: magnitude, wanda or sparsegpt">,
    Option<"calibration", "calibration", "std::string", /*default=*/"\"\"",
           "Calibration statistics file (.kstats) for wanda and sparsegpt">
  ];
  let dependentDialects = ["::mlir::kiln::KilnDialect"];
}

def KilnDistill : Pass<"kiln-distill", "::mlir::ModuleOp"> {
  let summary = "Refit the kept weights of pruned linear layers to the teacher "
                "(layer by layer, or end to end on soft logits)";
  let description = [{
    Layer-wise distillation by least squares. Every pruned float weight
    (`sparsity = #kiln.sparsity<..., dense = true>`, what kiln-prune leaves)
    of a `kiln.linear` keeps its mask; each row's kept weights become the
    least-squares fit of the teacher's output on the calibration inputs,
    w_S = (H_SS + lambda I)^-1 (H w_t)_S, where w_t is the row of the
    weight of the same name in `teacher` (the uncompressed module),
    H = E[x x^T] the layer's input statistics in `calibration` (.kstats,
    lib/Calibration) and lambda 1% of H's mean diagonal. Distil before
    kiln-quantize (quantized weights keep their codes). Statistics of the
    pruned student's own inputs (`kiln-run --collect-stats` on the student)
    make H the student's: each layer matches the teacher's layer on the
    inputs the student feeds it. Cross moments against the teacher's inputs
    (`--teacher`) are not used: fitting the teacher's output with them, every
    layer at once, makes up for upstream errors that the upstream refits
    then remove (issue 14).
    A missing teacher weight or statistics are one-line errors.

    End to end (`inputs=FILE.npy`, the forward function's calibration
    inputs, [N, K] f32 or f64): every float weight and bias of the student
    (pruned ones keep their zeros) is fitted to the teacher's logits softened
    by `temperature` T, minimizing T^2 * mean KL(softmax(z_t/T) ||
    softmax(z_s/T)) by `steps` of full-batch Adam (`learning-rate`); z is
    the function's last result, and a remark gives the loss before and
    after. It interprets the function on the inputs, so it is for small
    models (the seed's classifier): a chain of kiln.linear and kiln.relu;
    another op is a one-line error. With `calibration` too, the layer-wise
    fit runs first and the end-to-end fit starts from it.
  }];
  let options = [
    Option<"teacher", "teacher", "std::string", /*default=*/"\"\"",
           "The uncompressed module (.mlir) whose weights are the targets">,
    Option<"calibration", "calibration", "std::string", /*default=*/"\"\"",
           "Calibration statistics file (.kstats) of the layers' inputs">,
    Option<"inputs", "inputs", "std::string", /*default=*/"\"\"",
           "Calibration inputs (.npy, [N, K]): distil end to end on the "
           "teacher's soft logits">,
    Option<"temperature", "temperature", "double", /*default=*/"2.0",
           "Softmax temperature of the soft logits (end to end)">,
    Option<"steps", "steps", "unsigned", /*default=*/"300",
           "Full-batch Adam steps (end to end)">,
    Option<"learningRate", "learning-rate", "double", /*default=*/"3e-3",
           "Adam's step size (end to end)">
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
    - `tp` and `pp` together: each TP rank's function is cut into stages;
      group rank `stage * tp + t` runs TP rank t's share of that stage, its
      all-reduces sum over the stage's tp ranks and its sends and receives
      pair it with TP rank t of the neighbouring stages.
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
