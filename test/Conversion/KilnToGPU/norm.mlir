// RUN: kiln-opt %s --split-input-file "--kiln-fuse=rope-epilogue=false activation-bits=0" --kiln-plan-memory --convert-kiln-to-gpu | FileCheck %s

// One warp per row; 64 values divide among the lanes, so each lane loads its
// two at once and keeps them (no loop): the sum of squares, a shuffle-xor
// sum, 1 / sqrt(mean + eps) with PTX's sqrt.rn.f32 (inline, no libdevice),
// then the scaled values times the f32 weight.
// CHECK-LABEL: func.func @rms_norm(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_rms_norm_64_eps1em05_held"]
// CHECK: gpu.func @kiln_rms_norm_64_eps1em05_held(
// CHECK-DAG: %[[EPS:.*]] = arith.constant 9.99999974E-6 : f32
// CHECK-DAG: %[[DIM:.*]] = arith.constant 6.400000e+01 : f32
// CHECK-NOT: scf.for
// CHECK-COUNT-2: memref.load %{{.*}} : memref<{{[0-9]+}}xf32>
// CHECK-COUNT-2: llvm.intr.fma
// CHECK-COUNT-5: gpu.shuffle  xor
// CHECK: %[[MEAN:.*]] = arith.divf %{{.*}}, %[[DIM]] : f32
// CHECK: %[[SUM:.*]] = arith.addf %[[MEAN]], %[[EPS]] : f32
// CHECK: llvm.inline_asm "sqrt.rn.f32 $0, $1;", "=f,f" %[[SUM]] : (f32) -> f32
// CHECK-COUNT-2: memref.store
// CHECK-NOT: scf.for
// CHECK: gpu.return
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
// CHECK-SAME: kiln.cuda_kernels = ["kiln_rms_norm_32_eps1em06_held", "kiln_copy"]
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

// -----

// A row of 256 values: each lane holds two 128-bit loads (8 values) of x,
// loads the weight with them (so it does not wait a second memory round trip
// after the sums), and writes the result 128 bits at a time.
// CHECK-LABEL: func.func @rms_norm_v4(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_rms_norm_256_eps1em05_v4"]
// CHECK: gpu.func @kiln_rms_norm_256_eps1em05_v4(
// CHECK-NOT: scf.for
// CHECK-COUNT-4: memref.load %{{.*}} : memref<{{[0-9]+}}xvector<4xf32>>
// CHECK-COUNT-8: llvm.intr.fma
// CHECK-COUNT-5: gpu.shuffle  xor
// CHECK: llvm.inline_asm "sqrt.rn.f32 $0, $1;"
// CHECK-NOT: memref.load
// CHECK: vector.from_elements
// CHECK: memref.store %{{.*}} : memref<{{[0-9]+}}xvector<4xf32>>
// CHECK-NOT: memref.load
// CHECK: vector.from_elements
// CHECK: memref.store %{{.*}} : memref<{{[0-9]+}}xvector<4xf32>>
// CHECK-NEXT: gpu.return
func.func @rms_norm_v4(%x: tensor<?x256xf32>) -> tensor<?x256xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 1024> -> !kiln.weight<256xf32>
  %y = kiln.rms_norm %x, %w {epsilon = 1.0e-5 : f32} : tensor<?x256xf32>, !kiln.weight<256xf32> -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
}

// -----

// A layer norm of 48 values (not a multiple of the 32 lanes) strides over
// the row: the mean, the centred sum of squares, then the scaled row times
// the weight plus the bias.
// CHECK-LABEL: func.func @layer_norm_loop(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_layer_norm_48_eps1em05_bias"]
// CHECK: gpu.func @kiln_layer_norm_48_eps1em05_bias(
// CHECK: scf.for
// CHECK: arith.addf
// CHECK-COUNT-5: gpu.shuffle  xor
// CHECK: scf.for
// CHECK: arith.subf
// CHECK: llvm.intr.fma
// CHECK-COUNT-5: gpu.shuffle  xor
// CHECK: scf.for
// CHECK: arith.subf
// CHECK: arith.addf
// CHECK: memref.store
func.func @layer_norm_loop(%x: tensor<?x48xf32>) -> tensor<?x48xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 192> -> !kiln.weight<48xf32>
  %b = kiln.weight #kiln.external<"w.bin", offset = 192, size = 192> -> !kiln.weight<48xf32>
  %y = kiln.layer_norm %x, %w, bias %b {epsilon = 1.0e-5 : f32} : tensor<?x48xf32>, !kiln.weight<48xf32>, !kiln.weight<48xf32> -> tensor<?x48xf32>
  return %y : tensor<?x48xf32>
}
