//===- Passes.td - Kiln conversion passes -------------------*- tablegen -*-===//

#ifndef KILN_CONVERSION_PASSES_TD
#define KILN_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertKilnToCPU : Pass<"convert-kiln-to-cpu", "::mlir::ModuleOp"> {
  let summary = "Lower kiln ops to multithreaded vector kernels on memrefs";
  let description = [{
    Rewrites every function that uses kiln ops into an SPMD step function on
    memrefs (see include/kiln/runtime/HostABI.h):

      * tensor arguments become memrefs, `!kiln.kv_cache` a byte buffer;
      * results become out-parameters appended after the arguments, except a
        result that the function attribute `kiln.tied_results` ties to an
        argument (its buffer is that argument's);
      * `%weights: memref<?xi8>`, `%scratch: memref<?xi8>`, `%rt: !llvm.ptr`,
        `%tid: i32`, `%nth: i32` are appended.

    Intermediate tensors live in the scratch buffer at the `kiln.slot`s that
    kiln-plan-memory gave them (for the token bound `kiln.max_tokens`); the
    kernels' own workspace (int8 activations, RoPE tables) follows
    `kiln.planned_bytes`, and the pass records the total in
    `kiln.scratch_bytes`. A `residual` operand (kiln-fuse) is added in the
    epilogue of the rows16 kernels, else by an add kernel; a `rope` epilogue
    (kiln-fuse) is applied by the rows16 kernels when head_dim is a whole
    number of vectors, else by the rope kernel in place after the product.
    `kiln.weight` ops naming `#kiln.external` ranges become views of
    `%weights` at those offsets. `tensor.extract_slice` (of whole rows),
    `tensor.expand_shape` and `tensor.collapse_shape` become memref views of
    their source, with no scratch of their own (a per-head norm is an
    `rms_norm` of a `[T, heads, head_dim]` view). Each kiln op becomes a
    call to a kernel specialised for its shapes and weight encoding, written
    with scf/vector/arith/math/memref: dequantization happens in registers
    inside the dot product loops. With `activations=int8`, the input of a linear layer over
    integer-coded weights is quantized once to int8 blocks and multiplied in
    integers (what llama.cpp computes, and faster); `activations=f32` keeps
    activations exact. Kernels split their work by (tid, nth); a barrier
    through the runtime separates dependent kernels.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::func::FuncDialect",
    "::mlir::LLVM::LLVMDialect", "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect", "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect"
  ];
  let options = [
    Option<"activations", "activations", "::mlir::kiln::ActivationPrecision",
           /*default=*/"::mlir::kiln::ActivationPrecision::Int8",
           "Activations of linear layers over integer-coded weights",
           [{::llvm::cl::values(
             clEnumValN(::mlir::kiln::ActivationPrecision::Int8, "int8",
                        "quantized per 32-value block as ggml's q8_1, integer "
                        "dot products"),
             clEnumValN(::mlir::kiln::ActivationPrecision::F32, "f32",
                        "exact: dequantized weights times f32 activations"))}]>,
    Option<"cpu", "cpu", "::mlir::kiln::KernelISA",
           /*default=*/"::mlir::kiln::KernelISA::Generic",
           "Instruction set the kernels may use",
           [{::llvm::cl::values(
             clEnumValN(::mlir::kiln::KernelISA::Generic, "generic",
                        "portable vector code"),
             clEnumValN(::mlir::kiln::KernelISA::X86_64_V3, "x86-64-v3",
                        "AVX2: vpmaddubsw byte dot products"),
             clEnumValN(::mlir::kiln::KernelISA::X86_64_V4, "x86-64-v4",
                        "AVX-512 VNNI: vpdpbusd"))}]>
  ];
}

#endif // KILN_CONVERSION_PASSES_TD
