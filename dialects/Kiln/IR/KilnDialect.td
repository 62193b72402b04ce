//===- KilnDialect.td - the kiln dialect -------------------*- tablegen -*-===//
//
// Transformer ops with value semantics, over weights that may be quantized or
// sparse. Weights are SSA values of type !kiln.weight produced by kiln.weight,
// whose bytes live outside the IR text (an external file range or a
// dense_resource blob).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_DIALECT_TD
#define KILN_DIALECT_TD

include "mlir/IR/OpBase.td"

def Kiln_Dialect : Dialect {
  let name = "kiln";
  let cppNamespace = "::mlir::kiln";
  let summary = "Quantized and pruned transformer ops";
  let description = [{
    The `kiln` dialect describes transformer inference at the granularity of
    linear layers, norms, rotary embeddings and attention with a KV cache.
    Compressed weight encodings (low-bit quantization at any width 2-8, two
    level block scales, float formats, and sparsity patterns) are described by
    `#kiln.quant` and `#kiln.sparsity`; GGUF's block formats are instances of
    that description.
  }];
  let useDefaultTypePrinterParser = 1;
  let useDefaultAttributePrinterParser = 1;
  // The contracts between the importer, the lowering and the driver, checked
  // by verifyOperationAttribute (KilnFunctionAttrs.cpp).
  let discardableAttrs = (ins
    // Bound of a step function's dynamic token dimension (a prompt chunk).
    "::mlir::IntegerAttr":$max_tokens,
    // Per result of a function: the argument whose buffer it is computed in
    // (the KV cache it updates), or -1.
    "::mlir::ArrayAttr":$tied_results,
    // Set by kiln-plan-memory: per result of an op, [offset, size] of the
    // scratch bytes it is computed into ([-1, 0]: none).
    "::mlir::DenseI64ArrayAttr":$slot,
    // Set by kiln-plan-memory: bytes of scratch the planned slots take.
    "::mlir::IntegerAttr":$planned_bytes,
    // Set by a lowering: bytes of scratch memory a step function needs (the
    // planned slots and the kernels' own workspace).
    "::mlir::IntegerAttr":$scratch_bytes,
    // Set by a lowering: the file the step function's weights come from.
    "::mlir::StringAttr":$weight_file,
    // Set by convert-kiln-to-gpu on a step function: the names of the
    // kernels its rt->launch calls index, in order (the manifest's
    // cuda.kernels).
    "::mlir::ArrayAttr":$cuda_kernels,
    // Set by kiln-fuse on the norm or elementwise op whose result is the
    // input of linear layers with `activation_bits`: the op's kernel also
    // writes its result quantized to that many bits, so they need not.
    "::mlir::IntegerAttr":$quantize_output
  );
  let hasOperationAttrVerify = 1;
  let extraClassDeclaration = [{
    void registerTypes();

    /// Whether `op` (a function) is a step function: it takes a kiln type or
    /// contains a kiln op.
    static bool isStepFunction(::mlir::Operation *op);

    /// The bytes behind this context's kiln.weight ops (WeightStore.h).
    ::mlir::kiln::WeightStore &getWeightStore() { return *weightStore; }

  private:
    std::unique_ptr<::mlir::kiln::WeightStore> weightStore;

  public:
  }];
  let dependentDialects = ["::mlir::tensor::TensorDialect"];
}

class Kiln_Op<string mnemonic, list<Trait> traits = []>
    : Op<Kiln_Dialect, mnemonic, traits>;

#endif // KILN_DIALECT_TD
