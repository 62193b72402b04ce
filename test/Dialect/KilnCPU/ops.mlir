// RUN: kiln-opt %s | kiln-opt | FileCheck %s
// RUN: kiln-opt %s --mlir-print-op-generic | kiln-opt | FileCheck %s

// Round trip of the CPU target's weight layouts (kiln_cpu,
// lib/Conversion/KilnToCPU/IR) as a #kiln.quant's target_layout. Sizes of
// #kiln.external ranges are the bytes the layout says the weight takes (the
// verifier checks them against it).

//===----------------------------------------------------------------------===//
// #kiln_cpu.rows16: ggml formats interleaved 16 rows at a time (Rows16.h),
// 32 x 256
//===----------------------------------------------------------------------===//

// Sizes: two groups of 16 rows; headers padded to 64 bytes (Q4_K's 320-byte
// and Q6_K's 288-byte super-block headers make them larger than in GGUF;
// Q2_K's 320-byte headers keep its size, Q3_K's 288-byte ones grow it).
// CHECK-LABEL: func.func @rows16_formats
// CHECK: size = 4608> -> !kiln.weight<32x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_cpu.rows16>>
// CHECK: size = 5120> -> !kiln.weight<32x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf, target_layout = #kiln_cpu.rows16>>
// CHECK: size = 5632> -> !kiln.weight<32x256x#kiln.quant<bits = 5, group = 32, scale = f16, layout = gguf, target_layout = #kiln_cpu.rows16>>
// CHECK: size = 6144> -> !kiln.weight<32x256x#kiln.quant<bits = 5, group = 32, scale = f16, zero = f16, layout = gguf, target_layout = #kiln_cpu.rows16>>
// CHECK: size = 8704> -> !kiln.weight<32x256x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf, target_layout = #kiln_cpu.rows16>>
// CHECK: size = 2688> -> !kiln.weight<32x256x#kiln.quant<bits = 2, group = 16, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 4, layout = gguf, target_layout = #kiln_cpu.rows16>>
// CHECK: size = 3712> -> !kiln.weight<32x256x#kiln.quant<bits = 3, group = 16, scale = f16, super_group = 256, sub_scale_bits = 6, layout = gguf, target_layout = #kiln_cpu.rows16>>
// CHECK: size = 4736> -> !kiln.weight<32x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf, target_layout = #kiln_cpu.rows16>>
// CHECK: size = 5760> -> !kiln.weight<32x256x#kiln.quant<bits = 5, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf, target_layout = #kiln_cpu.rows16>>
// CHECK: size = 6784> -> !kiln.weight<32x256x#kiln.quant<bits = 6, group = 16, scale = f16, super_group = 256, sub_scale_bits = 8, layout = gguf, target_layout = #kiln_cpu.rows16>>
// CHECK: size = 4608> -> !kiln.weight<32x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, codebook = iq4_nl, target_layout = #kiln_cpu.rows16>>
// CHECK: size = 4480> -> !kiln.weight<32x256x#kiln.quant<bits = 4, group = 32, scale = f16, super_group = 256, sub_scale_bits = 6, layout = gguf, codebook = iq4_nl, target_layout = #kiln_cpu.rows16>>
func.func @rows16_formats() {
  %q4_0 = kiln.weight #kiln.external<"w.bin", offset = 0, size = 4608> -> !kiln.weight<32x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_cpu.rows16>>
  %q4_1 = kiln.weight #kiln.external<"w.bin", offset = 0, size = 5120> -> !kiln.weight<32x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf, target_layout = #kiln_cpu.rows16>>
  %q5_0 = kiln.weight #kiln.external<"w.bin", offset = 0, size = 5632> -> !kiln.weight<32x256x#kiln.quant<bits = 5, group = 32, scale = f16, layout = gguf, target_layout = #kiln_cpu.rows16>>
  %q5_1 = kiln.weight #kiln.external<"w.bin", offset = 0, size = 6144> -> !kiln.weight<32x256x#kiln.quant<bits = 5, group = 32, scale = f16, zero = f16, layout = gguf, target_layout = #kiln_cpu.rows16>>
  %q8_0 = kiln.weight #kiln.external<"w.bin", offset = 0, size = 8704> -> !kiln.weight<32x256x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf, target_layout = #kiln_cpu.rows16>>
  %q2_k = kiln.weight #kiln.external<"w.bin", offset = 0, size = 2688> -> !kiln.weight<32x256x#kiln.quant<bits = 2, group = 16, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 4, layout = gguf, target_layout = #kiln_cpu.rows16>>
  %q3_k = kiln.weight #kiln.external<"w.bin", offset = 0, size = 3712> -> !kiln.weight<32x256x#kiln.quant<bits = 3, group = 16, scale = f16, super_group = 256, sub_scale_bits = 6, layout = gguf, target_layout = #kiln_cpu.rows16>>
  %q4_k = kiln.weight #kiln.external<"w.bin", offset = 0, size = 4736> -> !kiln.weight<32x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf, target_layout = #kiln_cpu.rows16>>
  %q5_k = kiln.weight #kiln.external<"w.bin", offset = 0, size = 5760> -> !kiln.weight<32x256x#kiln.quant<bits = 5, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf, target_layout = #kiln_cpu.rows16>>
  %q6_k = kiln.weight #kiln.external<"w.bin", offset = 0, size = 6784> -> !kiln.weight<32x256x#kiln.quant<bits = 6, group = 16, scale = f16, super_group = 256, sub_scale_bits = 8, layout = gguf, target_layout = #kiln_cpu.rows16>>
  %iq4_nl = kiln.weight #kiln.external<"w.bin", offset = 0, size = 4608> -> !kiln.weight<32x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, codebook = iq4_nl, target_layout = #kiln_cpu.rows16>>
  %iq4_xs = kiln.weight #kiln.external<"w.bin", offset = 0, size = 4480> -> !kiln.weight<32x256x#kiln.quant<bits = 4, group = 32, scale = f16, super_group = 256, sub_scale_bits = 6, layout = gguf, codebook = iq4_nl, target_layout = #kiln_cpu.rows16>>
  return
}
