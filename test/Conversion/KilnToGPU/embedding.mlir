// RUN: kiln-opt %s "--kiln-fuse=rope-epilogue=false activation-bits=0" --kiln-plan-memory --convert-kiln-to-gpu | FileCheck %s

// One warp per token (grid = T blocks of 32 threads): the id is clamped to
// the table, each lane decodes whole 32-value chunks of the Q8_0 row (34
// bytes per block, 16-bit loads) and stores them times the scale.
// CHECK-LABEL: func.func @embedding(
// CHECK-SAME: %[[IDS:[^:]*]]: memref<?xi32>, %[[Y:[^:]*]]: memref<?x64xf32>, %[[W:[^:]*]]: memref<?xi8>
// CHECK-SAME: kiln.cuda_kernels = ["kiln_embedding_q8_0_100x64_s8"]
// CHECK: %[[T:.*]] = memref.dim %[[IDS]], %{{.*}} : memref<?xi32>
// CHECK: memref.extract_aligned_pointer_as_index %{{.*}} : memref<?xi8, strided<[1], offset: ?>>
// CHECK: memref.extract_aligned_pointer_as_index %[[IDS]]
// CHECK: memref.extract_aligned_pointer_as_index %[[Y]]
// CHECK: arith.index_castui %[[T]] : index to i32
// CHECK: arith.constant 32 : i32
// CHECK: llvm.call
// CHECK: gpu.func @kiln_embedding_q8_0_100x64_s8(
// CHECK-DAG: %[[LAST:.*]] = arith.constant 99 : index
// CHECK-DAG: %[[SCALE:.*]] = arith.constant 8.000000e+00 : f32
// CHECK-DAG: %[[ROW:.*]] = arith.constant 68 : index
// CHECK: %[[ID:.*]] = memref.load %{{.*}} : memref<274877906944xi32>
// CHECK: %[[IDX:.*]] = arith.index_castui %[[ID]] : i32 to index
// CHECK: %[[CLAMPED:.*]] = arith.minui %[[IDX]], %[[LAST]] : index
// CHECK: arith.muli %[[CLAMPED]], %[[ROW]] : index
// CHECK: scf.for
// CHECK: memref.load %{{.*}} : memref<549755813888xi16>
// CHECK: arith.mulf %{{.*}}, %[[SCALE]] : f32
// CHECK: memref.store %{{.*}} : memref<274877906944xf32>
func.func @embedding(%ids: tensor<?xi32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %t = kiln.weight #kiln.external<"w.bin", offset = 0, size = 6800> -> !kiln.weight<100x64x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>>
  %y = kiln.embedding %t[%ids] {scale = 8.0 : f32} : !kiln.weight<100x64x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>>, tensor<?xi32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
