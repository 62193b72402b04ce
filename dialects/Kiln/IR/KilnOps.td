//===- KilnOps.td - kiln operations -------------------------*- tablegen -*-===//

#ifndef KILN_OPS_TD
#define KILN_OPS_TD

include "Kiln/IR/KilnTypes.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"
include "mlir/IR/OpBase.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

def Kiln_FloatTensor : RankedTensorOf<[F32, F16, BF16]>;
// One index per token of a step: its position, or its sequence's KV slot.
def Kiln_TokenPositions : 1DTensorOf<[I32]>;
def Kiln_Weight : Type<CPred<"::llvm::isa<::mlir::kiln::WeightType>($_self)">,
                       "kiln weight", "::mlir::kiln::WeightType">;
def Kiln_KVCache : Type<CPred<"::llvm::isa<::mlir::kiln::KVCacheType>($_self)">,
                        "kiln kv cache", "::mlir::kiln::KVCacheType">;

//===----------------------------------------------------------------------===//
// Weights
//===----------------------------------------------------------------------===//

def Kiln_WeightOp : Kiln_Op<"weight", [Pure]> {
  let summary = "A constant weight whose bytes live outside the IR text";
  let description = [{
    ```mlir
    %w = kiln.weight #kiln.external<"model.gguf", offset = 1024, size = 2048>
           -> !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16>>
    %b = kiln.weight dense_resource<bias> : tensor<256xi8> -> !kiln.weight<64xf32>
    %s = kiln.weight dense<[1.0, 2.0]> : tensor<2xf32> -> !kiln.weight<2xf32>
    ```
    The source holds the weight's bytes in its storage encoding: an
    `#kiln.external` file range, a `dense_resource` blob of i8, or (for small
    tests) inline `dense` elements whose raw bytes are the storage.
  }];
  let arguments = (ins AnyAttr:$source);
  let results = (outs Kiln_Weight:$result);
  let assemblyFormat = "$source attr-dict `->` qualified(type($result))";
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// Size in bytes of the source, if it is known without reading a file.
    ::mlir::FailureOr<uint64_t> getSourceBytes();
  }];
}

//===----------------------------------------------------------------------===//
// Matrix ops
//===----------------------------------------------------------------------===//

def Kiln_LinearOp : Kiln_Op<"linear", [Pure, AttrSizedOperandSegments]> {
  let summary = "y = x W^T (+ bias) (+ residual), W dense, quantized or sparse";
  let description = [{
    `x` is `[..., K]`, `weight` is `[N, K]`, the result `[..., N]`. The weight
    is dequantized on the fly by the lowering, never materialized in float.
    `residual` (of the result's type) is added to the product: the residual
    connection of a transformer block, which `kiln-fuse` folds into the
    projection before it so that a kernel can add it in its epilogue.
    `rope(%p, #kiln.rope<...>)`: the result is then
    `kiln.rope(x W^T + bias, %p)` with the attribute's parameters, the RoPE
    of a query or key projection that `kiln-fuse` folds into it. A target
    whose linear kernel has no rope epilogue computes the product, then
    rotates it in place. A layer has a residual or a rope, not both (their
    order would be ambiguous).
    `activation_bits = b` (set by `kiln-fuse{activation-bits=b}`): the
    input is quantized per 32 values to b-bit signed codes with a scale and
    multiplied with integer dot products (8: ggml's q8_1); only weights whose
    codes have one scale per 32 values take it. Absent: float activations.
  }];
  let arguments = (ins Kiln_FloatTensor:$input, Kiln_Weight:$weight,
                       Optional<Kiln_Weight>:$bias,
                       Optional<Kiln_FloatTensor>:$residual,
                       Optional<Index>:$rope_position,
                       OptionalAttr<Kiln_RopeAttr>:$rope,
                       OptionalAttr<ConfinedAttr<I64Attr,
                           [IntMinValue<2>, IntMaxValue<8>]>>:$activation_bits);
  let results = (outs Kiln_FloatTensor:$result);
  // `kiln.linear %x, %w[, bias %b][ residual %r][ rope(%p, #kiln.rope<...>)]
  // : X, W[, B] -> Y`: the residual has the result's type, written once.
  let hasCustomAssemblyFormat = 1;
  let builders = [
    OpBuilder<(ins "::mlir::Type":$result, "::mlir::Value":$input,
                   "::mlir::Value":$weight, "::mlir::Value":$bias), [{
      build($_builder, $_state, result, input, weight, bias, ::mlir::Value(),
            ::mlir::Value(), nullptr, nullptr);
    }]>
  ];
  let hasVerifier = 1;
}

def Kiln_EmbeddingOp : Kiln_Op<"embedding", [Pure]> {
  let summary = "Rows of a (possibly quantized) table, dequantized and scaled";
  let description = [{
    Row `ids[t]` of `table`, dequantized, times `scale` (Gemma multiplies its
    embeddings by sqrt(dim); the table is also its output head, so the scale
    cannot be folded into the weights).
  }];
  let arguments = (ins Kiln_Weight:$table, RankedTensorOf<[I32]>:$ids,
                       DefaultValuedAttr<F32Attr, "1.0f">:$scale);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = [{
    $table `[` $ids `]` attr-dict `:` qualified(type($table)) `,` type($ids) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Kiln_PositionEmbeddingOp : Kiln_Op<"position_embedding", [Pure]> {
  let summary = "x[t] + table[position + step * t]: learned position rows";
  let description = [{
    Adds learned absolute position embeddings (BERT, GPT-2; `step` 1: token
    t sits at position `position + t`), or with `step` 0 one row to every
    token (BERT's token type 0). Rows past the table are clamped to its last
    one so no index reads outside it; importers cap the tokens per step at
    the table's rows.
  }];
  let arguments = (ins Kiln_FloatTensor:$input, Kiln_Weight:$table,
                       Index:$position, DefaultValuedAttr<I64Attr, "1">:$step);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $table `[` $position `]` attr-dict `:` type($input) `,` qualified(type($table)) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Norms
//===----------------------------------------------------------------------===//

def Kiln_RMSNormOp : Kiln_Op<"rms_norm", [Pure]> {
  let summary = "x / sqrt(mean(x^2) + epsilon) * weight over the last dim";
  let arguments = (ins Kiln_FloatTensor:$input, Kiln_Weight:$weight,
                       F32Attr:$epsilon);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `,` qualified(type($weight)) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Kiln_LayerNormOp : Kiln_Op<"layer_norm", [Pure]> {
  let summary = "(x - mean) / sqrt(var + epsilon) * weight (+ bias)";
  let arguments = (ins Kiln_FloatTensor:$input, Kiln_Weight:$weight,
                       Optional<Kiln_Weight>:$bias, F32Attr:$epsilon);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`,` `bias` $bias^)? attr-dict `:` type($input) `,`
    qualified(type($weight)) (`,` qualified(type($bias))^)? `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Position and attention
//===----------------------------------------------------------------------===//

def Kiln_RopeOp : Kiln_Op<"rope", [Pure, AttrSizedOperandSegments]> {
  let summary = "Rotary position embedding of each head";
  let description = [{
    `input` is `[T, num_heads * head_dim]`; token t sits at position
    `position + t`, or at `positions[t]` in a step over several sequences
    (exactly one of the two is given). The first `rotary_dim` dims of each
    head are rotated by angle p * freq_scale * freq_factors[i] *
    freq_base^(-2i / rotary_dim) for token position p, pairing dims as
    `style` says, and the rotated pairs are scaled by `magnitude`.
    `freq_factors` (rotary_dim / 2 values, 1 when absent) and `magnitude`
    carry the long-context scalings: Llama 3's per-frequency factors (GGUF's
    `rope_freqs`, as divisors) and YaRN's ramp between interpolated and
    extrapolated frequencies with its attention factor (ggml's rope_yarn).
  }];
  let arguments = (ins Kiln_FloatTensor:$input, Optional<Index>:$position,
                       Optional<Kiln_TokenPositions>:$positions,
                       I64Attr:$num_heads, I64Attr:$head_dim,
                       I64Attr:$rotary_dim, Kiln_RopeStyleAttr:$style,
                       F32Attr:$freq_base,
                       DefaultValuedAttr<F32Attr, "1.0f">:$freq_scale,
                       OptionalAttr<DenseF32ArrayAttr>:$freq_factors,
                       DefaultValuedAttr<F32Attr, "1.0f">:$magnitude);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` ($position^)? (`positions` $positions^ `:` type($positions))?
    attr-dict `:` type($input) `->` type($result)
  }];
  let extraClassDeclaration = [{
    /// Its rotation, as a kiln.linear's rope epilogue carries it.
    ::mlir::kiln::RopeAttr getParameters();
    /// What gives its tokens' positions: `position` or `positions`.
    ::mlir::Value getPositionSource() {
      return getPosition() ? ::mlir::Value(getPosition())
                           : ::mlir::Value(getPositions());
    }
  }];
  let hasVerifier = 1;
}

def Kiln_MeanPoolOp : Kiln_Op<"mean_pool", [Pure]> {
  let summary = "Mean of the rows, optionally scaled to unit L2 norm";
  let description = [{
    A sentence embedding from an encoder's `[T, D]` output: the mean of the
    T rows (sentence-transformers' mean pooling of an unpadded sequence),
    with `normalize` divided by max(||mean||, 1e-12) as
    torch.nn.functional.normalize does. The result is one row, `[1, D]`
    (or `[?, D]` for a step function's out-parameter of one row).
  }];
  let arguments = (ins Kiln_FloatTensor:$input,
                       DefaultValuedAttr<BoolAttr, "false">:$normalize);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = [{
    $input attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Kiln_AttentionOp : Kiln_Op<"attention", [AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "Multi-head attention over a KV cache";
  let description = [{
    `query` is `[T, num_heads * head_dim]`, `key` and `value` are
    `[T, kv_heads * head_dim]` for the T new tokens at positions
    `position .. position + T - 1`. The op writes them into layer `layer` of
    `cache`, then attends over cache positions `[0, position + t]` (causal) or
    `[0, position + T)`, limited to the last `sliding_window` positions when
    that is non-zero. Logits are scaled by `scale` and, when `softcap` > 0,
    capped as softcap * tanh(logit / softcap). Query heads share KV heads in
    groups of num_heads / kv_heads (GQA; MQA when kv_heads = 1).

    A step over several sequences gives `slots` and `positions` instead of
    `position`: the cache then holds one such cache per sequence, slot-major,
    and token t (causal only) is sequence `slots[t]`'s token at position
    `positions[t]`: it is written there and attends over that sequence's
    positions `[0, positions[t]]`. Tokens of one sequence come in position
    order; a slot past the cache buffer's end is skipped.
  }];
  let arguments = (ins Kiln_FloatTensor:$query, Kiln_FloatTensor:$key,
                       Kiln_FloatTensor:$value, Kiln_KVCache:$cache,
                       Optional<Index>:$position,
                       Optional<Kiln_TokenPositions>:$slots,
                       Optional<Kiln_TokenPositions>:$positions,
                       I64Attr:$layer, I64Attr:$num_heads,
                       F32Attr:$scale,
                       DefaultValuedAttr<BoolAttr, "true">:$causal,
                       DefaultValuedAttr<I64Attr, "0">:$sliding_window,
                       DefaultValuedAttr<F32Attr, "0.0f">:$softcap);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = [{
    $query `,` $key `,` $value `,` $cache `[` ($position^)?
    (`slots` $slots^ `,` `positions` $positions `:` type($slots) `,`
     type($positions))? `]` attr-dict `:`
    type($query) `,` type($key) `,` type($value) `,` qualified(type($cache)) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Communication between the ranks of a distributed model (kiln-shard)
//===----------------------------------------------------------------------===//

// Kiln's own ops rather than upstream `shard`'s: kiln-shard gives each rank a
// step function of its own (its layer range, its slices of quantized
// weights), so the collectives name ranks of that function's group, and they
// take part in kiln-plan-memory and the step lowerings like every kiln op.
// None is Pure: each is a communication every rank must reach in order.

def Kiln_AllReduceOp : Kiln_Op<"all_reduce", [SameOperandsAndResultType]> {
  let summary = "Sum of a tensor over the tensor-parallel ranks of a stage";
  let description = [{
    Each rank holds a partial sum (a row-split linear layer's product over
    its slice of K); every rank gets the total. The ranks are those of the
    model's group in this rank's pipeline stage (the whole group without
    pipeline parallelism).
  }];
  let arguments = (ins Kiln_FloatTensor:$input);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
}

def Kiln_SendOp : Kiln_Op<"send"> {
  let summary = "Send a tensor to rank `peer` of the model's group";
  let description = [{
    The hidden state at a pipeline stage's end, or the logits its last
    stage computed. The peer's matching `kiln.recv` names this rank.
  }];
  let arguments = (ins Kiln_FloatTensor:$input, I64Attr:$peer);
  let assemblyFormat = "$input `to` $peer attr-dict `:` type($input)";
  let hasVerifier = 1;
}

def Kiln_RecvOp : Kiln_Op<"recv"> {
  let summary = "Receive a tensor from rank `peer` of the model's group";
  let description = [{
    The result's dynamic leading dimension is that of `rows` (the step's
    tokens, or the logits buffer): both ranks step over the same tokens.
  }];
  let arguments = (ins AnyRankedTensor:$rows, I64Attr:$peer);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = [{
    `from` $peer `rows` `(` $rows `)` attr-dict `:` type($rows) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Activations and elementwise ops
//===----------------------------------------------------------------------===//

class Kiln_UnaryOp<string mnemonic, list<Trait> traits = []>
    : Kiln_Op<mnemonic, !listconcat(traits, [Pure, SameOperandsAndResultType])> {
  let arguments = (ins Kiln_FloatTensor:$input);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
}

class Kiln_BinaryOp<string mnemonic, list<Trait> traits = []>
    : Kiln_Op<mnemonic, !listconcat(traits, [Pure, SameOperandsAndResultType])> {
  let arguments = (ins Kiln_FloatTensor:$lhs, Kiln_FloatTensor:$rhs);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

def Kiln_SiluOp : Kiln_UnaryOp<"silu"> {
  let summary = "x * sigmoid(x)";
}

def Kiln_ReluOp : Kiln_UnaryOp<"relu"> {
  let summary = "max(x, 0), the hidden activation of small dense classifiers";
}

def Kiln_GeluOp : Kiln_Op<"gelu", [Pure, SameOperandsAndResultType]> {
  let summary = "Gaussian error linear unit (erf or tanh form)";
  let arguments = (ins Kiln_FloatTensor:$input,
                       DefaultValuedAttr<Kiln_GeluApproxAttr,
                                         "::mlir::kiln::GeluApprox::Tanh">:$approximate);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
}

def Kiln_SoftmaxOp : Kiln_UnaryOp<"softmax"> {
  let summary = "Softmax over the last dimension";
}

def Kiln_SwiGLUOp : Kiln_BinaryOp<"swiglu"> {
  let summary = "silu(gate) * up";
}

def Kiln_GeGLUOp : Kiln_Op<"geglu", [Pure, SameOperandsAndResultType]> {
  let summary = "gelu(gate) * up";
  let arguments = (ins Kiln_FloatTensor:$lhs, Kiln_FloatTensor:$rhs,
                       DefaultValuedAttr<Kiln_GeluApproxAttr,
                                         "::mlir::kiln::GeluApprox::Tanh">:$approximate);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

def Kiln_AddOp : Kiln_BinaryOp<"add", [Commutative]> {
  let summary = "Elementwise sum";
}

def Kiln_MulOp : Kiln_BinaryOp<"mul", [Commutative]> {
  let summary = "Elementwise product";
}

//===----------------------------------------------------------------------===//
// Activation quantization
//===----------------------------------------------------------------------===//

def Kiln_QuantizeOp : Kiln_Op<"quantize", [Pure]> {
  let summary = "Quantize activations per group along the last dim";
  let description = [{
    Splits the last dimension into groups of `group` values; each group gets
    an f32 scale (and, when not symmetric, an f32 zero) and `bits`-wide codes
    stored one per i8 (signed for symmetric, unsigned otherwise).
    `scales` has shape `[..., K / group]`, or `[..., K / group, 2]` holding
    (scale, zero) pairs when asymmetric.
  }];
  let arguments = (ins Kiln_FloatTensor:$input, I64Attr:$bits, I64Attr:$group,
                       DefaultValuedAttr<BoolAttr, "true">:$symmetric);
  let results = (outs RankedTensorOf<[I8]>:$codes, RankedTensorOf<[F32]>:$scales);
  let assemblyFormat = [{
    $input attr-dict `:` type($input) `->` type($codes) `,` type($scales)
  }];
  let hasVerifier = 1;
}

def Kiln_DequantizeOp : Kiln_Op<"dequantize", [Pure]> {
  let summary = "Inverse of kiln.quantize";
  let arguments = (ins RankedTensorOf<[I8]>:$codes, RankedTensorOf<[F32]>:$scales,
                       I64Attr:$bits, I64Attr:$group,
                       DefaultValuedAttr<BoolAttr, "true">:$symmetric);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = [{
    $codes `,` $scales attr-dict `:` type($codes) `,` type($scales) `->` type($result)
  }];
  let hasVerifier = 1;
}

#endif // KILN_OPS_TD
