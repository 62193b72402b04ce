//===- KilnAttrs.td - kiln attributes -----------------------*- tablegen -*-===//

#ifndef KILN_ATTRS_TD
#define KILN_ATTRS_TD

include "Kiln/IR/KilnDialect.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

class Kiln_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Kiln_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

// How quantization codes of one block are laid out in bytes. The arithmetic
// (bits, group, scales, zero points) is in QuantSchemeAttr; the layout only
// fixes the bit order, so GGUF's formats are instances of one scheme. How a
// target rearranges whole blocks is its own attribute (target_layout).
def Kiln_QuantLayout : I32EnumAttr<"QuantLayout", "byte layout of a quantized block", [
    I32EnumAttrCase<"Packed", 0, "packed">,  // Kiln's own: scales, then codes little-endian, LSB first
    I32EnumAttrCase<"GGUF", 1, "gguf">       // ggml's block_q*/block_q*_K structs (ggml-common.h)
  ]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::kiln";
}

def Kiln_QuantLayoutAttr : EnumAttr<Kiln_Dialect, Kiln_QuantLayout, "layout"> {
  let assemblyFormat = "`<` $value `>`";
}

// What a code stands for: itself (linear: scale * (code - midpoint), or
// scale * code + zero), or an entry of a fixed table (GGMLFormats.h
// GGMLCodebook, same numbers).
def Kiln_QuantCodebook : I32EnumAttr<"QuantCodebook", "values of quantization codes", [
    I32EnumAttrCase<"None", 0, "none">,
    I32EnumAttrCase<"IQ4NL", 1, "iq4_nl">,  // ggml's kvalues_iq4nl (IQ4_NL, IQ4_XS)
    I32EnumAttrCase<"Ternary", 2, "ternary">,  // TQ2_0: codes 0, 1, 2 = -1, 0, 1
    I32EnumAttrCase<"TernaryBase3", 3, "ternary_base3">,  // TQ1_0: trits in base 3
    I32EnumAttrCase<"IQ2XXS", 4, "iq2_xxs">,  // IQ2_XXS: iq2xxs_grid + signs
    I32EnumAttrCase<"IQ3XXS", 5, "iq3_xxs">,  // IQ3_XXS: iq3xxs_grid + signs
    I32EnumAttrCase<"IQ2XS", 6, "iq2_xs">,    // IQ2_XS: iq2xs_grid + signs
    I32EnumAttrCase<"IQ3S", 7, "iq3_s">,      // IQ3_S: iq3s_grid + sign bytes
    I32EnumAttrCase<"IQ2S", 8, "iq2_s">,      // IQ2_S: iq2s_grid + sign bytes
    I32EnumAttrCase<"IQ1S", 9, "iq1_s">,      // IQ1_S: iq1s_grid + delta
    I32EnumAttrCase<"IQ1M", 10, "iq1_m">      // IQ1_M: iq1s_grid + deltas
  ]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::kiln";
}

def Kiln_QuantSchemeAttr : Kiln_Attr<"QuantScheme", "quant"> {
  let summary = "Encoding of a low-bit quantized weight";
  let description = [{
    Weights are quantized along K (the reduction dimension) in groups of
    `group` values, each value a `bits`-wide unsigned code. Each group has a
    scale of type `scale`. Symmetric schemes subtract the midpoint
    2^(bits-1); asymmetric ones add a per-group offset of type `zero` (a float
    "min", as in ggml's Q4_1 and K-quants, or an integer zero point).

    Two-level schemes (`super_group` > 0) group `super_group` values into a
    super-block with one `scale` (and one `zero`) of their own, and store the
    per-group scales (and mins) as `sub_scale_bits`-wide integers multiplied
    by them: ggml's K-quants.

    Examples (all with layout = gguf):
    Q4_0 = `#kiln.quant<bits = 4, group = 32, scale = f16>`;
    Q4_1 = `#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16>`;
    Q4_K = `#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16,
    super_group = 256, sub_scale_bits = 6>`.

    `codebook` (layout = gguf only): codes index a fixed table, value =
    scale * table[code]; IQ4_NL = `#kiln.quant<bits = 4, group = 32,
    scale = f16, layout = gguf, codebook = iq4_nl>`. The other codebooks
    name ggml formats whose blocks are ggml's own structs (not `bits`-wide
    codes; `bits` is then nominal): ternary (TQ2_0), ternary_base3 (TQ1_0),
    iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s (grids of magnitudes and signs),
    iq1_s, iq1_m (grids of -1, 0, 1 shifted by +-1/8).

    `target_layout`, when present, is an attribute a target defines
    (WeightLayoutAttrInterface, KilnInterfaces.td) that rearranges the
    blocks for its kernels (the CPU target's interleaves ggml blocks of 16
    rows: `layout = gguf, target_layout = #kiln_cpu.<name>`); without one
    the blocks follow each other row by row.
  }];
  let parameters = (ins
    "unsigned":$bits,
    "unsigned":$group,
    "::mlir::Type":$scale,
    OptionalParameter<"::mlir::Type">:$zero,
    DefaultValuedParameter<"unsigned", "0">:$super_group,
    DefaultValuedParameter<"unsigned", "0">:$sub_scale_bits,
    DefaultValuedParameter<"::mlir::kiln::QuantLayout",
                           "::mlir::kiln::QuantLayout::Packed">:$layout,
    DefaultValuedParameter<"::mlir::kiln::QuantCodebook",
                           "::mlir::kiln::QuantCodebook::None">:$codebook,
    OptionalParameter<"::mlir::kiln::WeightLayoutAttrInterface">:$target_layout
  );
  let builders = [
    // A scheme in no target layout: what importers and compression passes
    // write (only kiln-pack-weights picks a target's layout).
    AttrBuilder<(ins "unsigned":$bits, "unsigned":$group, "::mlir::Type":$scale,
                     "::mlir::Type":$zero, "unsigned":$super_group,
                     "unsigned":$sub_scale_bits,
                     "::mlir::kiln::QuantLayout":$layout,
                     CArg<"::mlir::kiln::QuantCodebook",
                          "::mlir::kiln::QuantCodebook::None">:$codebook), [{
      return $_get($_ctxt, bits, group, scale, zero, super_group,
                   sub_scale_bits, layout, codebook,
                   ::mlir::kiln::WeightLayoutAttrInterface());
    }]>
  ];
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    ::mlir::Type getScaleType() const { return getScale(); }
    ::mlir::Type getZeroType() const { return getZero(); }
    bool isSymmetric() const { return !getZero(); }
    bool isTwoLevel() const { return getSuperGroup() != 0; }
    /// The block that storage is counted in: the super-group if there is one.
    unsigned getBlockSize() const {
      return isTwoLevel() ? getSuperGroup() : getGroup();
    }
    /// Bytes of one block (see WeightLayout.h for the formula).
    uint64_t getBlockBytes() const;
  }];
}

def Kiln_SparsityKind : I32EnumAttr<"SparsityKind", "sparsity pattern", [
    I32EnumAttrCase<"NM", 0, "n_m">,
    I32EnumAttrCase<"Bitmap", 1, "bitmap">,
    I32EnumAttrCase<"CSR", 2, "csr">,
    I32EnumAttrCase<"Block", 3, "block">
  ]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::kiln";
}

def Kiln_SparsityAttr : Kiln_Attr<"Sparsity", "sparsity"> {
  let summary = "Sparsity pattern of a pruned weight";
  let description = [{
    - `n_m`: in every run of `m` consecutive values along K at most `n` are
      non-zero (2:4 on NVIDIA sparse tensor cores). Kept values are stored
      densely with a 2-bit index each (log2(m) bits in general). A quantized
      weight (symmetric, one level) keeps per block its scale, the kept codes
      and their indices (WeightLayout.h, nmBlockBytes).
    - `bitmap`: unstructured; a bit per value plus the `nnz` kept values.
    - `csr`: unstructured; row pointers, a 32-bit column index per kept value.
    - `block`: whole `block_rows` x `block_cols` tiles are zero or kept;
      `nnz` counts kept blocks.
    With `dense = true` the weight's bytes are still the dense matrix, its
    pruned values written as zeros (what kiln-prune leaves): the pattern is
    a promise about the values, the storage is that of a dense (or
    quantized) weight of the same shape, and a lowering without sparse
    kernels may read it as dense. Packing for sparse kernels drops the flag.
  }];
  let parameters = (ins
    EnumParameter<Kiln_SparsityKind>:$kind,
    DefaultValuedParameter<"unsigned", "0">:$n,
    DefaultValuedParameter<"unsigned", "0">:$m,
    DefaultValuedParameter<"unsigned", "0">:$block_rows,
    DefaultValuedParameter<"unsigned", "0">:$block_cols,
    DefaultValuedParameter<"uint64_t", "0">:$nnz,
    DefaultValuedParameter<"bool", "false">:$dense
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Kiln_ExternalDataAttr : Kiln_Attr<"ExternalData", "external"> {
  let summary = "A byte range of a file outside the IR";
  let description = [{
    Names `size` bytes at `offset` of the file at `path`. A 1 GB model stays a
    small module: weights are read (or mapped) only when a pass needs them.
  }];
  let parameters = (ins
    "::mlir::StringAttr":$path,
    "uint64_t":$offset,
    "uint64_t":$size
  );
  let assemblyFormat = [{
    `<` $path `,` `offset` `=` $offset `,` `size` `=` $size `>`
  }];
}

def Kiln_RopeStyle : I32EnumAttr<"RopeStyle", "pairing of rotated dimensions", [
    I32EnumAttrCase<"Llama", 0, "llama">,  // adjacent pairs (2i, 2i+1), GGUF's permuted Q/K
    I32EnumAttrCase<"NeoX", 1, "neox">     // halves (i, i + rotary_dim/2)
  ]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::kiln";
}
def Kiln_RopeStyleAttr : EnumAttr<Kiln_Dialect, Kiln_RopeStyle, "rope_style"> {
  let assemblyFormat = "`<` $value `>`";
}

// An f32 written as a float literal (AttrDef parameters have no float parser).
def Kiln_F32Parameter : AttrOrTypeParameter<"::llvm::APFloat", "an f32 value"> {
  let comparator = "$_lhs.bitwiseIsEqual($_rhs)";
  let parser = [{ [&]() -> ::mlir::FailureOr<::llvm::APFloat> {
    double value;
    if ($_parser.parseFloat(value))
      return ::mlir::failure();
    return ::llvm::APFloat(float(value));
  }() }];
  let printer = [{ $_printer.printFloat($_self) }];
}
// The same, left out of the printed form when it is 1.
def Kiln_F32ParameterDefaultOne : AttrOrTypeParameter<"::llvm::APFloat", "an f32 value, 1 when absent"> {
  let comparator = Kiln_F32Parameter.comparator;
  let parser = Kiln_F32Parameter.parser;
  let printer = Kiln_F32Parameter.printer;
  let defaultValue = "::llvm::APFloat(1.0f)";
}

def Kiln_RopeAttr : Kiln_Attr<"Rope", "rope"> {
  let summary = "The rotation of a kiln.rope, carried by the op that applies it";
  let description = [{
    The attributes of `kiln.rope` (see there), without its input and position:
    `kiln-fuse` puts one on a `kiln.linear` whose result only a rope read, and
    the projection's kernel rotates its output as it writes it.
    Example: `#kiln.rope<num_heads = 9, head_dim = 64, rotary_dim = 64,
    style = llama, freq_base = 1.000000e+05, freq_scale = 1.000000e+00>`.
  }];
  let parameters = (ins
    "int64_t":$num_heads,
    "int64_t":$head_dim,
    "int64_t":$rotary_dim,
    EnumParameter<Kiln_RopeStyle>:$style,
    Kiln_F32Parameter:$freq_base,
    Kiln_F32Parameter:$freq_scale,
    OptionalParameter<"::mlir::DenseF32ArrayAttr">:$freq_factors,
    Kiln_F32ParameterDefaultOne:$magnitude
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// num_heads * head_dim: the width of the rows it rotates.
    int64_t getWidth() const { return getNumHeads() * getHeadDim(); }
  }];
}

def Kiln_GeluApprox : I32EnumAttr<"GeluApprox", "gelu formula", [
    I32EnumAttrCase<"Erf", 0, "erf">,
    I32EnumAttrCase<"Tanh", 1, "tanh">
  ]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::kiln";
}
def Kiln_GeluApproxAttr : EnumAttr<Kiln_Dialect, Kiln_GeluApprox, "gelu_approx"> {
  let assemblyFormat = "`<` $value `>`";
}

#endif // KILN_ATTRS_TD
