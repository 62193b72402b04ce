// RUN: kiln-opt %s --split-input-file --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu -verify-diagnostics
// RUN: not kiln-opt %s --split-input-file --kiln-fuse=activation-bits=0 --kiln-plan-memory --convert-kiln-to-cpu 2>&1 | FileCheck %s --check-prefix=F32
// RUN: not kiln-opt %s --split-input-file --kiln-fuse --convert-kiln-to-cpu 2>&1 | FileCheck %s --check-prefix=NOPLAN

// Every error convert-kiln-to-cpu emits, one case each. The lowering reads
// kiln-plan-memory's slots, so the first RUN plans first; the errors about
// a missing or inconsistent plan and the rows16 error of f32 activations
// are checked on the other RUNs' diagnostics (F32, NOPLAN).
//
// Not reachable from valid IR (the dialect's verifiers reject the input
// first): "weight rows are not a whole number of quantization blocks",
// "K = ... is not a multiple of ...", "embedding width must be a multiple
// of ...", "dense weight rows must be a multiple of 16 values" (group, K
// and feature dims are checked by the types and ops), "this quantization
// scheme is not supported by the CPU lowering yet" (layout = gguf must be a
// ggml block, norms take dense weights only), and the internal "has no
// rope table (a planning bug)" and "the CPU lowering and WeightLayout.h
// disagree" errors.

//===----------------------------------------------------------------------===//
// Activation tensors: [tokens, features] f32, features a multiple of 16
//===----------------------------------------------------------------------===//

func.func @f16_activations(%x: tensor<?x64xf16>) -> tensor<?x64xf16> attributes {kiln.max_tokens = 8} {
  // expected-error @+1 {{the CPU lowering needs [tokens, features] f32 tensors with a static feature dimension, got 'tensor<?x64xf16>'}}
  %y = kiln.silu %x : tensor<?x64xf16>
  return %y : tensor<?x64xf16>
}

// -----

func.func @dynamic_features(%x: tensor<8x?xf32>) -> tensor<8x?xf32> attributes {kiln.max_tokens = 8} {
  // expected-error @+1 {{the CPU lowering needs [tokens, features] f32 tensors with a static feature dimension, got 'tensor<8x?xf32>'}}
  %y = kiln.silu %x : tensor<8x?xf32>
  return %y : tensor<8x?xf32>
}

// -----

func.func @rank3_activations(%x: tensor<?x2x32xf32>) -> tensor<?x2x32xf32> attributes {kiln.max_tokens = 8} {
  // expected-error @+1 {{the CPU lowering needs [tokens, features] f32 tensors with a static feature dimension, got 'tensor<?x2x32xf32>'}}
  %y = kiln.gelu %x : tensor<?x2x32xf32>
  return %y : tensor<?x2x32xf32>
}

// -----

func.func @features_not_16k(%x: tensor<?x24xf32>) -> tensor<?x24xf32> attributes {kiln.max_tokens = 8} {
  // expected-error @+1 {{the CPU lowering needs feature dimensions that are multiples of 16, got 24}}
  %y = kiln.silu %x : tensor<?x24xf32>
  return %y : tensor<?x24xf32>
}

//===----------------------------------------------------------------------===//
// Weights
//===----------------------------------------------------------------------===//

// -----

func.func @weight_argument(%x: tensor<?x64xf32>, %w: !kiln.weight<64x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  // expected-error @+1 {{weight operand must come from a kiln.weight in the same function}}
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !kiln.weight<64x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @inline_weight(%x: tensor<?x16xf32>) -> tensor<?x16xf32> attributes {kiln.max_tokens = 8} {
  // expected-error @+1 {{convert-kiln-to-cpu reads weights from one external file; inline sources are not supported yet (write them to a file and use #kiln.external)}}
  %g = kiln.weight dense<1.0> : tensor<16xf32> -> !kiln.weight<16xf32>
  %y = kiln.rms_norm %x, %g {epsilon = 1.0e-6 : f32} : tensor<?x16xf32>, !kiln.weight<16xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

func.func @two_files(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"a.bin", offset = 0, size = 16384> -> !kiln.weight<64x64xf32>
  // expected-error @+1 {{all weights of a function must come from one file (found "b.bin" after "a.bin")}}
  %g = kiln.weight #kiln.external<"b.bin", offset = 0, size = 256> -> !kiln.weight<64xf32>
  %h = kiln.rms_norm %x, %g {epsilon = 1.0e-6 : f32} : tensor<?x64xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  %y = kiln.linear %h, %w : tensor<?x64xf32>, !kiln.weight<64x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// 2^63: a valid #kiln.external offset, past what the lowering's index
// arithmetic holds.
func.func @offset_too_large(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  // expected-error @+1 {{weight offset is too large}}
  %g = kiln.weight #kiln.external<"w.bin", offset = 9223372036854775808, size = 256> -> !kiln.weight<64xf32>
  %y = kiln.rms_norm %x, %g {epsilon = 1.0e-6 : f32} : tensor<?x64xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

!s = !kiln.weight<64x64xf32, sparsity = #kiln.sparsity<kind = bitmap, nnz = 10>>
func.func @sparse_weight(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 552> -> !s
  // expected-error @+1 {{the CPU lowering reads compressed sparse weights only as 2:4 or bitmap Q4_0 or Q8_0, got '!kiln.weight<64x64xf32, sparsity = #kiln.sparsity<kind = bitmap, nnz = 10>>'}}
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !s -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

!s = !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = n_m, n = 4, m = 8>>
func.func @sparse_4_8(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 2048> -> !s
  // expected-error @+1 {{the CPU lowering reads compressed sparse weights only as 2:4 or bitmap Q4_0 or Q8_0, got}}
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !s -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Bitmap compressed 4-bit codes in Kiln's packed layout: no kernel reads them.
!s = !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = packed>, sparsity = #kiln.sparsity<kind = bitmap, nnz = 2048>>
func.func @bitmap_packed(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 1840> -> !s
  // expected-error @+1 {{the CPU lowering reads compressed sparse weights only as 2:4 or bitmap Q4_0 or Q8_0, got}}
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !s -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

!s = !kiln.weight<64x96x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4>>
func.func @sparse_k_96(%x: tensor<?x96xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 2688> -> !s
  // expected-error @+1 {{a compressed 2:4 weight needs K to be a multiple of 64, got 96}}
  %y = kiln.linear %x, %w : tensor<?x96xf32>, !s -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @f8_weight(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 4096> -> !kiln.weight<64x64xf8E4M3FN>
  // expected-error @+1 {{dense weights of this element type are not supported by the CPU lowering yet}}
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !kiln.weight<64x64xf8E4M3FN> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

!two_level = !kiln.weight<64x256x#kiln.quant<bits = 3, group = 32, scale = f32, super_group = 256, sub_scale_bits = 4>>
func.func @packed_two_level(%x: tensor<?x256xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 6656> -> !two_level
  // expected-error @+1 {{two-level packed schemes (super_group) are not supported by the CPU lowering yet}}
  %y = kiln.linear %x, %w : tensor<?x256xf32>, !two_level -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

!g16 = !kiln.weight<64x64x#kiln.quant<bits = 4, group = 16, scale = f16>>
func.func @packed_group_16(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 2560> -> !g16
  // expected-error @+1 {{the CPU lowering supports packed groups of a multiple of 32 values, got 16}}
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !g16 -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

!f8_scale = !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f8E4M3FN>>
func.func @packed_f8_scale(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 2176> -> !f8_scale
  // expected-error @+1 {{the CPU lowering supports packed scales and zeros of type f32, f16 or bf16 only}}
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !f8_scale -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @f16_bias(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 16384> -> !kiln.weight<64x64xf32>
  %b = kiln.weight #kiln.external<"w.bin", offset = 16384, size = 128> -> !kiln.weight<64xf16>
  // expected-error @+1 {{the CPU lowering needs an f32 bias}}
  %y = kiln.linear %x, %w, bias %b : tensor<?x64xf32>, !kiln.weight<64x64xf32>, !kiln.weight<64xf16> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @layer_norm_bias_type(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %g = kiln.weight #kiln.external<"w.bin", offset = 0, size = 256> -> !kiln.weight<64xf32>
  %b = kiln.weight #kiln.external<"w.bin", offset = 256, size = 128> -> !kiln.weight<64xf16>
  // expected-error @+1 {{the CPU lowering needs bias and weight of one type}}
  %y = kiln.layer_norm %x, %g, bias %b {epsilon = 1.0e-5 : f32} : tensor<?x64xf32>, !kiln.weight<64xf32>, !kiln.weight<64xf16> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// rows16 weights multiply int8 activations only (fine here, an error with
// float activations).
// F32: error: 'kiln.linear' op target_layout = #kiln_cpu.rows16 weights need activation_bits = 8 (kiln-fuse{activation-bits=8})
!rows16 = !kiln.weight<32x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf, target_layout = #kiln_cpu.rows16>>
func.func @rows16_f32(%x: tensor<?x256xf32>) -> tensor<?x32xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 4736> -> !rows16
  %y = kiln.linear %x, %w : tensor<?x256xf32>, !rows16 -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// So do compressed 2:4 weights (SparseLinear.cpp).
// F32: error: 'kiln.linear' op compressed sparse weights need activation_bits = 8 (kiln-fuse{activation-bits=8})
!sparse = !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4>>
func.func @sparse_f32(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 1792> -> !sparse
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !sparse -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

//===----------------------------------------------------------------------===//
// Scratch: the token bound, the plan
//===----------------------------------------------------------------------===//

// -----

// The returned result needs no slot (kiln-plan-memory is content), but the
// int8 activations of the layer need scratch for a bounded number of rows.
!q8_0 = !kiln.weight<64x64x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>>
func.func @int8_linear_unbounded(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 4352> -> !q8_0
  // expected-error @+1 {{'kiln.linear' op has a dynamic token dimension with no kiln.max_tokens bound}}
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !q8_0 -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// The same for the RoPE table.
func.func @rope_unbounded(%x: tensor<?x64xf32>, %p: index) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kiln.rope' op has a dynamic token dimension with no kiln.max_tokens bound}}
  %y = kiln.rope %x, %p {num_heads = 2, head_dim = 32, rotary_dim = 32, style = #kiln.rope_style<neox>, freq_base = 10000.0 : f32} : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Without kiln-plan-memory there is no plan; a hand-written one whose slot
// lies past its planned bytes is refused (kiln-plan-memory replaces it on
// the first RUN).
// NOPLAN: error: 'func.func' op has no scratch plan: run kiln-plan-memory before convert-kiln-to-cpu
// NOPLAN: error: 'kiln.silu' op kiln.slot lies past kiln.planned_bytes
func.func @slot_past_plan(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8, kiln.planned_bytes = 1024 : i64} {
  %a = kiln.silu %x {kiln.slot = array<i64: 0, 2048>} : tensor<?x64xf32>
  %b = kiln.silu %a : tensor<?x64xf32>
  return %b : tensor<?x64xf32>
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

// -----

func.func @f16_cache(%q: tensor<?x64xf32>, %k: tensor<?x32xf32>, %v: tensor<?x32xf32>, %c: !kiln.kv_cache<1x64x1x32xf16>, %p: index) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  // expected-error @+1 {{the CPU lowering needs an f32 KV cache}}
  %a = kiln.attention %q, %k, %v, %c[%p] {layer = 0, num_heads = 2, scale = 0.125 : f32} : tensor<?x64xf32>, tensor<?x32xf32>, tensor<?x32xf32>, !kiln.kv_cache<1x64x1x32xf16> -> tensor<?x64xf32>
  return %a : tensor<?x64xf32>
}

// -----

func.func @head_dim_8(%q: tensor<?x64xf32>, %k: tensor<?x16xf32>, %v: tensor<?x16xf32>, %c: !kiln.kv_cache<1x64x2x8xf32>, %p: index) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  // expected-error @+1 {{the CPU lowering needs head_dim to be a multiple of 16}}
  %a = kiln.attention %q, %k, %v, %c[%p] {layer = 0, num_heads = 8, scale = 0.125 : f32} : tensor<?x64xf32>, tensor<?x16xf32>, tensor<?x16xf32>, !kiln.kv_cache<1x64x2x8xf32> -> tensor<?x64xf32>
  return %a : tensor<?x64xf32>
}

//===----------------------------------------------------------------------===//
// Views
//===----------------------------------------------------------------------===//

// -----

func.func @column_slice(%x: tensor<?x64xf32>) -> tensor<?x32xf32> attributes {kiln.max_tokens = 8} {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>
  %y = kiln.silu %x : tensor<?x64xf32>
  // expected-error @+1 {{the CPU lowering supports slices of whole rows only}}
  %s = tensor.extract_slice %y[0, 0] [%t, 32] [1, 1] : tensor<?x64xf32> to tensor<?x32xf32>
  %z = kiln.silu %s : tensor<?x32xf32>
  return %z : tensor<?x32xf32>
}

// -----

func.func @strided_rows(%x: tensor<8x64xf32>) -> tensor<4x64xf32> attributes {kiln.max_tokens = 8} {
  %y = kiln.silu %x : tensor<8x64xf32>
  // expected-error @+1 {{the CPU lowering supports slices of whole rows with unit strides only}}
  %s = tensor.extract_slice %y[0, 0] [4, 64] [2, 1] : tensor<8x64xf32> to tensor<4x64xf32>
  %z = kiln.silu %s : tensor<4x64xf32>
  return %z : tensor<4x64xf32>
}

// -----

func.func @rank3_slice(%x: tensor<?x2x32xf32>) -> tensor<?x1x32xf32> attributes {kiln.max_tokens = 8} {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x2x32xf32>
  // expected-error @+1 {{the CPU lowering supports slices of whole rows with unit strides only}}
  %s = tensor.extract_slice %x[0, 0, 0] [%t, 1, 32] [1, 1, 1] : tensor<?x2x32xf32> to tensor<?x1x32xf32>
  %g = kiln.weight #kiln.external<"w.bin", offset = 0, size = 128> -> !kiln.weight<32xf32>
  %y = kiln.rms_norm %s, %g {epsilon = 1.0e-6 : f32} : tensor<?x1x32xf32>, !kiln.weight<32xf32> -> tensor<?x1x32xf32>
  return %y : tensor<?x1x32xf32>
}

//===----------------------------------------------------------------------===//
// Functions and ops
//===----------------------------------------------------------------------===//

// -----

func.func @unsupported_op(%c: tensor<?x64xi8>, %s: tensor<?x2xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  // expected-error @+1 {{'kiln.dequantize' op is not supported by convert-kiln-to-cpu}}
  %y = kiln.dequantize %c, %s {bits = 8, group = 32} : tensor<?x64xi8>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// kiln-plan-memory refuses it first; without it the lowering does.
// NOPLAN: error: 'func.func' op convert-kiln-to-cpu needs a single-block function
// expected-error @+1 {{kiln-plan-memory needs a single-block function}}
func.func @two_blocks(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %y = kiln.silu %x : tensor<?x64xf32>
  cf.br ^bb1
^bb1:
  return %y : tensor<?x64xf32>
}

// -----

// expected-error @+1 {{convert-kiln-to-cpu does not support unranked tensors}}
func.func @unranked_argument(%u: tensor<*xf32>, %x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %y = kiln.silu %x : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// expected-error @+1 {{results must be ranked tensors}}
func.func @index_result(%x: tensor<?x64xf32>) -> (tensor<?x64xf32>, index) attributes {kiln.max_tokens = 8} {
  %c0 = arith.constant 0 : index
  %y = kiln.silu %x : tensor<?x64xf32>
  %d = tensor.dim %y, %c0 : tensor<?x64xf32>
  return %y, %d : tensor<?x64xf32>, index
}

// -----

// A returned argument is copied into its out-parameter by a copy kernel of
// 16-lane rows.
func.func @uncopyable_result(%x: tensor<?x64xf32>, %z: tensor<?x24xf32>) -> (tensor<?x64xf32>, tensor<?x24xf32>) attributes {kiln.max_tokens = 8} {
  %y = kiln.silu %x : tensor<?x64xf32>
  // expected-error @+1 {{the CPU lowering can only copy [rows, 16k] f32 results into their buffers}}
  return %y, %z : tensor<?x64xf32>, tensor<?x24xf32>
}

// -----

// IQ4_NL in ggml's blocks (kiln-pack-weights not run): only the rows16 int8
// kernels look its codes up.
func.func @iq4_nl_unpacked(%x: tensor<?x64xf32>) -> tensor<?x16xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 576> -> !kiln.weight<16x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, codebook = iq4_nl>>
  // expected-error @+1 {{'kiln.linear' op iq4_nl weights are read by the int8 kernels only (kiln-compile --activations=int8, the default)}}
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !kiln.weight<16x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, codebook = iq4_nl>> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
