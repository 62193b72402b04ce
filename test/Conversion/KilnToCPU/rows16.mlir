// RUN: kiln-opt %s --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu | FileCheck %s
// RUN: not kiln-opt %s --kiln-plan-memory --convert-kiln-to-cpu 2>&1 | FileCheck %s --check-prefix=F32

!r16 = !kiln.weight<32x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf, target_layout = #kiln_cpu.rows16>>

// A rows16 weight: activations quantized once, then the 16-row kernel.
// CHECK-LABEL: func.func @linear
// CHECK: call @kiln_quantize_q8_256(
// CHECK: call @kiln_linear_r16_generic_q4_k_256x32(
// F32: error: 'kiln.linear' op target_layout = #kiln_cpu.rows16 weights need activation_bits = 8 (kiln-fuse{activation-bits=8})
func.func @linear(%x: tensor<?x256xf32>) -> tensor<?x32xf32> attributes {kiln.max_tokens = 4} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 4736> -> !r16
  %y = kiln.linear %x, %w : tensor<?x256xf32>, !r16 -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// A norm read by int8 linear layers quantizes its output itself: no separate
// quantize kernel (and no barrier) between it and the projections.
// CHECK-LABEL: func.func @norm_then_linears
// CHECK: call @kiln_rms_norm_f32_256_eps{{.*}}_q8(
// CHECK-NOT: call @kiln_quantize_q8
// CHECK: call @kiln_linear_r16_generic_q4_k_256x32(
// CHECK-NOT: call @kiln_barrier
// CHECK: call @kiln_linear_r16_generic_q4_k_256x32(
// CHECK: return
func.func @norm_then_linears(%x: tensor<?x256xf32>) -> (tensor<?x32xf32>, tensor<?x32xf32>) attributes {kiln.max_tokens = 4} {
  %g = kiln.weight #kiln.external<"w.bin", offset = 4800, size = 1024> -> !kiln.weight<256xf32>
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 4736> -> !r16
  %h = kiln.rms_norm %x, %g {epsilon = 1.0e-5 : f32} : tensor<?x256xf32>, !kiln.weight<256xf32> -> tensor<?x256xf32>
  %y = kiln.linear %h, %w : tensor<?x256xf32>, !r16 -> tensor<?x32xf32>
  %z = kiln.linear %h, %w : tensor<?x256xf32>, !r16 -> tensor<?x32xf32>
  return %y, %z : tensor<?x32xf32>, tensor<?x32xf32>
}

// The gated MLP of a block: swiglu quantizes for the down projection, which
// adds the residual kiln-fuse gave it in its epilogue (no kiln_add kernel).
// CHECK-LABEL: func.func @mlp
// CHECK: call @kiln_swiglu_32_q8(
// CHECK-NOT: call @kiln_quantize_q8
// CHECK: call @kiln_linear_r16_generic_q4_0_32x256_residual(
// CHECK-NOT: call @kiln_add
// CHECK: return
!down = !kiln.weight<256x32x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_cpu.rows16>>
func.func @mlp(%x: tensor<?x256xf32>) -> tensor<?x256xf32> attributes {kiln.max_tokens = 4} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 4736> -> !r16
  %d = kiln.weight #kiln.external<"w.bin", offset = 4800, size = 5120> -> !down
  %g = kiln.linear %x, %w : tensor<?x256xf32>, !r16 -> tensor<?x32xf32>
  %u = kiln.linear %x, %w : tensor<?x256xf32>, !r16 -> tensor<?x32xf32>
  %s = kiln.swiglu %g, %u : tensor<?x32xf32>
  %o = kiln.linear %s, %d : tensor<?x32xf32>, !down -> tensor<?x256xf32>
  %z = kiln.add %x, %o : tensor<?x256xf32>
  return %z : tensor<?x256xf32>
}

// Llama-style RoPE (adjacent pairs) happens in the projection's epilogue;
// the table is filled first.
// CHECK-LABEL: func.func @projection_rope
// CHECK: call @kiln_rope_table_llama
// CHECK: call @kiln_linear_r16_generic_q4_k_256x64_rope32(
// CHECK-NOT: call @kiln_rope_llama
// CHECK: return
// CHECK: func.func private @kiln_linear_r16_generic_q4_k_256x32
!qw = !kiln.weight<64x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf, target_layout = #kiln_cpu.rows16>>
func.func @projection_rope(%x: tensor<?x256xf32>, %p: index) -> tensor<?x64xf32> attributes {kiln.max_tokens = 4} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 9472> -> !qw
  %q = kiln.linear %x, %w : tensor<?x256xf32>, !qw -> tensor<?x64xf32>
  %y = kiln.rope %q, %p {num_heads = 2, head_dim = 32, rotary_dim = 32, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32} : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
