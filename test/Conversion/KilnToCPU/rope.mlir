// RUN: kiln-opt %s --split-input-file --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu | FileCheck %s
// RUN: kiln-opt %s --split-input-file --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu --cse | FileCheck %s --check-prefix=INPLACE

// The RoPE kernels' emitted IR: a table kernel computes cos/sin once per
// position and frequency (theta_i by repeated multiplication, as ggml), the
// rope kernels only read the table.

// Two ropes of one frequency set and position share one table, filled once.
// CHECK-LABEL: func.func @neox_then_llama(
// CHECK: call @kiln_rope_table_llama_0x0_r32_b10000_s1000000(%{{.*}}, %{{.*}}, %{{.*}}, %[[TABLE:.*]], %{{.*}}, %{{.*}})
// CHECK: call @kiln_rope_neox_2x64_r32_b10000_s1000000(%{{.*}}, %{{.*}}, %[[TABLE]], %{{.*}}, %{{.*}}, %{{.*}})
// CHECK-NOT: call @kiln_rope_table
// CHECK: call @kiln_rope_llama_2x64_r32_b10000_s1000000(%{{.*}}, %{{.*}}, %[[TABLE]], %{{.*}}, %{{.*}}, %{{.*}})

// theta_0 = position, theta_{i+1} = theta_i * 10000^(-2/32); (cos, sin)
// pairs of rotary_dim / 2 = 16 angles per token.
// CHECK-LABEL: func.func private @kiln_rope_table_llama_0x0_r32_b10000_s1000000(
// CHECK-DAG: %[[STEP:.*]] = arith.constant 0.562341332 : f32
// CHECK-DAG: %[[HALF:.*]] = arith.constant 16 : index
// CHECK: %[[VIEW:.*]] = memref.view %{{.*}} : memref<?xi8> to memref<?xf32>
// CHECK: scf.for
// CHECK: %[[POS:.*]] = arith.sitofp %{{.*}} : i64 to f32
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[HALF]] step %{{.*}} iter_args(%[[THETA:.*]] = %[[POS]]) -> (f32)
// CHECK: %[[COS:.*]] = math.cos %[[THETA]] : f32
// CHECK: memref.store %[[COS]], %[[VIEW]]
// CHECK: %[[SIN:.*]] = math.sin %[[THETA]] : f32
// CHECK: memref.store %[[SIN]], %[[VIEW]]
// CHECK: %[[NEXT:.*]] = arith.mulf %[[THETA]], %[[STEP]] : f32
// CHECK: scf.yield %[[NEXT]] : f32

// NeoX pairs (i, i + rotary_dim / 2) of each head; the last 32 dimensions
// of a head pass through.
// CHECK-LABEL: func.func private @kiln_rope_neox_2x64_r32_b10000_s1000000(
// CHECK-NOT: math.cos
// CHECK-NOT: math.sin
// CHECK-DAG: %[[C16:.*]] = arith.constant 16 : index
// CHECK-DAG: %[[C32:.*]] = arith.constant 32 : index
// CHECK-DAG: %[[C64:.*]] = arith.constant 64 : index
// CHECK: %[[VIEW:.*]] = memref.view %{{.*}} : memref<?xi8> to memref<?xf32>
// CHECK: scf.for %[[I:.*]] = %{{.*}} to %[[C16]] step
// CHECK: %[[COS:.*]] = memref.load %[[VIEW]][%{{.*}}] : memref<?xf32>
// CHECK: %[[SIN:.*]] = memref.load %[[VIEW]][%{{.*}}] : memref<?xf32>
// CHECK: %[[A:.*]] = arith.addi %{{.*}}, %[[I]] : index
// CHECK: %[[B:.*]] = arith.addi %[[A]], %[[C16]] : index
// CHECK: %[[X0:.*]] = memref.load %{{.*}}[%{{.*}}, %[[A]]]
// CHECK: %[[X1:.*]] = memref.load %{{.*}}[%{{.*}}, %[[B]]]
// CHECK: %[[X0C:.*]] = arith.mulf %[[X0]], %[[COS]] : f32
// CHECK: %[[X1S:.*]] = arith.mulf %[[X1]], %[[SIN]] : f32
// CHECK: %[[R0:.*]] = arith.subf %[[X0C]], %[[X1S]] : f32
// CHECK: memref.store %[[R0]], %{{.*}}[%{{.*}}, %[[A]]]
// CHECK: %[[X0S:.*]] = arith.mulf %[[X0]], %[[SIN]] : f32
// CHECK: %[[X1C:.*]] = arith.mulf %[[X1]], %[[COS]] : f32
// CHECK: %[[R1:.*]] = arith.addf %[[X0S]], %[[X1C]] : f32
// CHECK: memref.store %[[R1]], %{{.*}}[%{{.*}}, %[[B]]]
// CHECK: scf.for %{{.*}} = %[[C32]] to %[[C64]] step
// CHECK: memref.load
// CHECK: memref.store

// Llama pairs (2i, 2i + 1).
// CHECK-LABEL: func.func private @kiln_rope_llama_2x64_r32_b10000_s1000000(
// CHECK-NOT: math.cos
// CHECK-DAG: %[[C1:.*]] = arith.constant 1 : index
// CHECK-DAG: %[[C2:.*]] = arith.constant 2 : index
// CHECK-DAG: %[[C16:.*]] = arith.constant 16 : index
// CHECK: scf.for %[[I:.*]] = %{{.*}} to %[[C16]] step
// CHECK: memref.load %{{.*}}[%{{.*}}] : memref<?xf32>
// CHECK: memref.load %{{.*}}[%{{.*}}] : memref<?xf32>
// CHECK: %[[TWICE:.*]] = arith.muli %[[I]], %[[C2]] : index
// CHECK: %[[A:.*]] = arith.addi %{{.*}}, %[[TWICE]] : index
// CHECK: %[[B:.*]] = arith.addi %[[A]], %[[C1]] : index
// CHECK: memref.load %{{.*}}[%{{.*}}, %[[A]]]
// CHECK: memref.load %{{.*}}[%{{.*}}, %[[B]]]
// CHECK: arith.subf
// CHECK: memref.store %{{.*}}, %{{.*}}[%{{.*}}, %[[A]]]
// CHECK: arith.addf
// CHECK: memref.store %{{.*}}, %{{.*}}[%{{.*}}, %[[B]]]
// CHECK-NOT: math.sin
func.func @neox_then_llama(%x: tensor<?x128xf32>, %p: index) -> tensor<?x128xf32> attributes {kiln.max_tokens = 8} {
  %a = kiln.rope %x, %p {num_heads = 2, head_dim = 64, rotary_dim = 32, style = #kiln.rope_style<neox>, freq_base = 10000.0 : f32} : tensor<?x128xf32> -> tensor<?x128xf32>
  %b = kiln.rope %a, %p {num_heads = 2, head_dim = 64, rotary_dim = 32, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32} : tensor<?x128xf32> -> tensor<?x128xf32>
  return %b : tensor<?x128xf32>
}

// -----

// Llama-style RoPE in a rows16 projection's epilogue: the 16 rows of a
// vector are 8 adjacent pairs of one head, rotated with the table's 8
// (cos, sin) pairs: y = x * cos + swap(x) * (sin * [-1, 1, ...]).
!qw = !kiln.weight<64x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf, target_layout = #kiln_cpu.rows16>>
// CHECK-LABEL: func.func @projection_rope(
// CHECK: call @kiln_rope_table_llama_0x0_r32_b10000_s1000000(
// CHECK: call @kiln_linear_r16_generic_q4_k_256x64_rope32(
// CHECK-NOT: call @kiln_rope_llama
// CHECK-LABEL: func.func private @kiln_linear_r16_generic_q4_k_256x64_rope32(
// CHECK: %[[SIGN:.*]] = arith.constant dense<[-1.000000e+00, 1.000000e+00, -1.000000e+00, {{.*}}, 1.000000e+00]> : vector<16xf32>
// CHECK: %[[ACC:.*]] = scf.for {{.*}} -> (vector<16xf32>)
// CHECK: scf.yield
// CHECK: %[[CS:.*]] = vector.load %{{.*}}[%{{.*}}] : memref<?xf32>, vector<16xf32>
// CHECK: %[[COS:.*]] = vector.shuffle %[[CS]], %[[CS]] [0, 0, 2, 2, 4, 4, 6, 6, 8, 8, 10, 10, 12, 12, 14, 14] : vector<16xf32>, vector<16xf32>
// CHECK: %[[SIN:.*]] = vector.shuffle %[[CS]], %[[CS]] [1, 1, 3, 3, 5, 5, 7, 7, 9, 9, 11, 11, 13, 13, 15, 15] : vector<16xf32>, vector<16xf32>
// CHECK: %[[SWAP:.*]] = vector.shuffle %[[ACC]], %[[ACC]] [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14] : vector<16xf32>, vector<16xf32>
// CHECK: %[[XC:.*]] = arith.mulf %[[ACC]], %[[COS]] : vector<16xf32>
// CHECK: %[[SS:.*]] = arith.mulf %[[SIN]], %[[SIGN]] : vector<16xf32>
// CHECK: %[[XS:.*]] = arith.mulf %[[SWAP]], %[[SS]] : vector<16xf32>
// CHECK: %[[Y:.*]] = arith.addf %[[XC]], %[[XS]] : vector<16xf32>
// CHECK: vector.store %[[Y]], %{{.*}} : memref<?x64xf32, strided<[64, 1], offset: ?>>, vector<16xf32>
func.func @projection_rope(%x: tensor<?x256xf32>, %p: index) -> tensor<?x64xf32> attributes {kiln.max_tokens = 4} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 9472> -> !qw
  %q = kiln.linear %x, %w : tensor<?x256xf32>, !qw -> tensor<?x64xf32>
  %y = kiln.rope %q, %p {num_heads = 2, head_dim = 32, rotary_dim = 32, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32} : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// kiln-fuse's rope epilogue on a projection whose kernel has none (f32
// weights): the product, then the rope kernel rotating it in place.
// INPLACE-LABEL: func.func @rope_after_product(
// INPLACE: call @kiln_linear_f32_32x64(%{{.*}}, %{{.*}}, %{{.*}}, %[[Y:[^,]*]], %{{.*}}, %{{.*}})
// INPLACE: call @kiln_rope_table_llama_0x0_r32_b10000_s1000000(
// INPLACE: call @kiln_rope_llama_2x32_r32_b10000_s1000000(%[[Y]], %{{.*}}, %{{.*}}, %[[Y]], %{{.*}}, %{{.*}})
// INPLACE: return
func.func @rope_after_product(%x: tensor<?x32xf32>, %p: index) -> tensor<?x64xf32> attributes {kiln.max_tokens = 4} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 8192> -> !kiln.weight<64x32xf32>
  %y = kiln.linear %x, %w rope(%p, #kiln.rope<num_heads = 2, head_dim = 32, rotary_dim = 32, style = llama, freq_base = 10000.0, freq_scale = 1.0>) : tensor<?x32xf32>, !kiln.weight<64x32xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Per-frequency factors and a magnitude (Llama 3, YaRN): the table kernel,
// named by them, unrolls its frequencies with angle theta_i * factor_i and
// scales cos and sin; the rotation kernel is the plain one.
// CHECK-LABEL: func.func @scaled(
// CHECK: call @kiln_rope_table_llama_0x0_r4_b10000_s1000000_f{{[0-9a-f]+}}_m3fa00000(
// CHECK: call @kiln_rope_neox_1x16_r4_b10000_s1000000(
// CHECK-LABEL: func.func private @kiln_rope_table_llama_0x0_r4_b10000_s1000000_f{{[0-9a-f]+}}_m3fa00000(
// CHECK-DAG: %[[STEP:.*]] = arith.constant 0.00999999977 : f32
// CHECK-DAG: %[[F0:.*]] = arith.constant 5.000000e-01 : f32
// CHECK-DAG: %[[F1:.*]] = arith.constant 2.500000e-01 : f32
// CHECK-DAG: %[[MAG:.*]] = arith.constant 1.250000e+00 : f32
// CHECK: %[[POS:.*]] = arith.sitofp %{{.*}} : i64 to f32
// CHECK: %[[A0:.*]] = arith.mulf %[[POS]], %[[F0]] : f32
// CHECK: %[[COS0:.*]] = math.cos %[[A0]] : f32
// CHECK: %[[SIN0:.*]] = math.sin %[[A0]] : f32
// CHECK: %[[MCOS0:.*]] = arith.mulf %[[COS0]], %[[MAG]] : f32
// CHECK: %[[MSIN0:.*]] = arith.mulf %[[SIN0]], %[[MAG]] : f32
// CHECK: memref.store %[[MCOS0]]
// CHECK: memref.store %[[MSIN0]]
// CHECK: %[[THETA1:.*]] = arith.mulf %[[POS]], %[[STEP]] : f32
// CHECK: %[[A1:.*]] = arith.mulf %[[THETA1]], %[[F1]] : f32
// CHECK: math.cos %[[A1]] : f32
// CHECK-NOT: scf.for %{{.*}} iter_args
func.func @scaled(%x: tensor<?x16xf32>, %p: index) -> tensor<?x16xf32> attributes {kiln.max_tokens = 8} {
  %y = kiln.rope %x, %p {num_heads = 1, head_dim = 16, rotary_dim = 4, style = #kiln.rope_style<neox>, freq_base = 10000.0 : f32, freq_factors = array<f32: 0.5, 0.25>, magnitude = 1.25 : f32} : tensor<?x16xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
