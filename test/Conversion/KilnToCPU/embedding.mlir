// RUN: kiln-opt %s --split-input-file --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu | FileCheck %s

// The embedding kernels' emitted IR: ids clamped to the table, rows
// dequantized in registers and stored as vectors.

// GGUF Q4_0 rows of 64 values (2 blocks of 18 bytes), scaled by 8.
!q4_0 = !kiln.weight<100x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>
// CHECK-LABEL: func.func @embedding_q4_0(
// CHECK: call @kiln_embedding_q4_0_100x64_s0x1p_3(
// CHECK-LABEL: func.func private @kiln_embedding_q4_0_100x64_s0x1p_3(
// CHECK-DAG: %[[SCALE:.*]] = arith.constant dense<8.000000e+00> : vector<16xf32>
// CHECK-DAG: %[[LAST:.*]] = arith.constant 99 : index
// CHECK-DAG: %[[ROWBYTES:.*]] = arith.constant 36 : index
// CHECK: scf.for %[[T:.*]] = %{{.*}} to %{{.*}} step
// CHECK: %[[ID:.*]] = memref.load %{{.*}}[%[[T]]] : memref<?xi32, strided<[1], offset: ?>>
// CHECK: %[[IDX:.*]] = arith.index_castui %[[ID]] : i32 to index
// CHECK: %[[ROW:.*]] = arith.minui %[[IDX]], %[[LAST]] : index
// CHECK: arith.muli %[[ROW]], %[[ROWBYTES]] : index
// CHECK: scf.for
// CHECK: vector.load %{{.*}}[%{{.*}}] : memref<?xi8>, vector<16xi8>
// CHECK: %[[CODES:.*]] = arith.uitofp %{{.*}} : vector<32xi8> to vector<32xf32>
// CHECK: %[[LO:.*]] = vector.extract_strided_slice %[[CODES]] {offsets = [0], sizes = [16], strides = [1]} : vector<32xf32> to vector<16xf32>
// CHECK: %[[W0:.*]] = vector.fma %[[LO]], %{{.*}}, %{{.*}} : vector<16xf32>
// CHECK: %[[Y0:.*]] = arith.mulf %[[W0]], %[[SCALE]] : vector<16xf32>
// CHECK: vector.store %[[Y0]], %{{.*}}[%[[T]], %{{.*}}] : memref<?x64xf32, strided<[64, 1], offset: ?>>, vector<16xf32>
// CHECK: %[[Y1:.*]] = arith.mulf %{{.*}}, %[[SCALE]] : vector<16xf32>
// CHECK: vector.store %[[Y1]], %{{.*}}[%[[T]], %{{.*}}] : memref<?x64xf32, strided<[64, 1], offset: ?>>, vector<16xf32>
func.func @embedding_q4_0(%ids: tensor<?xi32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %t = kiln.weight #kiln.external<"w.bin", offset = 0, size = 3600> -> !q4_0
  %y = kiln.embedding %t[%ids] {scale = 8.0 : f32} : !q4_0, tensor<?xi32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// rows16 Q4_K (a tied output layer's table): the row's group of 16 and its
// lane in it; each 64-byte code vector holds 4 codes of each of the 16
// rows, so the row's 32 codes of a block are one i32 lane of each of the 8
// targets; its scale and min are its lane of the group's scales.
!r16 = !kiln.weight<32x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf, target_layout = #kiln_cpu.rows16>>
// CHECK-LABEL: func.func @embedding_rows16(
// CHECK: call @kiln_embedding_r16_q4_k_32x256(
// CHECK-LABEL: func.func private @kiln_embedding_r16_q4_k_32x256(
// CHECK-DAG: %[[LAST:.*]] = arith.constant 31 : index
// CHECK-DAG: %[[C16:.*]] = arith.constant 16 : index
// CHECK: %[[ID:.*]] = memref.load
// CHECK: %[[IDX:.*]] = arith.index_castui %[[ID]] : i32 to index
// CHECK: %[[ROW:.*]] = arith.minui %[[IDX]], %[[LAST]] : index
// CHECK: arith.divui %[[ROW]], %[[C16]] : index
// CHECK: %[[LANE:.*]] = arith.remui %[[ROW]], %[[C16]] : index
// CHECK: %[[CODES:.*]] = vector.load %{{.*}}[%{{.*}}] : memref<?xi8>, vector<64xi8>
// CHECK: %[[T0:.*]] = arith.andi %[[CODES]], %{{.*}} : vector<64xi8>
// CHECK: %[[WORDS:.*]] = vector.bitcast %[[T0]] : vector<64xi8> to vector<16xi32>
// CHECK: %[[W0:.*]] = vector.extract %[[WORDS]][%[[LANE]]] : i32 from vector<16xi32>
// CHECK: %[[PACKED:.*]] = vector.from_elements %[[W0]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : vector<8xi32>
// CHECK: %[[BYTES:.*]] = vector.bitcast %[[PACKED]] : vector<8xi32> to vector<32xi8>
// CHECK: %[[WIDE:.*]] = arith.extui %[[BYTES]] : vector<32xi8> to vector<32xi32>
// CHECK: %[[SC:.*]] = vector.extract %{{.*}}[%[[LANE]]] : f32 from vector<16xf32>
// CHECK: %[[SCV:.*]] = vector.broadcast %[[SC]] : f32 to vector<32xf32>
// CHECK: %[[F:.*]] = arith.sitofp %[[WIDE]] : vector<32xi32> to vector<32xf32>
// CHECK: %[[V:.*]] = arith.mulf %[[F]], %[[SCV]] : vector<32xf32>
// CHECK: %[[MIN:.*]] = vector.extract %{{.*}}[%[[LANE]]] : f32 from vector<16xf32>
// CHECK: %[[MINV:.*]] = vector.broadcast %[[MIN]] : f32 to vector<32xf32>
// CHECK: %[[Y:.*]] = arith.addf %[[V]], %[[MINV]] : vector<32xf32>
// CHECK: vector.store %[[Y]], %{{.*}}[%{{.*}}, %{{.*}}] : memref<?x256xf32, strided<[256, 1], offset: ?>>, vector<32xf32>
func.func @embedding_rows16(%ids: tensor<?xi32>) -> tensor<?x256xf32> attributes {kiln.max_tokens = 8} {
  %t = kiln.weight #kiln.external<"w.bin", offset = 0, size = 4736> -> !r16
  %y = kiln.embedding %t[%ids] : !r16, tensor<?xi32> -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
}
