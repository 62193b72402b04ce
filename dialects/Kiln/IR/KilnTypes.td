//===- KilnTypes.td - kiln types ----------------------------*- tablegen -*-===//

#ifndef KILN_TYPES_TD
#define KILN_TYPES_TD

include "Kiln/IR/KilnAttrs.td"
include "mlir/IR/AttrTypeBase.td"

class Kiln_Type<string name, string typeMnemonic, list<Trait> traits = []>
    : TypeDef<Kiln_Dialect, name, traits> {
  let mnemonic = typeMnemonic;
}

def Kiln_WeightType : Kiln_Type<"Weight", "weight"> {
  let summary = "A constant weight tensor, possibly quantized or sparse";
  let description = [{
    `!kiln.weight<1536x576xf16>` is a dense half-precision matrix of 1536 rows
    (N, outputs) by 576 columns (K, the reduction dimension).
    `!kiln.weight<1536x576, #kiln.quant<...>>` is quantized along K;
    `sparsity = #kiln.sparsity<...>` marks a pruned weight. The element type
    of a dense weight is a float type (f32, f16, bf16, f8E4M3FN, f8E5M2).
  }];
  let parameters = (ins
    ArrayRefParameter<"int64_t">:$shape,
    OptionalParameter<"::mlir::Type">:$elementType,
    OptionalParameter<"::mlir::kiln::QuantSchemeAttr">:$quant,
    OptionalParameter<"::mlir::kiln::SparsityAttr">:$sparsity
  );
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    int64_t getRank() const { return getShape().size(); }
    /// K: the innermost (reduction) dimension.
    int64_t getInnerDim() const { return getShape().back(); }
    /// Number of rows: the product of all but the innermost dimension.
    int64_t getNumRows() const;
    /// Bytes one row occupies (dense or quantized); fails on overflow, when
    /// the weight is sparse (rows then vary in size) or in a target layout
    /// (which need not store rows one by one).
    ::mlir::FailureOr<uint64_t> getRowBytes() const;
    /// The sparsity of a weight whose bytes are compressed (kept values and
    /// their positions); null for a dense weight and for a pruned one still
    /// stored dense (`#kiln.sparsity<..., dense = true>`).
    ::mlir::kiln::SparsityAttr getCompressedSparsity() const;
    /// Bytes the whole weight occupies; fails on overflow.
    ::mlir::FailureOr<uint64_t> getStorageBytes() const;
    /// Whether a linear layer over this weight can take quantized
    /// activations (`activation_bits`): its codes are integers under one
    /// scale (and min) per 32 values along K, so each 32-value block of the
    /// dot product is an integer sum (ggml's Q4_0..Q8_0, Kiln's packed
    /// groups of a multiple of 32, n:m compressed weights), or a target
    /// layout says its kernels take them (the CPU's rows16).
    bool takesQuantizedActivations() const;
  }];
}

def Kiln_KVCacheType : Kiln_Type<"KVCache", "kv_cache"> {
  let summary = "Key/value cache of all attention layers of a model";
  let description = [{
    `!kiln.kv_cache<30x2048x3x64xf32>`: layers x context x kv_heads x
    head_dim, for keys and for values. A reference to state that
    `kiln.attention` reads and updates in place, like a memref.
  }];
  let parameters = (ins
    "int64_t":$layers,
    "int64_t":$contextLength,
    "int64_t":$kvHeads,
    "int64_t":$headDim,
    "::mlir::Type":$elementType
  );
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Bytes of keys plus values of all layers; fails on overflow.
    ::mlir::FailureOr<uint64_t> getStorageBytes() const;
  }];
}

#endif // KILN_TYPES_TD
