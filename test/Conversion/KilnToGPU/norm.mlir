// RUN: kiln-opt %s --split-input-file "--kiln-fuse=rope-epilogue=false activation-bits=0" --kiln-plan-memory --convert-kiln-to-gpu | FileCheck %s

// One warp per row: the sum of squares over the lanes' columns, a
// shuffle-xor sum, 1 / sqrt(mean + eps) with PTX's sqrt.rn.f32 (inline, no
// libdevice), then the scaled row times the f32 weight.
// CHECK-LABEL: func.func @rms_norm(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_rms_norm_64_eps1em05"]
// CHECK: gpu.func @kiln_rms_norm_64_eps1em05(
// CHECK-DAG: %[[EPS:.*]] = arith.constant 9.99999974E-6 : f32
// CHECK-DAG: %[[DIM:.*]] = arith.constant 6.400000e+01 : f32
// CHECK: scf.for
// CHECK: llvm.intr.fma
// CHECK-COUNT-5: gpu.shuffle  xor
// CHECK: %[[MEAN:.*]] = arith.divf %{{.*}}, %[[DIM]] : f32
// CHECK: %[[SUM:.*]] = arith.addf %[[MEAN]], %[[EPS]] : f32
// CHECK: llvm.inline_asm "sqrt.rn.f32 $0, $1;", "=f,f" %[[SUM]] : (f32) -> f32
// CHECK: scf.for
// CHECK: memref.store
func.func @rms_norm(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 256> -> !kiln.weight<64xf32>
  %y = kiln.rms_norm %x, %w {epsilon = 1.0e-5 : f32} : tensor<?x64xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// A per-head norm of [T, 2, 32] runs as T * 2 rows of 32: the host's grid
// is dim 0 times dim 1 of the view. The returned collapse of the norm is
// copied into the result buffer.
// CHECK-LABEL: func.func @per_head(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_rms_norm_32_eps1em06", "kiln_copy"]
// CHECK: %[[X:.*]] = memref.expand_shape
// CHECK: %[[H:.*]] = memref.dim %[[X]], %c1{{.*}} : memref<?x2x32xf32>
// CHECK: %[[ROWS:.*]] = arith.muli %{{.*}}, %[[H]] : index
// CHECK: arith.index_castui %[[ROWS]] : index to i32
func.func @per_head(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 128> -> !kiln.weight<32xf32>
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>
  %h = tensor.expand_shape %x [[0], [1, 2]] output_shape [%t, 2, 32] : tensor<?x64xf32> into tensor<?x2x32xf32>
  %n = kiln.rms_norm %h, %w {epsilon = 1.0e-6 : f32} : tensor<?x2x32xf32>, !kiln.weight<32xf32> -> tensor<?x2x32xf32>
  %y = tensor.collapse_shape %n [[0], [1, 2]] : tensor<?x2x32xf32> into tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
