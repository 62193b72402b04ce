//===- KilnCPUDialect.td - what the CPU target adds to kiln IR -*- tablegen -*-===//
//
// The weight layouts the CPU kernels read, owned by the CPU target: the kiln
// dialect only sees them through WeightLayoutAttrInterface.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CPU_DIALECT_TD
#define KILN_CPU_DIALECT_TD

include "Kiln/IR/KilnInterfaces.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/OpBase.td"

def KilnCPU_Dialect : Dialect {
  let name = "kiln_cpu";
  let cppNamespace = "::mlir::kiln";
  let summary = "The CPU target's weight layouts";
  let description = [{
    Attributes the CPU target (lib/Conversion/KilnToCPU) puts in kiln IR:
    the layouts its kernels read weights in, which kiln-pack-weights with
    target=cpu chooses and packs and convert-kiln-to-cpu reads. Registered
    with the CPU target (registerKilnCPUTarget), not with the kiln dialect.
  }];
  let useDefaultAttributePrinterParser = 1;
}

def KilnCPU_Rows16LayoutAttr : AttrDef<KilnCPU_Dialect, "Rows16Layout",
    [DeclareAttrInterfaceMethods<Kiln_WeightLayoutAttrInterface>]> {
  let mnemonic = "rows16";
  let summary = "ggml blocks of 16 rows interleaved for the int8 kernels";
  let description = [{
    `#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf,
    target_layout = #kiln_cpu.rows16>`: a weight in one of ggml's
    integer-coded formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K),
    rearranged so that the int8 linear kernels read 16 output rows as one
    sequential stream, one row per 32-bit lane (Rows16.h has the bytes).
  }];
}

#endif // KILN_CPU_DIALECT_TD
