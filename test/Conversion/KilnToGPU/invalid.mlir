// RUN: kiln-opt %s --split-input-file "--kiln-fuse=rope-epilogue=false activation-bits=0" --kiln-plan-memory --convert-kiln-to-gpu -verify-diagnostics
// RUN: not kiln-opt %s --split-input-file --convert-kiln-to-gpu 2>&1 | FileCheck %s --check-prefix=NOPLAN

// The errors convert-kiln-to-gpu emits, one case each. The lowering reads
// kiln-plan-memory's slots, so the first RUN plans first; the second checks
// the error of a missing plan.
// NOPLAN: error: 'func.func' op has no scratch plan: run kiln-plan-memory before convert-kiln-to-gpu

func.func @f16_activations(%x: tensor<?x64xf16>) -> tensor<?x64xf16> attributes {kiln.max_tokens = 8} {
  // expected-error @+1 {{the GPU lowering needs [tokens, features] f32 tensors with a static feature dimension, got 'tensor<?x64xf16>'}}
  %y = kiln.silu %x : tensor<?x64xf16>
  return %y : tensor<?x64xf16>
}

// -----

func.func @k_not_32(%x: tensor<?x48xf32>) -> tensor<?x16xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 3072> -> !kiln.weight<16x48xf32>
  // expected-error @+1 {{the GPU lowering needs a feature dimension that is a multiple of 32, got 48}}
  %y = kiln.linear %x, %w : tensor<?x48xf32>, !kiln.weight<16x48xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

!q2_k = !kiln.weight<16x256x#kiln.quant<bits = 2, group = 16, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 4, layout = gguf>>
func.func @q2_K(%x: tensor<?x256xf32>) -> tensor<?x16xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 1344> -> !q2_k
  // expected-error @+1 {{this weight encoding is not supported by the GPU lowering yet (f32, f16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q6_K)}}
  %y = kiln.linear %x, %w : tensor<?x256xf32>, !q2_k -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

func.func @bf16_weight(%x: tensor<?x64xf32>) -> tensor<?x16xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 2048> -> !kiln.weight<16x64xbf16>
  // expected-error @+1 {{dense weights of this element type are not supported by the GPU lowering yet (f32, f16)}}
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !kiln.weight<16x64xbf16> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

func.func @f16_bias(%x: tensor<?x64xf32>) -> tensor<?x16xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 4096> -> !kiln.weight<16x64xf32>
  %b = kiln.weight #kiln.external<"w.bin", offset = 4096, size = 32> -> !kiln.weight<16xf16>
  // expected-error @+1 {{the GPU lowering needs an f32 bias}}
  %y = kiln.linear %x, %w, bias %b : tensor<?x64xf32>, !kiln.weight<16x64xf32>, !kiln.weight<16xf16> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

func.func @f16_norm_weight(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 128> -> !kiln.weight<64xf16>
  // expected-error @+1 {{the GPU lowering needs an f32 norm weight}}
  %y = kiln.rms_norm %x, %w {epsilon = 1.0e-5 : f32} : tensor<?x64xf32>, !kiln.weight<64xf16> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @head_dim_16(%q: tensor<?x32xf32>, %k: tensor<?x16xf32>, %v: tensor<?x16xf32>, %c: !kiln.kv_cache<1x64x1x16xf32>, %p: index) -> tensor<?x32xf32> attributes {kiln.max_tokens = 8} {
  // expected-error @+1 {{the GPU lowering needs head_dim to be a multiple of 32, got 16}}
  %y = kiln.attention %q, %k, %v, %c[%p] {layer = 0 : i64, num_heads = 2 : i64, scale = 0.25 : f32} : tensor<?x32xf32>, tensor<?x16xf32>, tensor<?x16xf32>, !kiln.kv_cache<1x64x1x16xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

func.func @softmax(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  // expected-error @+1 {{'kiln.softmax' op is not supported by convert-kiln-to-gpu}}
  %y = kiln.softmax %x : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @two_files(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %a = kiln.weight #kiln.external<"a.bin", offset = 0, size = 256> -> !kiln.weight<64xf32>
  // expected-error @+1 {{all weights of a function must come from one file (found "b.bin" after "a.bin")}}
  %b = kiln.weight #kiln.external<"b.bin", offset = 0, size = 256> -> !kiln.weight<64xf32>
  %y = kiln.rms_norm %x, %a {epsilon = 1.0e-5 : f32} : tensor<?x64xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  %z = kiln.rms_norm %y, %b {epsilon = 1.0e-5 : f32} : tensor<?x64xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  return %z : tensor<?x64xf32>
}

// -----

func.func @column_slice(%x: tensor<?x64xf32>) -> tensor<?x32xf32> attributes {kiln.max_tokens = 8} {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>
  // expected-error @+1 {{the GPU lowering supports slices of whole rows with unit strides only}}
  %y = tensor.extract_slice %x[0, 0] [%t, 32] [1, 1] : tensor<?x64xf32> to tensor<?x32xf32>
  %z = kiln.silu %y : tensor<?x32xf32>
  return %z : tensor<?x32xf32>
}

// -----

func.func @first(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %y = kiln.silu %x : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
// expected-error @+1 {{'func.func' op convert-kiln-to-gpu lowers one step function per module (its kernels are the manifest's list)}}
func.func @second(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %y = kiln.silu %x : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @rope_epilogue_scaling(%x: tensor<?x64xf32>, %p: index) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 16384> -> !kiln.weight<64x64xf32>
  // expected-error @+1 {{'kiln.linear' op freq_factors and magnitude (Llama 3 and YaRN rope scaling) are not supported by the CUDA lowering yet}}
  %y = kiln.linear %x, %w rope(%p, #kiln.rope<num_heads = 2, head_dim = 32, rotary_dim = 32, style = llama, freq_base = 10000.0, freq_scale = 1.0, magnitude = 1.25>) : tensor<?x64xf32>, !kiln.weight<64x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @rope_scaling(%x: tensor<?x64xf32>, %p: index) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  // expected-error @+1 {{'kiln.rope' op freq_factors and magnitude (Llama 3 and YaRN rope scaling) are not supported by the CUDA lowering yet}}
  %y = kiln.rope %x, %p {num_heads = 2, head_dim = 32, rotary_dim = 32, style = #kiln.rope_style<neox>, freq_base = 10000.0 : f32, magnitude = 1.25 : f32} : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// The split layout's codes are read with 128-bit loads.
func.func @split_unaligned(%x: tensor<?x64xf32>) -> tensor<?x16xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 8, size = 576> -> !kiln.weight<16x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  // expected-error @+1 {{reads a weight in #kiln_gpu.split at byte 8, which is not 16-byte aligned}}
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !kiln.weight<16x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
