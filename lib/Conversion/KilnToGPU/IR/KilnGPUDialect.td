//===- KilnGPUDialect.td - what the CUDA target adds to kiln IR -*- tablegen -*-===//
//
// The weight layouts the GPU kernels read, owned by the CUDA target: the kiln
// dialect only sees them through WeightLayoutAttrInterface.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_GPU_DIALECT_TD
#define KILN_GPU_DIALECT_TD

include "Kiln/IR/KilnInterfaces.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/OpBase.td"

def KilnGPU_Dialect : Dialect {
  let name = "kiln_gpu";
  let cppNamespace = "::mlir::kiln";
  let summary = "The CUDA target's weight layouts";
  let description = [{
    Attributes the CUDA target (lib/Conversion/KilnToGPU) puts in kiln IR:
    the layouts its kernels read weights in, which kiln-pack-weights with
    target=cuda chooses and packs and convert-kiln-to-gpu reads. Registered
    with the CUDA target (registerKilnCUDATarget), not with the kiln dialect.
  }];
  let useDefaultAttributePrinterParser = 1;
}

def KilnGPU_SplitLayoutAttr : AttrDef<KilnGPU_Dialect, "SplitLayout",
    [DeclareAttrInterfaceMethods<Kiln_WeightLayoutAttrInterface>]> {
  let mnemonic = "split";
  let summary = "ggml codes split from their scales, in 16-byte pieces";
  let description = [{
    `#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf,
    target_layout = #kiln_gpu.split>`: a Q4_0, Q4_1 or Q8_0 weight whose
    blocks' codes and headers (scales, mins) are stored apart, so that
    the GEMV's lanes, taking consecutive blocks of a row, read 512
    contiguous bytes of codes per warp with one 128-bit load each
    (SplitLayout.h has the bytes).
  }];
}

#endif // KILN_GPU_DIALECT_TD
