// RUN: kiln-opt %s --split-input-file --kiln-plan-memory --convert-kiln-to-cpu --verify-diagnostics | FileCheck %s
// RUN: kiln-opt %s --split-input-file --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu --verify-diagnostics | FileCheck %s --check-prefix=INT8

!q = !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf>>

// A result computed straight into its out-parameter; the intermediate gets
// a scratch slot; every kernel call is followed by a barrier.
// CHECK-LABEL: func.func @mlp
// CHECK-SAME: (%[[X:.*]]: memref<?x64xf32>, %[[OUT:.*]]: memref<?x64xf32>, %[[W:.*]]: memref<?xi8>, %[[S:.*]]: memref<?xi8>, %[[RT:.*]]: !llvm.ptr, %{{.*}}: i32, %{{.*}}: i32)
// CHECK-SAME: kiln.scratch_bytes = 2048
// CHECK-SAME: kiln.weight_file = "w.bin"
// CHECK-SAME: llvm.emit_c_interface
// CHECK: %[[C128:.*]] = arith.constant 128 : index
// CHECK: %[[VIEW:.*]] = memref.view %[[S]]
// CHECK: call @kiln_linear_q4_1_64x64({{.*}}, %[[W]], %{{.*}}, {{.*}})
// CHECK-NEXT: call @kiln_barrier(%[[RT]])
// CHECK: call @kiln_linear_q4_1_64x64({{.*}}, %[[W]], %[[C128]]
// CHECK: call @kiln_barrier(%[[RT]])
// CHECK: func.func private @kiln_linear_q4_1_64x64
// CHECK: vector.fma
// CHECK: func.func private @kiln_barrier(%{{.*}}: !llvm.ptr)
// CHECK: llvm.load
// CHECK: llvm.call
// With int8 activations the input is quantized once into the region after
// the planned buffers (2048 + 8 tokens x 2 blocks x 48 bytes), then each
// layer multiplies in integers.
// INT8-LABEL: func.func @mlp
// INT8-SAME: kiln.scratch_bytes = 2816
// INT8: call @kiln_quantize_q8_64
// INT8: call @kiln_barrier
// INT8: call @kiln_linear_q8_generic_q4_1_64x64
// INT8: call @kiln_quantize_q8_64
// INT8: call @kiln_linear_q8_generic_q4_1_64x64
// INT8: func.func private @kiln_quantize_q8_64
// INT8: math.roundeven
// INT8: arith.truncf {{.*}} to f16
func.func @mlp(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w1 = kiln.weight #kiln.external<"w.bin", offset = 0, size = 2560> -> !q
  %w2 = kiln.weight #kiln.external<"w.bin", offset = 128, size = 2560> -> !q
  %h = kiln.linear %x, %w1 : tensor<?x64xf32>, !q -> tensor<?x64xf32>
  %y = kiln.linear %h, %w2 : tensor<?x64xf32>, !q -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Values whose live ranges do not overlap share scratch; a slot stays
// reserved through the op after its last use (that op's kernel may still be
// reading it on another thread). %a (0), %b (2048), %c (4096), then %d
// reuses %a's bytes.
// CHECK-LABEL: func.func @reuse
// CHECK-SAME: kiln.scratch_bytes = 6144
func.func @reuse(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %a = kiln.silu %x : tensor<?x64xf32>
  %b = kiln.silu %a : tensor<?x64xf32>
  %c = kiln.silu %b : tensor<?x64xf32>
  %d = kiln.silu %c : tensor<?x64xf32>
  %e = kiln.add %d, %c : tensor<?x64xf32>
  return %e : tensor<?x64xf32>
}

// -----

// Kernels that neither read what the other writes nor write what it reads
// run without a barrier between them; a dependent one waits.
// CHECK-LABEL: func.func @independent
// CHECK: call @kiln_silu_64
// CHECK-NOT: call @kiln_barrier
// CHECK: call @kiln_gelu_tanh_64
// CHECK-NEXT: call @kiln_barrier
// CHECK: call @kiln_add_64
// CHECK-NEXT: call @kiln_barrier
// CHECK-NEXT: return
func.func @independent(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %a = kiln.silu %x : tensor<?x64xf32>
  %b = kiln.gelu %x : tensor<?x64xf32>
  %c = kiln.add %a, %b : tensor<?x64xf32>
  return %c : tensor<?x64xf32>
}

// -----

// A result tied to an argument is computed into that argument's buffer, and
// a row slice becomes a subview (the model's "logits of the last R rows").
// CHECK-LABEL: func.func @tied
// CHECK-SAME: (%[[X:.*]]: memref<?x64xf32>, %[[INIT:.*]]: memref<?x64xf32>, %{{.*}}: memref<?xi8>
// CHECK: memref.subview
// CHECK: call @kiln_silu_64(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}})
func.func @tied(%x: tensor<?x64xf32>, %init: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8, kiln.tied_results = [1]} {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>
  %r = tensor.dim %init, %c0 : tensor<?x64xf32>
  %off = arith.subi %t, %r : index
  %last = tensor.extract_slice %x[%off, 0] [%r, 64] [1, 1] : tensor<?x64xf32> to tensor<?x64xf32>
  %y = kiln.silu %last : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// A per-head norm: tensor.expand_shape / collapse_shape are views of their
// source's buffer (no slot, the source stays live while they are used), and
// the rank-3 rms_norm runs as [tokens * heads, head_dim] rows. Slots: %a at
// 0, %n at 2048 (the views of %a keep it live through the norm).
// CHECK-LABEL: func.func @per_head_norm
// CHECK-SAME: kiln.scratch_bytes = 4096
// CHECK: call @kiln_silu_64
// CHECK: %[[A3:.*]] = memref.expand_shape %{{.*}} {{\[\[}}0], [1, 2]] output_shape [%{{.*}}, 2, 32]
// CHECK: %[[N3:.*]] = memref.view
// CHECK-DAG: %[[A2:.*]] = memref.collapse_shape %[[A3]] {{\[\[}}0, 1], [2]]
// CHECK-DAG: %[[N2:.*]] = memref.collapse_shape %[[N3]] {{\[\[}}0, 1], [2]]
// CHECK: call @kiln_rms_norm_f32_32_eps{{.*}}(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}})
// CHECK: memref.collapse_shape %[[N3]] {{\[\[}}0], [1, 2]]
// CHECK: call @kiln_silu_64
func.func @per_head_norm(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %g = kiln.weight #kiln.external<"w.bin", offset = 0, size = 128> -> !kiln.weight<32xf32>
  %a = kiln.silu %x : tensor<?x64xf32>
  %c0 = arith.constant 0 : index
  %t = tensor.dim %a, %c0 : tensor<?x64xf32>
  %a3 = tensor.expand_shape %a [[0], [1, 2]] output_shape [%t, 2, 32] : tensor<?x64xf32> into tensor<?x2x32xf32>
  %n3 = kiln.rms_norm %a3, %g {epsilon = 1.0e-6 : f32} : tensor<?x2x32xf32>, !kiln.weight<32xf32> -> tensor<?x2x32xf32>
  %n = tensor.collapse_shape %n3 [[0], [1, 2]] : tensor<?x2x32xf32> into tensor<?x64xf32>
  %y = kiln.silu %n : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

!w = !kiln.weight<64x64xf32>
func.func @two_files(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w1 = kiln.weight #kiln.external<"a.bin", offset = 0, size = 16384> -> !w
  // expected-error @+1 {{all weights of a function must come from one file}}
  %w2 = kiln.weight #kiln.external<"b.bin", offset = 0, size = 16384> -> !w
  %y = kiln.linear %x, %w1 : tensor<?x64xf32>, !w -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @unbounded(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{dynamic dimension with no kiln.max_tokens bound}}
  %a = kiln.silu %x : tensor<?x64xf32>
  %b = kiln.silu %a : tensor<?x64xf32>
  return %b : tensor<?x64xf32>
}

// -----

!s = !kiln.weight<64x64xf32, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4>>
func.func @sparse(%x: tensor<?x64xf32>, %w: !s) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  // expected-error @+1 {{weight operand must come from a kiln.weight}}
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !s -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// A kernel's identity is its code: rope tables of bases 10000.5 and 10000
// (one family name, the base truncated in it) are two kernels; the third
// rope reuses the first table's kernel. Found when two ops differing only in
// a constant ran the first one's kernel.
// CHECK-LABEL: func.func @two_rope_bases
// CHECK: call @[[TABLE_A:kiln_rope_table_llama_0x0_r64_b10000_s1000000]](
// CHECK: call @[[TABLE_B:kiln_rope_table_llama_0x0_r64_b10000_s1000000_1]](
// CHECK-NOT: call @kiln_rope_table
// CHECK: func.func private @[[TABLE_A]](
// CHECK: arith.constant 7.498930e-01 : f32
// CHECK: func.func private @[[TABLE_B]](
// CHECK: arith.constant 0.749894201 : f32
func.func @two_rope_bases(%x: tensor<?x128xf32>, %p: index) -> tensor<?x128xf32> attributes {kiln.max_tokens = 8} {
  %a = kiln.rope %x, %p {num_heads = 2, head_dim = 64, rotary_dim = 64, style = #kiln.rope_style<neox>, freq_base = 10000.5 : f32} : tensor<?x128xf32> -> tensor<?x128xf32>
  %b = kiln.rope %a, %p {num_heads = 2, head_dim = 64, rotary_dim = 64, style = #kiln.rope_style<neox>, freq_base = 10000.0 : f32} : tensor<?x128xf32> -> tensor<?x128xf32>
  %c = kiln.rope %b, %p {num_heads = 2, head_dim = 64, rotary_dim = 64, style = #kiln.rope_style<neox>, freq_base = 10000.5 : f32} : tensor<?x128xf32> -> tensor<?x128xf32>
  return %c : tensor<?x128xf32>
}
