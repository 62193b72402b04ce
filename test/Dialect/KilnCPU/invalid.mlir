// RUN: kiln-opt %s -split-input-file -verify-diagnostics

// One case per diagnostic of the CPU target's weight layouts (kiln_cpu,
// lib/Conversion/KilnToCPU/IR/KilnCPUDialect.cpp).


// Kiln's packed layout with f8 scales: the rows16 kernels read f16, bf16
// and f32 ones.
// expected-error @+1 {{target_layout = #kiln_cpu.rows16 takes only the ggml formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ2_XXS, IQ2_XS, IQ3_XXS, IQ1_S, IQ4_NL, IQ3_S, IQ2_S, IQ4_XS, IQ1_M, TQ1_0 and TQ2_0 in layout = gguf, and layout = packed with f16, bf16 or f32 scales and zeros in groups of 32 to 256 values}}
func.func @rows16_packed_f8(%w: !kiln.weight<16x256x#kiln.quant<bits = 4, group = 32, scale = f8E4M3FN, target_layout = #kiln_cpu.rows16>>)

// -----

// A packed group of 16 values: the kernels read 32-value blocks.
// expected-error @+1 {{target_layout = #kiln_cpu.rows16 takes only}}
func.func @rows16_packed_group16(%w: !kiln.weight<16x256x#kiln.quant<bits = 4, group = 16, scale = f16, target_layout = #kiln_cpu.rows16>>)

// -----

// One group per row of 512 (per channel): the kernels would unroll 16
// blocks under each scale.
// expected-error @+1 {{target_layout = #kiln_cpu.rows16 takes only}}
func.func @rows16_packed_channel(%w: !kiln.weight<16x512x#kiln.quant<bits = 4, group = 512, scale = f16, target_layout = #kiln_cpu.rows16>>)

// -----

// expected-error @+1 {{weight super-group size 256 does not divide K = 32}}
func.func @rows16_partial_super_block(%w: !kiln.weight<16x32x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf, target_layout = #kiln_cpu.rows16>>)

// -----

// expected-error @+2 {{unknown attribute `rows32` in dialect `kiln_cpu`}}
// expected-error @+1 {{failed to parse Kiln_QuantSchemeAttr parameter 'target_layout'}}
func.func @unknown_layout(%w: !kiln.weight<16x32x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_cpu.rows32>>)
