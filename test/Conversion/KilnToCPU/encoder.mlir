// RUN: kiln-opt %s --split-input-file --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu | FileCheck %s

// The encoder ops' kernels: position rows clamped to the table, the
// token-type row (step 0) the same for every token, and the mean pool
// computed by one thread with its L2 norm.

// CHECK-LABEL: func.func @position_embedding(
// CHECK: call @kiln_position_embedding_f32_512x64_step1(
// CHECK: call @kiln_position_embedding_f32_2x64_step0(
// CHECK-LABEL: func.func private @kiln_position_embedding_f32_512x64_step1(
// CHECK-DAG: %[[LAST:.*]] = arith.constant 511 : index
// CHECK: scf.for %[[T:.*]] = %{{.*}} to %{{.*}} step
// CHECK: %[[POS:.*]] = arith.addi %{{.*}}, %[[T]] : index
// CHECK: arith.minui %[[POS]], %[[LAST]] : index
// CHECK: arith.addf %{{.*}} : vector<16xf32>
// CHECK-LABEL: func.func private @kiln_position_embedding_f32_2x64_step0(
// CHECK-SAME: memref<?xi8>, %{{[^:]*}}: index,
// CHECK-SAME: %[[P0:[^:]*]]: index, %{{[^:]*}}: memref<?x64xf32
// CHECK: arith.minui %[[P0]], %{{.*}} : index
func.func @position_embedding(%x: tensor<?x64xf32>, %p: index, %out: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8, kiln.tied_results = [2]} {
  %c0 = arith.constant 0 : index
  %t = kiln.weight #kiln.external<"w.bin", offset = 0, size = 131072> -> !kiln.weight<512x64xf32>
  %types = kiln.weight #kiln.external<"w.bin", offset = 131072, size = 512> -> !kiln.weight<2x64xf32>
  %y = kiln.position_embedding %x, %t[%p] : tensor<?x64xf32>, !kiln.weight<512x64xf32> -> tensor<?x64xf32>
  %z = kiln.position_embedding %y, %types[%c0] {step = 0 : i64} : tensor<?x64xf32>, !kiln.weight<2x64xf32> -> tensor<?x64xf32>
  return %z : tensor<?x64xf32>
}

// -----

// CHECK-LABEL: func.func @mean_pool(
// CHECK: call @kiln_mean_pool_64_normalize(
// CHECK-LABEL: func.func private @kiln_mean_pool_64_normalize(
// CHECK: arith.sitofp
// CHECK: math.sqrt
// CHECK: arith.maximumf %{{.*}}, %{{.*}} : f32
func.func @mean_pool(%x: tensor<?x64xf32>, %out: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8, kiln.tied_results = [1]} {
  %y = kiln.mean_pool %x {normalize = true} : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
