// RUN: kiln-opt %s -split-input-file -verify-diagnostics

// One case per diagnostic of the CUDA target's weight layouts (kiln_gpu,
// lib/Conversion/KilnToGPU/IR/KilnGPUDialect.cpp).

// split covers the ggml formats the GPU GEMV reads with 128-bit loads; not
// Q4_K.
// expected-error @+1 {{target_layout = #kiln_gpu.split takes only the ggml formats Q4_0, Q4_1 and Q8_0 in layout = gguf}}
func.func @split_q4_k(%w: !kiln.weight<16x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf, target_layout = #kiln_gpu.split>>)

// -----

// Q4_0's numbers in Kiln's packed layout are not ggml blocks.
// expected-error @+1 {{target_layout = #kiln_gpu.split takes only the ggml formats Q4_0, Q4_1 and Q8_0 in layout = gguf}}
func.func @split_packed(%w: !kiln.weight<16x256x#kiln.quant<bits = 4, group = 32, scale = f16, target_layout = #kiln_gpu.split>>)

// -----

// The layout's size is the GGUF size: 16 x 64 Q4_0 takes 576 bytes.
func.func @split_size() {
  // expected-error @+1 {{source holds 512 bytes but '!kiln.weight<16x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>' needs 576}}
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 512> -> !kiln.weight<16x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  return
}
