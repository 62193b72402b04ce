// RUN: kiln-opt %s --split-input-file "--kiln-fuse=rope-epilogue=false activation-bits=0" --kiln-plan-memory --convert-kiln-to-gpu | FileCheck %s --implicit-check-not=math.cos --implicit-check-not=math.sin --implicit-check-not=math.exp

// One warp per (token, head), grid (T, heads): lane i rotates pairs i, i +
// 32, ... by (position + t) * scale * base^(-2i / rotary_dim). cos, sin and
// exp become polynomials (no libdevice): none may remain.
// NeoX pairs (i, i + 32) of a 64-dim head.
// CHECK-LABEL: func.func @neox(
// CHECK-SAME: %[[POS:[^:]*]]: index
// CHECK-SAME: kiln.cuda_kernels = ["kiln_rope_neox_2x64_r64_b10000_s1"]
// CHECK: %[[HEADS:.*]] = arith.constant 2 : index
// CHECK: arith.index_castui %[[POS]] : index to i64
// CHECK: arith.index_castui %[[HEADS]] : index to i32
// CHECK: gpu.func @kiln_rope_neox_2x64_r64_b10000_s1(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: index) kernel
// CHECK: %[[T:.*]] = gpu.block_id  x
// CHECK: %[[H:.*]] = gpu.block_id  y
// CHECK: scf.for %[[I:.*]] = %{{.*}} to %c32
// CHECK: %[[A:.*]] = arith.addi %{{.*}}, %[[I]] : index
// CHECK: %[[C:.*]] = arith.addi %[[A]], %c32 : index
// CHECK: memref.load %{{.*}}[%[[A]]]
// CHECK: memref.load %{{.*}}[%[[C]]]
func.func @neox(%x: tensor<?x128xf32>, %pos: index) -> tensor<?x128xf32> attributes {kiln.max_tokens = 8} {
  %y = kiln.rope %x, %pos {freq_base = 1.000000e+04 : f32, head_dim = 64 : i64, num_heads = 2 : i64, rotary_dim = 64 : i64, style = #kiln.rope_style<neox>} : tensor<?x128xf32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// Llama pairs (2i, 2i + 1); dims past rotary_dim = 32 pass through.
// CHECK-LABEL: func.func @llama_partial(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_rope_llama_2x64_r32_b500000_s0p5"]
// CHECK: gpu.func @kiln_rope_llama_2x64_r32_b500000_s0p5(
// CHECK: scf.for %[[I:.*]] = %{{.*}} to %c16
// CHECK: %[[TWICE:.*]] = arith.muli %[[I]], %c2 : index
// CHECK: %[[A:.*]] = arith.addi %{{.*}}, %[[TWICE]] : index
// CHECK: %[[C:.*]] = arith.addi %[[A]], %c1 : index
// CHECK: memref.store %{{.*}}[%[[C]]]
// CHECK: scf.for %[[D:.*]] = %{{.*}} to %c64
// CHECK: memref.store
func.func @llama_partial(%x: tensor<?x128xf32>, %pos: index) -> tensor<?x128xf32> attributes {kiln.max_tokens = 8} {
  %y = kiln.rope %x, %pos {freq_base = 5.000000e+05 : f32, freq_scale = 0.5 : f32, head_dim = 64 : i64, num_heads = 2 : i64, rotary_dim = 32 : i64, style = #kiln.rope_style<llama>} : tensor<?x128xf32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}
