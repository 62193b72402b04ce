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
    inside the dot product loops. A linear layer with `activation_bits = 8`
    (kiln-fuse) multiplies its input quantized to int8 blocks in integers
    (what llama.cpp computes, and faster): the input is quantized by the
    producer marked `kiln.quantize_output`, else once before the layers that
    read it; without it, activations stay exact f32. Kernels split their
    work by (tid, nth); a barrier through the runtime separates dependent
    kernels.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::func::FuncDialect",
    "::mlir::LLVM::LLVMDialect", "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect", "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect"
  ];
  let options = [
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

def ConvertKilnToGPU : Pass<"convert-kiln-to-gpu", "::mlir::ModuleOp"> {
  let summary = "Lower kiln ops to CUDA kernels and a host step that launches "
                "them";
  let description = [{
    Rewrites the module's step function into a host function with the
    signature convert-kiln-to-cpu gives it (tensors as memrefs, results as
    out-parameters unless `kiln.tied_results` ties them, then `%weights`,
    `%scratch`, `%rt`, `%tid`, `%nth`), whose memrefs hold device addresses
    (include/kiln/runtime/HostABI.h). Its body only computes launch
    parameters and calls `rt->launch` (the third pointer of KilnRtContext)
    with an index into the kernels of `gpu.module @kiln_kernels`, one
    `gpu.func` per kernel; the function attribute `kiln.cuda_kernels` lists
    their names in that order (the manifest's `cuda.kernels`). Kernel
    arguments are device pointers (bare-pointer memrefs) and index values.

    Intermediate tensors live in the device scratch buffer at
    kiln-plan-memory's `kiln.slot`s; the pass records `kiln.scratch_bytes`.
    Weights are read in place, in their gguf layout, from the `%weights`
    buffer at their `#kiln.external` offsets, and dequantized in registers:
    f32, f16, Q4_0, Q4_1, Q8_0, Q4_K and Q6_K. Kernels: a GEMV per linear
    layer (one warp per output row and token, shuffle-xor reduction, bias
    and kiln-fuse's residual in the epilogue), embedding, rms/layer norm,
    rope (llama and NeoX), attention over the KV cache (an append kernel,
    then one warp per token and head with an online softmax; causal,
    GQA, sliding window, softcap), and elementwise add, mul, swiglu, geglu,
    silu, gelu. Slices of whole rows and reshapes are views. exp, tanh,
    erf, sin and cos become polynomials, so no libdevice is needed.
    A linear layer with `activation_bits` (kiln-fuse) over Q4_0, Q4_1 or
    Q8_0 in `#kiln_gpu.split` decodes (one token) on its input quantized
    per 32 values as the CPU's int8 kernels do, into the step's workspace
    once for consecutive layers over one input (by the norm or elementwise
    kernel that wrote it where kiln-fuse marked it `kiln.quantize_output`),
    with integer dot products (dp4a); prefill and other weights keep f32
    activations.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::func::FuncDialect",
    "::mlir::gpu::GPUDialect", "::mlir::LLVM::LLVMDialect",
    "::mlir::math::MathDialect", "::mlir::memref::MemRefDialect",
    "::mlir::NVVM::NVVMDialect", "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect"
  ];
}

#endif // KILN_CONVERSION_PASSES_TD
