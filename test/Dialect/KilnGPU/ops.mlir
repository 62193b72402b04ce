// RUN: kiln-opt %s | kiln-opt | FileCheck %s
// RUN: kiln-opt %s --mlir-print-op-generic | kiln-opt | FileCheck %s

// Round trip of the CUDA target's weight layouts (kiln_gpu,
// lib/Conversion/KilnToGPU/IR) as a #kiln.quant's target_layout. Sizes of
// #kiln.external ranges are the bytes the layout says the weight takes (the
// verifier checks them against it).

// #kiln_gpu.split keeps the GGUF size: 24 x 64 is 48 blocks of 18, 20 and 34
// bytes (codes and headers apart, SplitLayout.h).
// CHECK-LABEL: func.func @split_formats
// CHECK: size = 864> -> !kiln.weight<24x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>
// CHECK: size = 960> -> !kiln.weight<24x64x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf, target_layout = #kiln_gpu.split>>
// CHECK: size = 1632> -> !kiln.weight<24x64x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>
func.func @split_formats() {
  %q4_0 = kiln.weight #kiln.external<"w.bin", offset = 0, size = 864> -> !kiln.weight<24x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  %q4_1 = kiln.weight #kiln.external<"w.bin", offset = 0, size = 960> -> !kiln.weight<24x64x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  %q8_0 = kiln.weight #kiln.external<"w.bin", offset = 0, size = 1632> -> !kiln.weight<24x64x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  return
}
